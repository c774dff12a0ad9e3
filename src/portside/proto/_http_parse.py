"""Reading the HTTP/1.1 wire format for :mod:`portside.proto.http`, and its size limits.

A ``Buffer`` holds received bytes with a read offset; ``HeadReader`` finds a whole request
head with ``bytes.find`` and parses it with compiled regular expressions (the request line in
one match, the whole header block in one ``findall`` that also validates it);
``LengthReader`` and ``ChunkedReader`` turn the body into ``Data`` events sliced out of the
buffer. Nothing here loops over bytes in Python. Every malformed input raises
``ProtocolError`` with the status to answer. Line endings are strict: CRLF everywhere, a bare
LF or CR is a 400 (RFC 9112 2.2 allows leniency, but lenient line endings are a classic
request-smuggling lever).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from portside.errors import ProtocolError
from portside.proto._http_events import (
    BytesLike,
    Data,
    EndOfMessage,
    Headers,
    Request,
)

KiB: Final = 1024

# 8 KiB for the request line (method, target, version), answered with 414: Apache's
# LimitRequestLine is 8190 and nginx's large_client_header_buffers holds lines of 8 KiB.
MAX_REQUEST_LINE: Final = 8 * KiB
# 32 KiB for all header lines together, answered with 431: nginx accepts 4 x 8 KiB, Node 16 KiB
# and h11 16 KiB; browsers' cookie jars stay well below 32 KiB.
MAX_HEADER_BLOCK: Final = 32 * KiB
# 100 header lines, answered with 431: Apache's LimitRequestFields default. Real requests carry
# 10 to 30; the cap bounds the per-field work an attacker can buy.
MAX_HEADER_COUNT: Final = 100
# 4 KiB per chunk-size line including extensions, answered with 400: Go's net/http allows 4096
# (maxLineLength); extensions carry nothing we use, and long ones are a known DoS lever
# (CVE-2023-39326, CVE-2024-22019).
MAX_CHUNK_LINE: Final = 4 * KiB


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    """The sizes a ``ServerConnection`` accepts; exceeding one raises ``ProtocolError``.

    ``max_request_line`` (414) counts the method, target and version; ``max_header_block``
    (431) the header lines with their CRLFs, and separately the trailer lines of a chunked
    body; ``max_header_count`` (431) the header lines, and the trailer lines; ``max_chunk_line``
    (400) a chunk-size line with its extensions. ``max_body`` (413) is off by default: bodies
    are streamed as ``Data`` events, so the application decides how much it will read.
    """

    max_request_line: int = MAX_REQUEST_LINE
    max_header_block: int = MAX_HEADER_BLOCK
    max_header_count: int = MAX_HEADER_COUNT
    max_chunk_line: int = MAX_CHUNK_LINE
    max_body: int | None = None

    def __post_init__(self) -> None:
        sizes = (self.max_request_line, self.max_header_block, self.max_header_count)
        if min(*sizes, self.max_chunk_line) < 1:
            raise ValueError("HTTP limits must be positive")
        if self.max_body is not None and self.max_body < 0:
            raise ValueError("max_body must be >= 0 (or None for no limit)")


_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_VCHAR: Final = rb"[\x21-\x7e\x80-\xff]"
# field-value: visible characters and obs-text, with single spaces or tabs inside (RFC 9110 5.5).
_VALUE: Final = rb"(?:" + _VCHAR + rb"(?:[\t\x20-\x7e\x80-\xff]*" + _VCHAR + rb")?)?"

FIELD_RE: Final = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")[ \t]*\r\n")
# One field line of a block, anchored at a line start: name, then the value without the
# whitespace around it, then CRLF. Only HTAB, SP, visible ASCII and obs-text pass.
_FIELD_LINE_RE: Final = re.compile(rb"(?m)^(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")[ \t]*\r$")
_SIMPLE_OPTIONS: Final = (b"keep-alive", b"close", b"upgrade")
_FRAMING_FIELDS: Final = frozenset(
    (b"host", b"connection", b"content-length", b"transfer-encoding", b"expect")
)
TOKEN_RE: Final = re.compile(_TOKEN)
_REQUEST_LINE_RE: Final = re.compile(
    rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])"  # method SP target SP version
)
_SCHEME_RE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*:")
_HOST_RE: Final = re.compile(rb"[A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]*")
_CONTENT_LENGTH_RE: Final = re.compile(rb"[0-9]{1,18}")  # below 10**18: fits any int64
_CRLFS_RE: Final = re.compile(rb"(?:\r\n)*")
_BARE_LF_RE: Final = re.compile(rb"(?<!\r)\n")
# chunk-size, then tolerated chunk extensions: any visible text after ";" (bounded by
# max_chunk_line).
_CHUNK_LINE_RE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[\t\x20-\x7e\x80-\xff]*)?")


class Buffer:
    """Received bytes not yet consumed: ``data[pos:]``.

    While nothing is left over, a received ``bytes`` object is kept as it is, so body pieces
    can be handed out as views of it without a copy; leftovers that must be joined with later
    bytes move into a ``bytearray`` that grows in place.
    """

    __slots__ = ("data", "pos")

    def __init__(self) -> None:
        self.data: bytes | bytearray = b""
        self.pos = 0

    def __len__(self) -> int:
        return len(self.data) - self.pos

    def feed(self, chunk: BytesLike) -> None:
        """Append ``chunk`` (copied unless it is ``bytes``)."""
        data = self.data
        if self.pos >= len(data):
            self.data = chunk if type(chunk) is bytes else bytes(chunk)
            self.pos = 0
        elif type(data) is bytes:
            joined = bytearray(memoryview(data)[self.pos :])
            joined += chunk
            self.data = joined
            self.pos = 0
        else:
            assert isinstance(data, bytearray)
            if self.pos > 4096 and self.pos * 2 > len(data):
                del data[: self.pos]
                self.pos = 0
            data += chunk

    def take(self, n: int) -> BytesLike:
        """Consume and return the next ``n`` bytes, as a view when that avoids a copy."""
        data, start = self.data, self.pos
        end = start + n
        self.pos = end
        if type(data) is bytes:
            if start == 0 and end == len(data):
                return data
            return memoryview(data)[start:end]
        with memoryview(data) as view, view[start:end] as part:
            return bytes(part)

    def rest(self) -> bytes:
        """Everything not yet consumed, as bytes."""
        return bytes(self.data[self.pos :])


def _bad_field_reason(block: bytes) -> str:
    """Say what is wrong with a header block that failed validation (the slow, error path)."""
    for line in block.split(b"\r\n")[:-1]:
        if FIELD_RE.fullmatch(line + b"\r\n"):
            continue
        if line[:1] in (b" ", b"\t"):
            return "obs-fold (a header line starting with whitespace) is not allowed"
        name, colon, value = line.partition(b":")
        if not colon:
            return "header line without a colon"
        if name.rstrip(b" \t") != name:
            return "whitespace between a header name and the colon"
        if not TOKEN_RE.fullmatch(name):
            return "invalid character in a header name"
        if b"\n" in value or b"\r" in value:
            return "bare CR or LF in a header line"
        return "invalid character in a header value"
    return "bare CR or LF in a header line"


def parse_fields(block: bytes, max_count: int) -> Headers:
    """Parse field lines (each ending in CRLF) into ``(lowercased name, value)`` pairs.

    One regex pass finds every line that is a valid field; the block is valid exactly when
    that is every line (a line ending in a bare LF never matches).
    """
    count = block.count(b"\n")
    if count > max_count:
        raise ProtocolError(f"more than {max_count} header fields", 431)
    found = _FIELD_LINE_RE.findall(block)
    if len(found) != count:
        raise ProtocolError(_bad_field_reason(block))
    return [(name.lower(), value) for name, value in found]


def _content_length(values: list[bytes]) -> int:
    """The one length all ``Content-Length`` fields agree on (RFC 9110 8.6), or a 400."""
    found: set[int] = set()
    for value in values:
        for item in value.split(b","):
            item = item.strip(b" \t")
            if _CONTENT_LENGTH_RE.fullmatch(item) is None:
                raise ProtocolError(f"invalid Content-Length {value[:40]!r}")
            found.add(int(item))
    if len(found) != 1:
        raise ProtocolError("conflicting Content-Length values")
    return found.pop()


def _check_chunked(values: list[bytes]) -> None:
    """Accept exactly ``Transfer-Encoding: chunked``; 400 if chunked is not last, else 501."""
    codings = [item.strip(b" \t").lower() for value in values for item in value.split(b",")]
    if codings[-1] != b"chunked":
        raise ProtocolError("Transfer-Encoding whose final coding is not chunked")
    if len(codings) > 1:
        if b"chunked" in codings[:-1] or not all(TOKEN_RE.fullmatch(c) for c in codings[:-1]):
            raise ProtocolError(f"invalid Transfer-Encoding {b', '.join(codings)[:60]!r}")
        raise ProtocolError(f"unsupported transfer coding {codings[0][:40]!r}", 501)


def _check_target(method: bytes, target: bytes) -> None:
    """Accept origin-form, absolute-form, and ``*`` for OPTIONS (RFC 9112 3.2)."""
    if target[:1] == b"/" or _SCHEME_RE.match(target):
        return
    if target == b"*" and method == b"OPTIONS":
        return
    raise ProtocolError(f"invalid request-target {target[:40]!r}")


# Header blocks remembered per connection (see HeadReader): a browser alternates between a few.
MEMO_SIZE: Final = 8
# Only heads up to this size are remembered (real ones are a few hundred bytes to ~2 KiB), so
# an idle connection holds at most 2 x MEMO_SIZE x 4 KiB of them, not 2 x MEMO_SIZE x 40 KiB.
MAX_MEMO_HEAD: Final = 4 * KiB

_Head = tuple[tuple[tuple[bytes, bytes], ...], int, bool, bool]
"""A parsed head's fields, body length (-1: chunked), keep-alive and 100-continue."""


class HeadReader:
    """Finds and parses one request head at the front of a ``Buffer``.

    It remembers where the request line ends and how far it has searched (relative to the
    read offset), so a head arriving a byte at a time is scanned once, not once per byte.
    """

    __slots__ = (
        "_block_limit",
        "_count_limit",
        "_heads",
        "_limits",
        "_line",
        "_line_limit",
        "_memo",
        "_seen",
    )

    def __init__(self, limits: HTTPLimits) -> None:
        self._limits = limits
        # (method, version, header block) -> what parsing and framing made of it: a client
        # repeats its header block request after request, so the work is done once.
        self._memo: dict[tuple[bytes, bytes, bytes], _Head] = {}
        # whole head (request line and block) -> its parts: a client that repeats a request
        # (a poller, a benchmark, a browser revalidating) costs one find and one lookup.
        self._heads: dict[bytes, tuple[bytes, bytes, bytes, _Head]] = {}
        self._line_limit = limits.max_request_line
        self._block_limit = limits.max_header_block
        self._count_limit = limits.max_header_count
        self._line = -1  # length of the request line once its CRLF is found
        self._seen = 0  # bytes after the read offset already searched

    def read(self, buf: Buffer) -> tuple[Request, LengthReader | ChunkedReader, bool, bool] | None:
        """Consume a whole head and return ``(request, body reader, keep_alive, expect_100)``.

        Returns ``None`` while the head is incomplete; raises ``ProtocolError`` for a bad one.
        """
        data, pos = buf.data, buf.pos
        line = self._line
        if line < 0 and not self._seen:  # a new head: is it one seen before?
            end = data.find(b"\r\n\r\n", pos, pos + MAX_MEMO_HEAD)
            if end > pos:
                whole = data[pos : end + 4]
                known = self._heads.get(whole if type(whole) is bytes else bytes(whole))
                if known is not None:
                    buf.pos = end + 4
                    return self._request(*known)
        if line < 0:
            scan = pos + self._seen
            stop = pos + self._line_limit + 2
            line_end = data.find(b"\r\n", scan, stop)
            if line_end == pos:  # RFC 9112 2.2: ignore empty lines before a request line
                crlfs = _CRLFS_RE.match(data, pos)
                assert crlfs is not None
                buf.pos = crlfs.end()
                return self.read(buf)
            if line_end < 0:
                if data.find(b"\n", scan, stop) >= 0:
                    raise ProtocolError("bare LF in the request line")
                if len(data) - pos >= self._line_limit + 2:
                    raise ProtocolError(f"request line longer than {self._line_limit} bytes", 414)
                self._seen = max(0, len(data) - pos - 1)
                return None
            line = line_end - pos
            scan = line_end
        else:
            scan = pos + self._seen
            line_end = pos + line
        block_start = line_end + 2
        head_end = data.find(b"\r\n\r\n", scan, block_start + self._block_limit + 2)
        if head_end < 0:
            if len(data) - block_start >= self._block_limit + 2:
                raise ProtocolError(f"header block larger than {self._block_limit} bytes", 431)
            if _BARE_LF_RE.search(data, scan):
                raise ProtocolError("bare LF in the request head")
            self._line = line
            self._seen = max(line, len(data) - pos - 3)
            return None
        self._line = -1
        self._seen = 0
        match = _REQUEST_LINE_RE.fullmatch(data, pos, line_end)
        if match is None:
            raise ProtocolError(_bad_request_line(bytes(data[pos:line_end])))
        method, target, version = match.groups()
        block = data[block_start : head_end + 2]
        if type(block) is not bytes:
            block = bytes(block)
        if version[:1] != b"1":
            raise ProtocolError(f"HTTP version {version.decode()} is not supported", 505)
        if target[:1] != b"/":
            _check_target(method, target)
        key = (method, version, block)
        head = self._memo.get(key)
        if head is None:
            head = self._framing(method, version, parse_fields(block, self._count_limit))
            if len(block) <= MAX_MEMO_HEAD:
                if len(self._memo) >= MEMO_SIZE:
                    self._memo.clear()
                self._memo[key] = head
        if head_end + 4 - pos <= MAX_MEMO_HEAD:
            whole = data[pos : head_end + 4]
            if len(self._heads) >= MEMO_SIZE:
                self._heads.clear()
            self._heads[whole if type(whole) is bytes else bytes(whole)] = (
                method,
                target,
                version,
                head,
            )
        buf.pos = head_end + 4
        return self._request(method, target, version, head)

    def _request(
        self, method: bytes, target: bytes, version: bytes, head: _Head
    ) -> tuple[Request, LengthReader | ChunkedReader, bool, bool]:
        """A fresh ``Request`` and body reader for a parsed head (events are never shared)."""
        headers, length, keep_alive, expect = head
        if length == 0:
            reader: LengthReader | ChunkedReader = NO_BODY
        elif length < 0:
            reader = ChunkedReader(self._limits)
        else:
            reader = LengthReader(length)
        return Request(method, target, version, list(headers)), reader, keep_alive, expect

    def _framing(self, method: bytes, version: bytes, headers: Headers) -> _Head:
        """Work out body framing, keep-alive and ``Expect: 100-continue`` from the head.

        The body's length is -1 for a chunked body.
        """
        if version != b"1.1" and version != b"1.0":
            version = b"1.1"  # RFC 9110 2.5: a later 1.x minor version is handled as 1.1
        if method == b"CONNECT":
            raise ProtocolError("CONNECT (tunnelling) is not implemented", 501)
        fields = tuple(headers)
        found: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            if name in _FRAMING_FIELDS:
                if name in found:
                    found[name].append(value)
                else:
                    found[name] = [value]
        hosts = found.get(b"host")
        if hosts is None:
            if version == b"1.1":
                raise ProtocolError("HTTP/1.1 request without a Host field")
        elif len(hosts) > 1 or _HOST_RE.fullmatch(hosts[0]) is None:
            raise ProtocolError("more than one Host field, or an invalid one")
        keep_alive = _keep_alive(version, found.get(b"connection"))
        lengths = found.get(b"content-length")
        if b"transfer-encoding" in found:
            if lengths is not None:
                raise ProtocolError("both Content-Length and Transfer-Encoding")
            if version == b"1.0":
                raise ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            _check_chunked(found[b"transfer-encoding"])
            length = -1
        elif lengths is not None:
            length = _content_length(lengths)
            limit = self._limits.max_body
            if limit is not None and length > limit:
                raise ProtocolError(f"body larger than {limit} bytes", 413)
            if not length:
                return fields, 0, keep_alive, False
        else:
            return fields, 0, keep_alive, False
        expect = version == b"1.1" and any(
            v.lower() == b"100-continue" for v in found.get(b"expect", ())
        )
        return fields, length, keep_alive, expect


def _keep_alive(version: bytes, connection: list[bytes] | None) -> bool:
    """Whether the client lets the connection persist (RFC 9112 9.3)."""
    if connection is None:
        return version == b"1.1"
    if len(connection) == 1 and (option := connection[0].lower()) in _SIMPLE_OPTIONS:
        return option == b"keep-alive" or (version == b"1.1" and option != b"close")
    options = {item.strip(b" \t").lower() for value in connection for item in value.split(b",")}
    return b"close" not in options and (version == b"1.1" or b"keep-alive" in options)


def _bad_request_line(line: bytes) -> str:
    """Say what is wrong with a request line that failed to parse (the slow, error path)."""
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        return "request line is not 'method SP target SP version'"
    method, target, version = parts
    if not TOKEN_RE.fullmatch(method):
        return f"invalid method {method[:20]!r}"
    if not re.fullmatch(rb"[\x21-\x7e]+", target):
        return f"invalid character in the request-target {target[:40]!r}"
    return f"invalid HTTP version {version[:20]!r}"


# Most bodies end without trailers: one shared, read-only event serves them all.
END_OF_MESSAGE: Final = EndOfMessage()


class LengthReader:
    """Reads a body of known length (``Content-Length``, or none at all)."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def read(self, buf: Buffer) -> Data | EndOfMessage | None:
        """Return the next body piece, the end, or ``None`` when more bytes must arrive."""
        remaining = self.remaining
        if remaining == 0:
            return END_OF_MESSAGE
        n = len(buf)
        if n == 0:
            return None
        n = min(n, remaining)
        self.remaining = remaining - n
        return Data(buf.take(n))


NO_BODY: Final = LengthReader(0)  # shared: a reader of nothing never changes


class _Chunk(enum.Enum):
    """Where a chunked reader is inside the chunked framing."""

    SIZE = "SIZE"  # expecting a chunk-size line
    DATA = "DATA"  # inside chunk-data
    DATA_END = "DATA_END"  # expecting the CRLF that ends chunk-data
    TRAILERS = "TRAILERS"  # after the last chunk: trailer fields, then an empty line


class ChunkedReader:
    """Reads a ``Transfer-Encoding: chunked`` body, its extensions ignored, its trailers kept."""

    __slots__ = (
        "_block_limit",
        "_body_limit",
        "_count_limit",
        "_line_limit",
        "_phase",
        "_remaining",
        "_seen",
        "_total",
    )

    def __init__(self, limits: HTTPLimits) -> None:
        self._line_limit = limits.max_chunk_line
        self._block_limit = limits.max_header_block
        self._count_limit = limits.max_header_count
        self._body_limit = limits.max_body
        self._phase = _Chunk.SIZE
        self._remaining = 0
        self._seen = 0
        self._total = 0

    def read(self, buf: Buffer) -> Data | EndOfMessage | None:
        """Return the next body piece, the end, or ``None`` when more bytes must arrive."""
        while True:
            phase = self._phase
            if phase is _Chunk.DATA:
                n = min(len(buf), self._remaining)
                if n == 0:
                    return None
                self._remaining -= n
                if self._remaining == 0:
                    self._phase = _Chunk.DATA_END
                return Data(buf.take(n))
            if phase is _Chunk.SIZE:
                if not self._read_size(buf):
                    return None
            elif phase is _Chunk.DATA_END:
                if len(buf) < 2:
                    if len(buf) == 1 and buf.data[buf.pos] != 0x0D:
                        raise ProtocolError("chunk data not followed by CRLF")
                    return None
                if not buf.data.startswith(b"\r\n", buf.pos):
                    raise ProtocolError("chunk data not followed by CRLF")
                buf.pos += 2
                self._phase = _Chunk.SIZE
            else:
                return self._read_trailers(buf)

    def _read_size(self, buf: Buffer) -> bool:
        """Consume a chunk-size line; False while it is incomplete."""
        data, pos = buf.data, buf.pos
        scan = pos + self._seen
        stop = pos + self._line_limit + 2
        end = data.find(b"\r\n", scan, stop)
        if end < 0:
            if data.find(b"\n", scan, stop) >= 0:
                raise ProtocolError("bare LF in a chunk-size line")
            if len(data) - pos >= self._line_limit + 2:
                raise ProtocolError(f"chunk-size line longer than {self._line_limit} bytes")
            self._seen = max(0, len(data) - pos - 1)
            return False
        self._seen = 0
        match = _CHUNK_LINE_RE.fullmatch(data, pos, end)
        if match is None:
            raise ProtocolError(f"invalid chunk-size line {bytes(data[pos:end])[:40]!r}")
        size = int(match[1], 16)
        buf.pos = end + 2
        self._total += size
        if self._body_limit is not None and self._total > self._body_limit:
            raise ProtocolError(f"body larger than {self._body_limit} bytes", 413)
        self._remaining = size
        self._phase = _Chunk.DATA if size else _Chunk.TRAILERS
        return True

    def _read_trailers(self, buf: Buffer) -> EndOfMessage | None:
        """Consume the trailer section; None while it is incomplete."""
        data, pos = buf.data, buf.pos
        if data.startswith(b"\r\n", pos):
            buf.pos = pos + 2
            return END_OF_MESSAGE
        scan = pos + self._seen
        end = data.find(b"\r\n\r\n", scan, pos + self._block_limit + 2)
        if end < 0:
            if len(data) - pos >= self._block_limit + 2:
                raise ProtocolError(f"trailer block larger than {self._block_limit} bytes", 431)
            if _BARE_LF_RE.search(data, scan):
                raise ProtocolError("bare LF in the trailer section")
            self._seen = max(0, len(data) - pos - 3)
            return None
        block = data[pos : end + 2]
        trailers = parse_fields(block if type(block) is bytes else bytes(block), self._count_limit)
        buf.pos = end + 4
        return EndOfMessage(trailers)
