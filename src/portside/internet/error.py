"""Twisted's connection and listening errors (``twisted.internet.error``), by the same names."""

from __future__ import annotations

__all__ = [
    "AlreadyCalled",
    "AlreadyCancelled",
    "BindError",
    "CannotListenError",
    "ConnectError",
    "ConnectionAborted",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ConnectionRefusedError",
    "DNSLookupError",
    "NotConnectingError",
    "ReactorAlreadyRunning",
    "ReactorNotRestartable",
    "ReactorNotRunning",
    "TimeoutError",
    "UserError",
]


class _Described(Exception):
    """An error whose message starts with a fixed description, as Twisted's do."""

    description = "An error occurred."

    def __str__(self) -> str:
        detail = " ".join(str(a) for a in self.args)
        return f"{self.description}: {detail}." if detail else f"{self.description}."


class BindError(_Described):
    description = "An error occurred binding to an interface"


class CannotListenError(BindError):
    """Listening on ``interface:port`` failed; ``socketError`` says why."""

    def __init__(self, interface: str, port: int | str, socketError: BaseException) -> None:
        super().__init__(interface, port, socketError)
        self.interface = interface
        self.port = port
        self.socketError = socketError

    def __str__(self) -> str:
        where = self.interface or "any"
        return f"Couldn't listen on {where}:{self.port}: {self.socketError}."


class ConnectError(_Described):
    """An outgoing connection could not be made; ``osError`` is the errno, when there is one."""

    description = "An error occurred while connecting"

    def __init__(self, osError: object = None, string: str = "") -> None:
        self.osError = osError
        super().__init__(*(a for a in (osError, string) if a))

    def __str__(self) -> str:
        return ": ".join([self.description, *(str(a) for a in self.args)]) + "."


class ConnectionRefusedError(ConnectError):
    description = "Connection was refused by other side"


class TimeoutError(ConnectError):
    description = "User timeout caused connection failure"


class DNSLookupError(ConnectError, OSError):
    description = "DNS lookup failed"


class UserError(ConnectError):
    description = "User aborted connection"


class NotConnectingError(RuntimeError):
    """``connector.stopConnecting()`` was called while it was not connecting."""

    def __str__(self) -> str:
        return "The Connector was not connecting when it was asked to stop connecting."


class ConnectionClosed(Exception):
    """The connection is closed, cleanly or not."""


class ConnectionLost(ConnectionClosed, _Described):
    description = "Connection to the other side was lost in a non-clean fashion"


class ConnectionAborted(ConnectionLost):
    description = "Connection was aborted locally using ITCPTransport.abortConnection"


class ConnectionDone(ConnectionClosed, _Described):
    description = "Connection was closed cleanly"


class AlreadyCalled(ValueError):
    """Tried to cancel or reset a delayed call that already ran."""


class AlreadyCancelled(ValueError):
    """Tried to cancel or reset a delayed call that was already cancelled."""


class ReactorNotRunning(RuntimeError):
    """``reactor.stop()`` was called while the reactor is not running."""


class ReactorAlreadyRunning(RuntimeError):
    """``reactor.run()`` was called while the reactor is running."""


class ReactorNotRestartable(RuntimeError):
    """The reactor ran once and cannot run again."""
