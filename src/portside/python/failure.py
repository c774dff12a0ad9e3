"""``Failure``: an exception together with its traceback, passed around instead of raised.

Mirrors ``twisted.python.failure.Failure``'s documented surface: ``value``, ``type``,
``tb``, ``check``, ``trap``, ``getErrorMessage``, ``getTraceback``, ``printTraceback``,
``raiseException``.
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType
from typing import IO, Any, NoReturn

__all__ = ["Failure", "NoCurrentExceptionError"]


class NoCurrentExceptionError(Exception):
    """``Failure()`` was called with no exception given and none being handled."""


class Failure:
    """An exception captured for later: the current one, or the one given."""

    def __init__(
        self,
        exc_value: BaseException | None = None,
        exc_type: type[BaseException] | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        if exc_value is None:
            current = sys.exc_info()[1]
            if current is None:
                raise NoCurrentExceptionError(
                    "Failure() needs an exception or an active except block"
                )
            exc_value = current
            exc_tb = exc_tb or current.__traceback__
        self.value: BaseException = exc_value
        self.type: type[BaseException] = exc_type or type(exc_value)
        self.tb: TracebackType | None = exc_tb or exc_value.__traceback__

    def check(self, *error_types: type[BaseException] | str) -> type[BaseException] | str | None:
        """The first of ``error_types`` this failure is an instance of, else None."""
        for error in error_types:
            if isinstance(error, str):
                if error in (f"{c.__module__}.{c.__qualname__}" for c in self.type.__mro__):
                    return error
            elif issubclass(self.type, error):
                return error
        return None

    def trap(self, *error_types: type[BaseException]) -> type[BaseException]:
        """Return the matching type from ``error_types``, or re-raise this failure."""
        matched = self.check(*error_types)
        if matched is None:
            self.raiseException()
        assert not isinstance(matched, str)
        return matched

    def raiseException(self) -> NoReturn:
        """Raise the captured exception with its original traceback."""
        raise self.value.with_traceback(self.tb)

    def getErrorMessage(self) -> str:
        """The exception's message (or its repr when it has none)."""
        if isinstance(self.value, Failure):
            return self.value.getErrorMessage()
        return str(self.value) or repr(self.value)

    def getTraceback(self, elideFrameworkCode: int = 0, detail: str = "default") -> str:
        """The formatted traceback, as ``traceback.format_exception`` writes it."""
        return "".join(traceback.format_exception(self.type, self.value, self.tb))

    def printTraceback(
        self,
        file: IO[str] | None = None,
        elideFrameworkCode: int = 0,
        detail: str = "default",
    ) -> None:
        """Write the traceback to ``file`` (standard error by default)."""
        (file or sys.stderr).write(self.getTraceback())

    def getTracebackObject(self) -> TracebackType | None:
        """The traceback object, if one was captured."""
        return self.tb

    def cleanFailure(self) -> None:
        """Drop references to frames (kept for Twisted compatibility; tracebacks stay usable)."""

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Failure) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)

    def __repr__(self) -> str:
        name = f"{self.type.__module__}.{self.type.__qualname__}"
        return f"<portside.python.failure.Failure {name}: {self.getErrorMessage()}>"

    __str__ = __repr__
