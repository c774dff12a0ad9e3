"""``DelayedCall``: what ``reactor.callLater`` returns, a timer you can cancel, reset or delay.

A delayed call keeps its firing time in ``reactor.seconds()`` terms (wall-clock seconds, as
Twisted's) and runs on the loop's own timer: once a loop is there, it holds one
``loop.call_later`` handle, replaced whenever the time changes. Made before any loop runs, it
waits (the reactor schedules it when ``run()`` starts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from portside.internet import error

__all__ = ["DelayedCall"]

log = logging.getLogger("portside.internet")


class DelayedCall:
    """A call scheduled for ``getTime()``; ``called`` and ``cancelled`` say how it ended.

    ``func(*args, **kw)`` runs once, on the reactor's loop. An exception it raises is logged,
    as Twisted does, and goes no further.
    """

    def __init__(
        self,
        time: float,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        seconds: Callable[[], float],
        finished: Callable[[DelayedCall], None],
    ) -> None:
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self.called = 0
        self.cancelled = 0
        self._seconds = seconds
        self._finished = finished
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def getTime(self) -> float:
        """When this call fires, in ``reactor.seconds()`` terms."""
        return self.time

    def active(self) -> bool:
        """True until the call has run or was cancelled."""
        return not (self.called or self.cancelled)

    def cancel(self) -> None:
        """Unschedule the call; AlreadyCalled / AlreadyCancelled if it is no longer pending."""
        self._check_active()
        self.cancelled = 1
        self._unschedule()
        self._finished(self)

    def reset(self, secondsFromNow: float) -> None:
        """Fire ``secondsFromNow`` seconds from now instead."""
        self._check_active()
        self.time = self._seconds() + secondsFromNow
        self._reschedule()

    def delay(self, secondsLater: float) -> None:
        """Fire ``secondsLater`` seconds later than planned (earlier, when negative)."""
        self._check_active()
        self.time += secondsLater
        self._reschedule()

    def schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Put the call on ``loop``'s timer (the reactor calls this once a loop runs)."""
        if self.active():
            self._loop = loop
            self._handle = loop.call_later(max(0.0, self.time - self._seconds()), self._fire)

    def _check_active(self) -> None:
        if self.cancelled:
            raise error.AlreadyCancelled(self)
        if self.called:
            raise error.AlreadyCalled(self)

    def _unschedule(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _reschedule(self) -> None:
        if self._loop is not None:
            self._unschedule()
            self.schedule(self._loop)

    def _fire(self) -> None:
        self._handle = None
        self.called = 1
        self._finished(self)
        try:
            self.func(*self.args, **self.kw)
        except Exception:
            log.exception("Unhandled error in %r", self)

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", None) or repr(self.func)
        left = self.time - self._seconds()
        return (
            f"<DelayedCall 0x{id(self):x} [{left:.3f}s] called={self.called} "
            f"cancelled={self.cancelled} {name}{self.args!r}>"
        )
