"""Writing the server's side of HTTP/1.1 for :mod:`portside.proto.http`: checked fields out.

Every header or trailer field the application sends is checked (token names; values of
visible text, spaces and tabs, so nothing can inject a line) before it is serialized. A
response's fields are checked and serialized once per distinct set of fields (see
``response_fields``), so a server that keeps sending the same ones pays once.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any, Final

from portside.errors import ProtocolError
from portside.proto._http_events import Headers
from portside.proto._http_parse import TOKEN_RE

__all__ = [
    "NO_TRAILERS",
    "LocalProtocolError",
    "ResponseFields",
    "check_fields",
    "fields_bytes",
    "head_bytes",
    "response_fields",
    "status_line",
]


class LocalProtocolError(ProtocolError):
    """The caller asked for something HTTP forbids (a bad header, too much body, ...).

    The machine is then unusable for sending; the connection should be closed.
    """

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message, status)


_REASONS: Final = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
_REASON_RE: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_OUT_VALUE_RE: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
NO_TRAILERS: Final[Headers] = []
_NAMES_RE: Final = re.compile(rb"(?:" + TOKEN_RE.pattern + rb"\n)*" + TOKEN_RE.pattern)


def check_fields(fields: Headers) -> list[bytes]:
    """Validate header or trailer fields; return their names, lowercased.

    Names must be tokens and values visible text, spaces and tabs, so nothing can inject a
    line. Two regex passes over the joined names and values check every field at once (a
    name holding the newline that separates them is caught by counting).
    """
    if not fields:
        return []
    try:
        names, values = zip(*fields, strict=True)
        blob = b"\n".join(names)
        valid = (
            _NAMES_RE.fullmatch(blob) is not None
            and blob.count(b"\n") == len(names) - 1
            and _OUT_VALUE_RE.fullmatch(b"".join(values)) is not None
        )
    except (TypeError, ValueError):
        raise LocalProtocolError("header fields must be (bytes, bytes) pairs") from None
    if not valid:
        for name, value in fields:
            if TOKEN_RE.fullmatch(name) is None or _OUT_VALUE_RE.fullmatch(value) is None:
                raise LocalProtocolError(f"invalid header field {name[:40]!r}: {value[:40]!r}")
    return blob.lower().split(b"\n")


def fields_bytes(fields: Headers) -> bytes:
    """Serialize fields already checked, with the empty line that ends the block."""
    return b"".join([b"%s: %s\r\n" % field for field in fields]) + b"\r\n"


def status_line(status: int, reason: bytes) -> bytes:
    """``HTTP/1.1 status reason`` and its CRLF; the standard phrase when ``reason`` is empty."""
    if not reason:
        line = _STATUS_LINES.get(status)
        if line is None:
            line = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))
            if len(_STATUS_LINES) < 1000:
                _STATUS_LINES[status] = line
        return line
    if _REASON_RE.fullmatch(reason) is None:
        raise LocalProtocolError(f"invalid reason phrase {reason[:40]!r}")
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


def head_bytes(status: int, reason: bytes, headers: Headers) -> bytes:
    """Serialize a status line and its (checked) header fields."""
    return status_line(status, reason) + fields_bytes(headers)


# Heads remembered per set of fields (see ResponseFields.heads): a server answers with a few
# statuses, one or two HTTP versions and methods, keep-alive on or off.
MAX_HEADS: Final = 16


class ResponseFields:
    """A response's header fields, checked: their serialized lines and what framing they ask.

    ``heads`` is for the connection machine: what it made of these fields for one request
    context (status, reason, version, method, keep-alive, expect-100), kept because it is a
    pure function of the two.
    """

    __slots__ = ("block", "close", "codings", "heads", "keep_alive", "length", "lengths")

    def __init__(self, headers: Headers) -> None:
        self.heads: dict[tuple[object, ...], tuple[bytes, Any, int, bool]] = {}
        names = check_fields(headers)
        self.length: int | None = None  # the Content-Length value, once checked
        self.lengths: list[bytes] = []
        self.codings: list[bytes] = []
        options: set[bytes] = set()
        if b"content-length" in names:
            self.lengths = [headers[i][1] for i, n in enumerate(names) if n == b"content-length"]
        if b"transfer-encoding" in names:
            self.codings = [headers[i][1] for i, n in enumerate(names) if n == b"transfer-encoding"]
        for i, n in enumerate(names):
            if n == b"connection":
                options.update(o.strip(b" \t").lower() for o in headers[i][1].split(b","))
        self.close = b"close" in options  # Connection: close
        self.keep_alive = b"keep-alive" in options
        self.block = b"".join([b"%s: %s\r\n" % field for field in headers])
        if self.lengths:
            lengths = self.lengths
            if len(lengths) > 1 or not lengths[0].isdigit() or not lengths[0].isascii():
                raise LocalProtocolError(f"invalid Content-Length {b', '.join(lengths)[:40]!r}")
            self.length = int(lengths[0])

    def remember(self, key: tuple[object, ...], head: tuple[bytes, Any, int, bool]) -> None:
        """Keep ``head`` for ``key`` in :attr:`heads`, which stays small."""
        if len(self.heads) >= MAX_HEADS:
            self.heads.clear()
        self.heads[key] = head


# Checking and serializing a response's fields is a pure function of them, and a server
# sends the same fields again and again (the same file, the same error page; the Date
# changes once a second), so the results are memoized, keyed by the fields themselves.
# Emptied when full: bounded whatever the application sends.
_FIELDS_MEMO_SIZE: Final = 512
_fields_memo: dict[tuple[tuple[bytes, bytes], ...], ResponseFields] = {}
_STATUS_LINES: dict[int, bytes] = {}


def response_fields(headers: Headers) -> ResponseFields:
    """The checked fields of a response, from the memo when the same fields were seen."""
    try:
        key = tuple(headers)
        fields = _fields_memo.get(key)
    except TypeError:  # unhashable pieces (a bytearray value): check without the memo
        return ResponseFields(headers)
    if fields is None:
        fields = ResponseFields(headers)
        if len(_fields_memo) >= _FIELDS_MEMO_SIZE:
            _fields_memo.clear()
        _fields_memo[key] = fields
    return fields
