"""Sans-I/O HTTP/1.1, server side: bytes in, events out; events in, bytes out.

``ServerConnection`` is driven the way h11's ``Connection`` is::

    conn = ServerConnection()
    conn.receive_data(received)            # b"" means the client sent EOF
    while (event := conn.next_event()) not in (NEED_DATA, PAUSED):
        ...                                # Request, Data*, EndOfMessage, or ConnectionClosed
    transport.write(conn.send(Response(200, [(b"content-length", b"2")])))
    transport.write(conn.send(Data(b"ok")) + conn.send(EndOfMessage()))
    if not conn.keep_alive: transport.close()

One request is handled at a time: once a request has been read, ``next_event`` returns
``PAUSED`` until its response is finished, then moves on to the next request already buffered
(pipelining), so responses always go out in order. While paused, stop reading from the
transport: the machine buffers whatever it is given.

Both sides' states are ``State`` values, changed in one place (``_process``: the
``_TRANSITIONS`` table, then two cross-side rules) apart from the move to ``ERROR``.
Malformed input raises ``ProtocolError`` whose ``status`` is the answer to send (400, 413, 414,
431, 501, 505); the machine then refuses further input, but a response may still be sent.
Misuse by the caller raises ``LocalProtocolError`` (status 500). The parser is our own, pure
Python, one regex pass per header block (``_http_parse``); ``bench/http_parser.py`` measures it
against httptools (llhttp), which is faster per head but more lenient where smuggling lives.
Clients and servers repeat themselves, so each connection remembers its last few request heads
(whole, and by header block: parsed once; every ``Request`` handed out is still a fresh
object), and the fields of a response are checked and serialized once per distinct set, with
the head made of them per request context (status, version, method, keep-alive; see
``_http_write``); results are always computed anew for anything not seen before.

Decisions a user should know:

- Line endings are strictly CRLF: a bare LF or CR anywhere in a head or the chunked framing is a
  400. Empty lines before a request line are skipped (RFC 9112 2.2).
- The request line is exactly ``method SP target SP HTTP/x.y``; the target must be visible ASCII
  (raw UTF-8 is a 400: clients percent-encode it), and ``*`` is accepted only for OPTIONS.
  HTTP/1.1 needs exactly one valid ``Host``. Major versions other than 1 are a 505.
- Header lines are ``token ":" OWS value OWS``: obs-fold, whitespace before the colon and any
  control character but HTAB are a 400. Chunk extensions are skipped, within a length limit.
- Only ``Transfer-Encoding: chunked`` is understood; a chunked body under another coding
  (``gzip, chunked``) is a 501, and a final coding other than chunked is a 400 (RFC 9112 6.3).
- ``Content-Length`` may repeat only with one value (``5, 5``); anything else is a 400.
- ``CONNECT`` is a 501 and ``Upgrade`` is ignored: this machine never switches protocols.
- ``Expect: 100-continue`` is honoured only on HTTP/1.1 requests with a body; other
  expectations are ignored. Answering such a request before asking for its body (see
  ``want_body``) makes the connection close afterwards, since the client may or may not send
  the body it was holding back.
- A response without ``Content-Length`` is chunked for HTTP/1.1 clients and close-delimited for
  HTTP/1.0 ones; the body of a response to ``HEAD`` is discarded, while its headers are sent as
  given. 1xx responses to HTTP/1.0 clients are dropped (RFC 9110 15.2).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final

from portside.errors import ProtocolError
from portside.proto._http_events import (
    NEED_DATA,
    PAUSED,
    BytesLike,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    InformationalResponse,
    Request,
    Response,
    Signal,
)
from portside.proto._http_parse import (
    END_OF_MESSAGE,
    MAX_CHUNK_LINE,
    MAX_HEADER_BLOCK,
    MAX_HEADER_COUNT,
    MAX_REQUEST_LINE,
    NO_BODY,
    Buffer,
    ChunkedReader,
    HeadReader,
    HTTPLimits,
    LengthReader,
)
from portside.proto._http_write import (
    NO_TRAILERS,
    LocalProtocolError,
    check_fields,
    fields_bytes,
    head_bytes,
    response_fields,
    status_line,
)

__all__ = [
    "MAX_CHUNK_LINE",
    "MAX_HEADER_BLOCK",
    "MAX_HEADER_COUNT",
    "MAX_REQUEST_LINE",
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "HTTPLimits",
    "Headers",
    "InformationalResponse",
    "LocalProtocolError",
    "ProtocolError",
    "Request",
    "Response",
    "ServerConnection",
    "Signal",
    "State",
]


class State(enum.Enum):
    """Where one side of the connection is in the current request/response exchange."""

    IDLE = "IDLE"  # between exchanges
    SEND_RESPONSE = "SEND_RESPONSE"  # server only: a request arrived, no final response yet
    SEND_BODY = "SEND_BODY"  # the message head is done; body pieces follow
    DONE = "DONE"  # this side's message is complete
    MUST_CLOSE = "MUST_CLOSE"  # complete, and the connection will not be reused
    CLOSED = "CLOSED"  # this side has closed (client EOF, or we sent ConnectionClosed)
    ERROR = "ERROR"  # a protocol error; nothing more is accepted from this side

    # Members are singletons: identity hashing (in C) keeps the table lookups cheap, where
    # Enum's own __hash__ is Python code on every dict lookup.
    __hash__ = object.__hash__


class _Side(enum.Enum):
    """The two parties: the client, whose events we read, and us, the server, who send."""

    CLIENT = "CLIENT"
    SERVER = "SERVER"

    __hash__ = object.__hash__


_C, _S = _Side.CLIENT, _Side.SERVER
IDLE, SEND_RESPONSE, SEND_BODY = State.IDLE, State.SEND_RESPONSE, State.SEND_BODY
DONE, MUST_CLOSE, CLOSED = State.DONE, State.MUST_CLOSE, State.CLOSED

# (side, its state, the event it produces) -> its next state. A missing entry is an error.
_TRANSITIONS: Final[dict[tuple[_Side, State, type[Event]], State]] = {
    (_C, IDLE, Request): SEND_BODY,
    (_C, IDLE, ConnectionClosed): CLOSED,
    (_C, SEND_BODY, Data): SEND_BODY,
    (_C, SEND_BODY, EndOfMessage): DONE,
    (_C, DONE, ConnectionClosed): CLOSED,
    (_C, MUST_CLOSE, ConnectionClosed): CLOSED,
    (_C, CLOSED, ConnectionClosed): CLOSED,
    (_S, IDLE, Response): SEND_BODY,  # an error answer before any request; then we close
    (_S, IDLE, ConnectionClosed): CLOSED,
    (_S, SEND_RESPONSE, InformationalResponse): SEND_RESPONSE,
    (_S, SEND_RESPONSE, Response): SEND_BODY,
    (_S, SEND_RESPONSE, ConnectionClosed): CLOSED,
    (_S, SEND_BODY, Data): SEND_BODY,
    (_S, SEND_BODY, EndOfMessage): DONE,
    (_S, SEND_BODY, ConnectionClosed): CLOSED,
    (_S, DONE, ConnectionClosed): CLOSED,
    (_S, MUST_CLOSE, ConnectionClosed): CLOSED,
    (_S, CLOSED, ConnectionClosed): CLOSED,
}
# (side, event) -> (other side, required state, its next state): what one side's event does to
# the other. Beyond these, ``_process`` applies the two cross-side rules: with keep-alive off,
# DONE becomes MUST_CLOSE; with both sides DONE, both return to IDLE for the next exchange.
_TRIGGERED: Final[dict[tuple[_Side, type[Event]], tuple[_Side, State, State]]] = {
    (_C, Request): (_S, IDLE, SEND_RESPONSE),
}
# The two tables joined for the hot path: (side, state, event) -> (next state, what the event
# does to the other side: (required state, its next state) or None).
_STEPS: Final = {
    key: (state, None if (t := _TRIGGERED.get((key[0], key[2]))) is None else t[1:])
    for key, state in _TRANSITIONS.items()
}


class _WholeResponse(Event):
    """``Response`` followed by ``EndOfMessage``, as one step (``send_response``'s hot path)."""

    __slots__ = ()


_WHOLE_RESPONSE: Final = _WholeResponse()
# Its steps are the two events' steps composed, so the table stays the only truth.
_STEPS.update(
    {
        (_S, state, _WholeResponse): (_TRANSITIONS[_S, after, EndOfMessage], None)
        for (side, state, kind), after in _TRANSITIONS.items()
        if side is _S and kind is Response
    }
)


class _Framing(enum.Enum):
    """How the body of the response being sent is delimited."""

    LENGTH = "LENGTH"  # Content-Length
    CHUNKED = "CHUNKED"  # Transfer-Encoding: chunked
    CLOSE = "CLOSE"  # the end of the connection
    EMPTY = "EMPTY"  # 204 and 304: no body allowed
    DISCARD = "DISCARD"  # a response to HEAD: body written by the app is dropped


class ServerConnection:
    """The server side of one HTTP/1.1 connection, as a state machine without I/O.

    Call order: ``receive_data`` whenever bytes arrive (``b""`` at EOF), then ``next_event``
    until it returns ``NEED_DATA`` or ``PAUSED``; each exchange reads ``Request``, ``Data``*,
    ``EndOfMessage`` and sends ``InformationalResponse``*, ``Response``, ``Data``*,
    ``EndOfMessage``. After the response, close the transport unless ``keep_alive``.
    """

    __slots__ = (
        "_body",
        "_buf",
        "_client",
        "_eof",
        "_error",
        "_expect_100",
        "_framing",
        "_head",
        "_keep_alive",
        "_method",
        "_remaining",
        "_server",
        "_version",
    )

    def __init__(self, limits: HTTPLimits | None = None) -> None:
        self._buf = Buffer()
        self._head = HeadReader(limits or HTTPLimits())
        self._client = IDLE
        self._server = IDLE
        self._eof = False
        self._error: ProtocolError | None = None
        self._keep_alive = True
        self._new_exchange()

    def _new_exchange(self) -> None:
        """Forget everything about the previous request and response."""
        self._body: LengthReader | ChunkedReader | None = None
        self._method: bytes | None = None
        self._version: bytes | None = None  # b"1.0" or b"1.1" (any later 1.x)
        self._expect_100 = False
        self._framing = _Framing.CLOSE
        self._remaining = 0

    @property
    def client_state(self) -> State:
        """The client's state: what kind of event ``next_event`` can produce next."""
        return self._client

    @property
    def server_state(self) -> State:
        """Our state: what kind of event ``send`` accepts next."""
        return self._server

    @property
    def keep_alive(self) -> bool:
        """False once the connection must be closed after the current response."""
        return self._keep_alive

    @property
    def expects_continue(self) -> bool:
        """True while the client holds back a body until it gets ``100 Continue``."""
        return self._expect_100

    @property
    def buffered(self) -> int:
        """How many received bytes are not consumed yet (a partial head, pipelined requests)."""
        buf = self._buf
        return len(buf.data) - buf.pos

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """The bytes received but not consumed, and whether EOF has been received."""
        return self._buf.rest(), self._eof

    def receive_data(self, data: BytesLike) -> None:
        """Add bytes received from the client; ``b""`` means the client sent EOF."""
        if self._error is not None:
            raise ProtocolError(f"input refused after an error: {self._error}", self._error.status)
        if self._eof:
            if data:
                raise LocalProtocolError("received data after EOF")
            return
        if data:
            self._buf.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event | Signal:
        """Return the next event from the client, or ``NEED_DATA`` or ``PAUSED``.

        Raises ``ProtocolError`` (with the status to answer) on malformed input, and again on
        every later call.
        """
        if self._error is not None:
            raise ProtocolError(f"input refused after an error: {self._error}", self._error.status)
        client = self._client
        try:
            if client is SEND_BODY and self._body is NO_BODY:
                event: Event | Signal = END_OF_MESSAGE  # a request without a body ends at once
            else:
                event = _READERS[client](self)
        except ProtocolError as exc:
            self._error = exc
            self._client = State.ERROR
            self._keep_alive = False
            raise
        if type(event) is not Signal:
            self._process(_C, event)  # type: ignore[arg-type]
        return event

    def want_body(self) -> bytes:
        """Say the application is about to read the request body.

        Returns the bytes of a ``100 Continue`` to write if the client is waiting for one and
        no response has started; otherwise ``b""``.
        """
        if self._expect_100 and self._server is SEND_RESPONSE:
            return self.send(InformationalResponse(100))
        return b""

    def send(self, event: Event) -> bytes:
        """Turn an event of ours into the bytes to write to the client.

        Raises ``LocalProtocolError`` if the event is not allowed now or is malformed; the
        sending side is then unusable.
        """
        if self._server is State.ERROR:
            raise LocalProtocolError("cannot send after an earlier error")
        if (_S, self._server, type(event)) not in _TRANSITIONS:
            self._fail_local()
            raise LocalProtocolError(f"cannot send {type(event).__name__} in {self._server.name}")
        try:
            if type(event) is Data:
                data = self._write_data(event.data)
            elif type(event) is Response:
                data = self._write_response(event)
            elif type(event) is EndOfMessage:
                data = self._write_end(event.trailers)
            elif type(event) is InformationalResponse:
                data = self._write_informational(event)
            else:  # ConnectionClosed
                self._keep_alive = False
                data = b""
        except LocalProtocolError:
            self._fail_local()
            raise
        self._process(_S, event)
        return data

    def send_response(
        self, response: Response, body: BytesLike = b"", *, external: int = 0
    ) -> bytes:
        """Send a whole response in one call: ``response``, then ``body``, then the end.

        The same as sending ``Response``, ``Data(body)`` and ``EndOfMessage()`` (and raises
        as they would), at a fraction of the cost. ``external`` counts body bytes the caller
        writes itself after the returned ones, as :meth:`send_external` does. Returns the
        head and the body to write (the head alone for a response to ``HEAD``).
        """
        if self._server is not SEND_RESPONSE and (_S, self._server, Response) not in _STEPS:
            return self.send(response)  # raises: a response is not allowed now
        try:
            head = self._write_response(response)
        except LocalProtocolError:
            self._fail_local()
            raise
        framing = self._framing
        if not external and (
            framing is _Framing.DISCARD
            or (framing is _Framing.LENGTH and len(body) == self._remaining)
        ):  # the common cases: what the three separate steps would do, in one
            self._remaining = 0
            self._process(_S, _WHOLE_RESPONSE)
            if framing is _Framing.DISCARD or not body:
                return head
            return head + body if type(body) is bytes else head + bytes(body)
        self._process(_S, response)
        if external:
            self.send_external(external)
        try:
            data = self._write_data(body) if body else b""
            self._write_end(NO_TRAILERS)
        except LocalProtocolError:
            self._fail_local()
            raise
        self._process(_S, END_OF_MESSAGE)
        return head + data if data else head

    def send_external(self, size: int) -> int:
        """Account for ``size`` bytes of response body that the caller writes itself.

        For bodies sent without passing through the machine (``os.sendfile``): the response
        must have a ``Content-Length``, and ``size`` counts against it as ``Data`` would.
        Returns how many of those bytes to actually write: ``size``, or 0 for a response to
        ``HEAD``. Raises ``LocalProtocolError`` as ``send`` does.
        """
        if self._server is not SEND_BODY or type(size) is not int or size < 0:
            self._fail_local()
            raise LocalProtocolError(f"cannot send {size!r} external body bytes now")
        framing = self._framing
        if framing is _Framing.DISCARD or not size:
            return 0
        if framing is not _Framing.LENGTH or size > self._remaining:
            self._fail_local()
            raise LocalProtocolError("external body bytes need a Content-Length that has room")
        self._remaining -= size
        return size

    def _fail_local(self) -> None:
        self._server = State.ERROR
        self._keep_alive = False

    # -- state changes: every one goes through here ------------------------------------------

    def _process(self, side: _Side, event: Event) -> None:
        """Apply the table's transition for ``event``, what it triggers, and the settle rules."""
        if side is _C:
            self._client, triggered = _STEPS[_C, self._client, type(event)]
            if triggered is not None and self._server is triggered[0]:
                self._server = triggered[1]
        else:
            self._server, triggered = _STEPS[_S, self._server, type(event)]
            if triggered is not None and self._client is triggered[0]:
                self._client = triggered[1]
        # the settle rules
        if not self._keep_alive:
            if self._client is DONE:
                self._client = MUST_CLOSE
            if self._server is DONE:
                self._server = MUST_CLOSE
        elif self._client is DONE and self._server is DONE:
            self._client = self._server = IDLE
            self._new_exchange()

    # -- readers, chosen by the client's state (see _READERS) --------------------------------

    def _read_request(self) -> Event | Signal:
        if self._server is not IDLE:
            return PAUSED  # we answered without a request (an error); nothing more is read
        buf = self._buf
        if buf.pos >= len(buf.data) and not self._eof:
            return NEED_DATA  # the common wait between requests, without the head reader
        head = self._head.read(buf)
        if head is None:
            if not self._eof:
                return NEED_DATA
            if len(self._buf):
                raise ProtocolError("connection closed in the middle of a request head")
            self._keep_alive = False
            return ConnectionClosed()
        request, self._body, keep_alive, self._expect_100 = head
        self._keep_alive = self._keep_alive and keep_alive
        self._method = request.method
        self._version = b"1.0" if request.http_version == b"1.0" else b"1.1"
        return request

    def _read_body(self) -> Event | Signal:
        assert self._body is not None
        event = self._body.read(self._buf)
        if event is None:
            if self._eof:
                raise ProtocolError("connection closed in the middle of a request body")
            return NEED_DATA
        self._expect_100 = False  # the client sent the body without waiting, or it is empty
        return event

    def _read_nothing(self) -> Event | Signal:
        if self._eof and (self._client is not DONE or not len(self._buf)):
            self._keep_alive = False
            return ConnectionClosed()
        return PAUSED

    # -- writers -----------------------------------------------------------------------------

    def _write_informational(self, event: InformationalResponse) -> bytes:
        if type(event.status_code) is not int or not 100 <= event.status_code <= 199:
            raise LocalProtocolError(f"invalid informational status {event.status_code!r}")
        if event.status_code == 101:
            raise LocalProtocolError("101 Switching Protocols is not implemented")
        if event.status_code == 100:
            self._expect_100 = False
        check_fields(event.headers)
        if self._version != b"1.1":
            return b""  # RFC 9110 15.2: no 1xx to an HTTP/1.0 client
        return head_bytes(event.status_code, event.reason, event.headers)

    def _write_response(self, event: Response) -> bytes:
        status = event.status_code
        if type(status) is not int or not 200 <= status <= 999:
            raise LocalProtocolError(f"a Response needs a final status (200-999), not {status!r}")
        fields = response_fields(event.headers)
        version, method = self._version, self._method
        # What follows is a pure function of these and the fields: remembered with them.
        reason = event.reason
        key = (status, reason, version, method, self._keep_alive, self._expect_100)
        known = fields.heads.get(key) if type(reason) is bytes else None
        if known is not None:
            head, self._framing, self._remaining, self._keep_alive = known
            self._expect_100 = False
            return head
        codings = fields.codings
        block = fields.block
        if codings:
            if fields.lengths or b",".join(codings).strip(b" \t").lower() != b"chunked":
                raise LocalProtocolError("a response may use Transfer-Encoding: chunked only")
            if version != b"1.1":  # RFC 9112 6.1: no transfer codings for 1.0
                kept = [(n, v) for n, v in event.headers if n.lower() != b"transfer-encoding"]
                block = b"".join([b"%s: %s\r\n" % field for field in kept])
        if method == b"HEAD":
            framing = _Framing.DISCARD
        elif status == 204 or status == 304:
            if codings or (fields.lengths and status == 204):
                raise LocalProtocolError(f"a {status} response cannot declare a body")
            framing = _Framing.EMPTY
        elif fields.length is not None:
            framing, self._remaining = _Framing.LENGTH, fields.length
        elif version == b"1.1":
            framing = _Framing.CHUNKED
            if not codings:
                block += b"transfer-encoding: chunked\r\n"
        else:
            framing = _Framing.CLOSE
        self._framing = framing
        if framing is _Framing.CLOSE or fields.close or self._expect_100 or method is None:
            self._keep_alive = False
        self._expect_100 = False
        if not self._keep_alive:
            if not fields.close:
                block += b"connection: close\r\n"
        elif version == b"1.0" and not fields.keep_alive:
            block += b"connection: keep-alive\r\n"
        head = b"%s%s\r\n" % (status_line(status, reason), block)
        if type(reason) is bytes:
            remaining = self._remaining if framing is _Framing.LENGTH else 0
            fields.remember(key, (head, framing, remaining, self._keep_alive))
        return head

    def _write_data(self, data: BytesLike) -> bytes:
        framing, size = self._framing, len(data)
        if framing is _Framing.CHUNKED:
            if not size:
                return b""  # an empty chunk would end the body
            return b"".join((b"%x\r\n" % size, data, b"\r\n"))
        if framing is _Framing.LENGTH:
            if size > self._remaining:
                raise LocalProtocolError(f"{size} bytes is more than the {self._remaining} left")
            self._remaining -= size
        elif framing is _Framing.EMPTY:
            if size:
                raise LocalProtocolError("this response cannot have a body")
            return b""
        elif framing is _Framing.DISCARD:
            return b""
        return data if type(data) is bytes else bytes(data)

    def _write_end(self, trailers: Headers) -> bytes:
        framing = self._framing
        if framing is _Framing.CHUNKED:
            if not trailers:
                return b"0\r\n\r\n"
            check_fields(trailers)
            return b"0\r\n" + fields_bytes(trailers)
        if trailers and framing is not _Framing.DISCARD:
            raise LocalProtocolError("trailers need a chunked response")
        if framing is _Framing.LENGTH and self._remaining:
            raise LocalProtocolError(f"response ended {self._remaining} bytes short")
        return b""


_READERS: Final[dict[State, Callable[[ServerConnection], Event | Signal]]] = {
    IDLE: ServerConnection._read_request,
    SEND_BODY: ServerConnection._read_body,
    DONE: ServerConnection._read_nothing,
    MUST_CLOSE: ServerConnection._read_nothing,
    CLOSED: ServerConnection._read_nothing,
}
