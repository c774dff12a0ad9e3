"""The events of :mod:`portside.proto.http`: small frozen dataclasses, one per protocol step.

A request arrives as ``Request``, then zero or more ``Data``, then ``EndOfMessage``; the
answer goes out as zero or more ``InformationalResponse``, one ``Response``, zero or more
``Data`` and ``EndOfMessage``. ``ConnectionClosed`` marks a side that will say no more.
Header names in received events are lowercased bytes; values are bytes with the optional
whitespace around them removed. Events are read-only: received ones may be shared (every
``EndOfMessage`` without trailers is the same object), so never mutate their lists.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "BytesLike",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "InformationalResponse",
    "Request",
    "Response",
    "Signal",
]

BytesLike = bytes | bytearray | memoryview
"""What ``receive_data`` and ``Data`` accept: any contiguous bytes-like object."""

Headers = list[tuple[bytes, bytes]]
"""Header fields in order: ``(name, value)`` pairs of bytes."""


class Signal(enum.Enum):
    """What ``next_event`` returns when it has no event to give."""

    #: More bytes must arrive (``receive_data``) before the next event.
    NEED_DATA = "NEED_DATA"
    #: The current request is complete; the next one waits until the response is finished.
    PAUSED = "PAUSED"


NEED_DATA = Signal.NEED_DATA
PAUSED = Signal.PAUSED


class Event:
    """Base class of every event the HTTP machine takes or gives."""

    __slots__ = ()


# The events built once per request (Request, Response, Data) have their own __init__: a
# frozen dataclass's generated one sets each field through object.__setattr__, which costs
# twice as much as setting the slots through their descriptors, as these do. Equality, repr,
# immutability and the fields are still the dataclass's.
@dataclass(frozen=True, slots=True, init=False)
class Request(Event):
    """A request head: ``method`` and ``target`` as sent, ``http_version`` like ``b"1.1"``."""

    method: bytes
    target: bytes
    http_version: bytes = b"1.1"
    headers: Headers = field(default_factory=list)

    def __init__(
        self,
        method: bytes,
        target: bytes,
        http_version: bytes = b"1.1",
        headers: Headers | None = None,
    ) -> None:
        _request_method(self, method)
        _request_target(self, target)
        _request_version(self, http_version)
        _request_headers(self, [] if headers is None else headers)


_request_method = Request.__dict__["method"].__set__
_request_target = Request.__dict__["target"].__set__
_request_version = Request.__dict__["http_version"].__set__
_request_headers = Request.__dict__["headers"].__set__


@dataclass(frozen=True, slots=True)
class InformationalResponse(Event):
    """An interim 1xx answer (``100 Continue``, ``103 Early Hints``) sent before the response."""

    status_code: int
    headers: Headers = field(default_factory=list)
    reason: bytes = b""


@dataclass(frozen=True, slots=True, init=False)
class Response(Event):
    """The head of the final answer; ``reason`` defaults to the standard phrase of the status."""

    status_code: int
    headers: Headers = field(default_factory=list)
    reason: bytes = b""

    def __init__(
        self, status_code: int, headers: Headers | None = None, reason: bytes = b""
    ) -> None:
        _response_status(self, status_code)
        _response_headers(self, [] if headers is None else headers)
        _response_reason(self, reason)


_response_status = Response.__dict__["status_code"].__set__
_response_headers = Response.__dict__["headers"].__set__
_response_reason = Response.__dict__["reason"].__set__


@dataclass(frozen=True, slots=True, repr=False, init=False)
class Data(Event):
    """A piece of a message body.

    Received pieces are ``bytes`` or a ``memoryview`` over the bytes handed to
    ``receive_data`` (no copy is made); call ``bytes()`` on one to keep or hash it.
    """

    data: BytesLike

    def __init__(self, data: BytesLike) -> None:
        _data_data(self, data)

    def __repr__(self) -> str:
        if len(self.data) > 64:
            return f"Data(data={bytes(self.data[:64])!r}... {len(self.data)} bytes)"
        return f"Data(data={bytes(self.data)!r})"


_data_data = Data.__dict__["data"].__set__


@dataclass(frozen=True, slots=True)
class EndOfMessage(Event):
    """The end of a message body, with the trailer fields of a chunked body (else empty)."""

    trailers: Headers = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """A side has finished with the connection: the client sent EOF, or we close."""
