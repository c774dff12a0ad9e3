"""The one small hierarchy of errors portside raises on purpose."""

from __future__ import annotations

__all__ = ["BindError", "EndpointError", "PortsideError", "ProtocolError"]


class PortsideError(Exception):
    """Base class of every error portside raises on purpose."""


class EndpointError(PortsideError, ValueError):
    """An endpoint string that cannot be used; names the offending field and why."""

    def __init__(self, description: str, field: str, reason: str) -> None:
        self.description = description
        self.field = field
        self.reason = reason
        super().__init__(f"bad endpoint {description!r}: {field}: {reason}")


class ProtocolError(PortsideError):
    """A peer broke the protocol; ``status`` is what to answer (e.g. 400, 431, 500).

    A sans-I/O machine raises it and then refuses further input; the connection that owns the
    machine sends the answer (when the protocol has one) and closes.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


class BindError(PortsideError, OSError):
    """A listening endpoint could not be set up; names the endpoint and the system's reason."""

    def __init__(self, description: str, reason: str) -> None:
        self.description = description
        self.reason = reason
        super().__init__(f"cannot listen on {description!r}: {reason}")
