"""Examples for the HTTP/1.1 server machine, each run at every chunking (whole, byte at a time,
every split in two) and with trailing data, as h11's ``tr()`` does."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from portside.proto import http
from portside.proto.http import (
    MAX_CHUNK_LINE,
    MAX_HEADER_BLOCK,
    MAX_HEADER_COUNT,
    MAX_REQUEST_LINE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    HTTPLimits,
    InformationalResponse,
    LocalProtocolError,
    ProtocolError,
    Request,
    Response,
    ServerConnection,
    State,
)

# -- helpers -----------------------------------------------------------------------------------


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    """Whole, one byte at a time, and every split into two pieces."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def normalize(events: list[Event]) -> list[Event]:
    """Merge neighbouring ``Data`` events (their split depends on the chunking)."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(bytes(out[-1].data) + bytes(event.data))
        elif isinstance(event, Data):
            out.append(Data(bytes(event.data)))
        else:
            out.append(event)
    return out


def drain(conn: ServerConnection) -> list[Event]:
    """Every event available now; fails if ``next_event`` never says NEED_DATA or PAUSED."""
    events: list[Event] = []
    for _ in range(10_000):
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            return events
        assert isinstance(event, Event)
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events
    raise AssertionError("next_event never paused")


def tr(
    data: bytes, expected: list[Event], *, eof: bool = False, limits: HTTPLimits | None = None
) -> None:
    """Feed ``data`` at every chunking (then EOF if asked); the events must be ``expected``."""
    for pieces in chunkings(data):
        conn = ServerConnection(limits)
        events: list[Event] = []
        for piece in pieces:
            conn.receive_data(piece)
            events += drain(conn)
        if eof:
            conn.receive_data(b"")
            events += drain(conn)
        assert normalize(events) == expected, pieces
    if expected and isinstance(expected[-1], EndOfMessage) and not eof:
        conn = ServerConnection(limits)
        conn.receive_data(data + b"TRAILING")
        assert normalize(drain(conn)) == expected
        assert conn.trailing_data == (b"TRAILING", False)


def tr_error(
    data: bytes, status: int, *, eof: bool = False, limits: HTTPLimits | None = None
) -> None:
    """Feed ``data`` at every chunking: a ``ProtocolError`` with ``status`` must follow, and
    the machine must refuse anything after it."""
    trailing = [] if eof else [[data + b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"]]
    for pieces in [*chunkings(data), *trailing]:
        conn = ServerConnection(limits)
        with pytest.raises(ProtocolError) as info:
            for piece in pieces:
                conn.receive_data(piece)
                drain(conn)
            if eof:
                conn.receive_data(b"")
                drain(conn)
        assert type(info.value) is ProtocolError
        assert info.value.status == status, (pieces, info.value)
        assert conn.client_state is State.ERROR and not conn.keep_alive
        with pytest.raises(ProtocolError) as again:
            conn.next_event()
        assert again.value.status == status
        with pytest.raises(ProtocolError):
            conn.receive_data(b"more")


def head(*lines: bytes, start: bytes = b"GET / HTTP/1.1") -> bytes:
    return b"\r\n".join([start, *lines]) + b"\r\n\r\n"


def post(*lines: bytes) -> bytes:
    return head(b"Host: a", *lines, start=b"POST / HTTP/1.1")


def ok(body: bytes = b"") -> list[Event]:
    return [Response(200, [(b"content-length", b"%d" % len(body))]), Data(body), EndOfMessage()]


def respond(conn: ServerConnection, events: list[Event]) -> bytes:
    return b"".join(conn.send(event) for event in events)


def exchange(conn: ServerConnection, data: bytes) -> list[Event]:
    """Read a request (sending nothing), return its events."""
    conn.receive_data(data)
    return drain(conn)


GET = head(b"Host: a")
GET_REQUEST = Request(b"GET", b"/", b"1.1", [(b"host", b"a")])

# -- requests that parse -----------------------------------------------------------------------


def test_simple_get() -> None:
    data = b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n\r\n"
    headers = [(b"host", b"example.com"), (b"user-agent", b"t/1")]
    tr(data, [Request(b"GET", b"/path?q=1", b"1.1", headers), EndOfMessage()])


def test_header_names_lowercased_values_trimmed_and_kept_in_order() -> None:
    data = head(
        b"Host: a",
        b"X-Mixed-Case:  Value With  Spaces \t",
        b"Empty:",
        b"Empty-Too: \t ",
        b"Tab:\tx\ty",
        b"Obs-Text: caf\xc3\xa9",
        b"Dup: 1",
        b"DUP: 2",
    )
    headers = [
        (b"host", b"a"),
        (b"x-mixed-case", b"Value With  Spaces"),
        (b"empty", b""),
        (b"empty-too", b""),
        (b"tab", b"x\ty"),
        (b"obs-text", b"caf\xc3\xa9"),
        (b"dup", b"1"),
        (b"dup", b"2"),
    ]
    tr(data, [Request(b"GET", b"/", b"1.1", headers), EndOfMessage()])


@pytest.mark.parametrize(
    ("start", "lines"),
    [
        (b"GET http://example.com/x?y HTTP/1.1", [b"Host: example.com"]),  # absolute-form
        (b"OPTIONS * HTTP/1.1", [b"Host: a"]),
        (b"GET / HTTP/1.0", []),  # no Host needed before 1.1
        (b"GET / HTTP/1.2", [b"Host: a"]),  # a later 1.x minor is served as 1.1
        (b"PROPFIND /dav HTTP/1.1", [b"Host: [::1]:8080"]),
        (b"get /lower-case-method HTTP/1.1", [b"Host: a"]),
        (b"GET /%7Euser;p=1?q=a/b#frag HTTP/1.1", [b"Host: a"]),
    ],
)
def test_request_line_forms(start: bytes, lines: list[bytes]) -> None:
    method, target, version = start.split(b" ")
    headers = [(line.split(b":")[0].lower(), line.partition(b": ")[2]) for line in lines]
    expected = Request(method, target, version.removeprefix(b"HTTP/"), headers)
    tr(head(*lines, start=start), [expected, EndOfMessage()])


def test_empty_lines_before_a_request_are_skipped() -> None:
    tr(b"\r\n\r\n" + GET, [GET_REQUEST, EndOfMessage()])


def test_content_length_body() -> None:
    request = Request(b"POST", b"/", b"1.1", [(b"host", b"a"), (b"content-length", b"11")])
    tr(
        post(b"Content-Length: 11") + b"hello world",
        [request, Data(b"hello world"), EndOfMessage()],
    )


def test_zero_content_length() -> None:
    request = Request(b"POST", b"/", b"1.1", [(b"host", b"a"), (b"content-length", b"0")])
    tr(post(b"Content-Length: 0"), [request, EndOfMessage()])


@pytest.mark.parametrize("value", [b"5, 5", b"05", b"5,5"])
def test_repeated_identical_content_length_is_accepted(value: bytes) -> None:
    conn = ServerConnection()
    events = exchange(conn, post(b"Content-Length: " + value) + b"hello")
    assert normalize(events[1:]) == [Data(b"hello"), EndOfMessage()]


def test_content_length_in_two_fields() -> None:
    events = exchange(ServerConnection(), post(b"Content-Length: 3", b"content-length: 3") + b"abc")
    assert normalize(events[1:]) == [Data(b"abc"), EndOfMessage()]


def test_chunked_body_with_extensions_and_trailers() -> None:
    data = post(b"Transfer-Encoding: chunked") + (
        b"5\r\nhello\r\n"
        b'6;name=val;q="x y" \r\n world\r\n'
        b"000A\r\n0123456789\r\n"
        b"0;last\r\nX-Trailer: yes\r\nX-Two:  2 \r\n\r\n"
    )
    request = Request(b"POST", b"/", b"1.1", [(b"host", b"a"), (b"transfer-encoding", b"chunked")])
    trailers = [(b"x-trailer", b"yes"), (b"x-two", b"2")]
    tr(data, [request, Data(b"hello world0123456789"), EndOfMessage(trailers)])


@pytest.mark.parametrize("coding", [b"chunked", b"Chunked", b" CHUNKED "])
def test_empty_chunked_body(coding: bytes) -> None:
    events = exchange(ServerConnection(), post(b"Transfer-Encoding:" + coding) + b"0\r\n\r\n")
    assert events[1:] == [EndOfMessage()]


def test_large_chunked_body_fed_in_odd_pieces() -> None:
    body = bytes(range(256)) * 80
    chunked = b"".join(b"%x\r\n%s\r\n" % (n, body[i : i + n]) for i, n in _spans(len(body), 777))
    data = post(b"Transfer-Encoding: chunked") + chunked + b"0\r\n\r\n"
    conn = ServerConnection()
    events: list[Event] = []
    for i in range(0, len(data), 1013):
        conn.receive_data(data[i : i + 1013])
        events += drain(conn)
    assert normalize(events[1:]) == [Data(body), EndOfMessage()]


def _spans(total: int, step: int) -> Iterator[tuple[int, int]]:
    for i in range(0, total, step):
        yield i, min(step, total - i)


def test_body_data_is_not_copied() -> None:
    conn = ServerConnection()
    payload = post(b"Content-Length: 5") + b"hello"
    conn.receive_data(payload)
    _, data, _ = drain(conn)
    assert isinstance(data, Data) and isinstance(data.data, memoryview)
    assert data.data.obj is payload
    conn = ServerConnection()
    conn.receive_data(post(b"Content-Length: 10"))
    drain(conn)
    second = b"0123456789"
    conn.receive_data(second)
    event = conn.next_event()
    assert isinstance(event, Data) and event.data is second


# -- requests that do not ------------------------------------------------------------------------

SMUGGLING = {
    "content-length and transfer-encoding": post(
        b"Content-Length: 5", b"Transfer-Encoding: chunked"
    ),
    "transfer-encoding and content-length": post(
        b"Transfer-Encoding: chunked", b"Content-Length: 5"
    ),
    "differing content-length list": post(b"Content-Length: 5, 6"),
    "differing content-length fields": post(b"Content-Length: 5", b"Content-Length: 6"),
    "non-numeric content-length": post(b"Content-Length: abc"),
    "plus-signed content-length": post(b"Content-Length: +5"),
    "negative content-length": post(b"Content-Length: -5"),
    "content-length with inner space": post(b"Content-Length: 1 2"),
    "oversize content-length": post(b"Content-Length: " + b"1" * 19),
    "empty content-length": post(b"Content-Length:"),
    "hex content-length": post(b"Content-Length: 0x5"),
    "fractional content-length": post(b"Content-Length: 5.0"),
    "content-length list with a hole": post(b"Content-Length: 5,"),
    "transfer-encoding gzip": post(b"Transfer-Encoding: gzip"),
    "chunked not last": post(b"Transfer-Encoding: chunked, gzip"),
    "chunked not last across fields": post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: x"),
    "chunked twice": post(b"Transfer-Encoding: chunked, chunked"),
    "transfer-encoding identity": post(b"Transfer-Encoding: identity"),
    "empty transfer-encoding": post(b"Transfer-Encoding:"),
    "chunked with a parameter": post(b"Transfer-Encoding: chunked;q=1"),
    "empty coding before chunked": post(b"Transfer-Encoding: , chunked"),
    "transfer-encoding in 1.0": head(b"Transfer-Encoding: chunked", start=b"POST / HTTP/1.0"),
    "obs-fold": head(b"Host: a", b"X-Long: a", b" b"),
    "obs-fold with tab": head(b"Host: a", b"X-Long: a", b"\tb"),
    "obs-fold on the first field": head(b" Host: a"),
    "space before colon": head(b"Host : a"),
    "tab before colon": post(b"Content-Length\t: 5"),
    "space in a name": head(b"Host: a", b"X Y: z"),
    "at sign in a name": head(b"Host: a", b"X@Y: z"),
    "NUL in a name": head(b"Host: a", b"X\x00: z"),
    "empty name": head(b"Host: a", b": z"),
    "no colon": head(b"Host: a", b"garbage"),
    "NUL in a value": head(b"Host: a", b"X: a\x00b"),
    "CTL in a value": head(b"Host: a", b"X: a\x01b"),
    "DEL in a value": head(b"Host: a", b"X: a\x7fb"),
    "ESC in a value": head(b"Host: a", b"X: \x1b[31m"),
    "bare CR in a value": head(b"Host: a", b"X: a\rb"),
    "bare LF between fields": head(b"Host: a\nX: b"),
    "bare LF ending the head": b"GET / HTTP/1.1\r\nHost: a\n\r\n",
    "bare LF everywhere": b"GET / HTTP/1.1\nHost: a\n\n",
    "missing host": head(),
    "two hosts": head(b"Host: a", b"Host: b"),
    "host with a space": head(b"Host: a b"),
    "host with a slash": head(b"Host: a/b"),
    "bad method": head(b"Host: a", start=b"G(T / HTTP/1.1"),
    "double space": head(b"Host: a", start=b"GET  / HTTP/1.1"),
    "tab separator": head(b"Host: a", start=b"GET\t/ HTTP/1.1"),
    "trailing space": head(b"Host: a", start=b"GET / HTTP/1.1 "),
    "relative target": head(b"Host: a", start=b"GET a HTTP/1.1"),
    "asterisk for GET": head(b"Host: a", start=b"GET * HTTP/1.1"),
    "DEL in target": head(b"Host: a", start=b"GET /\x7f HTTP/1.1"),
    "raw UTF-8 in target": head(b"Host: a", start=b"GET /caf\xc3\xa9 HTTP/1.1"),
    "no version": head(b"Host: a", start=b"GET /"),
    "two-digit minor": head(b"Host: a", start=b"GET / HTTP/1.10"),
    "no dot": head(b"Host: a", start=b"GET / HTTP/11"),
    "lower-case protocol": head(b"Host: a", start=b"GET / http/1.1"),
    "no minor": head(b"Host: a", start=b"GET / HTTP/1"),
}


@pytest.mark.parametrize("data", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_smuggling_shapes_and_malformed_heads_are_400(data: bytes) -> None:
    tr_error(data, 400)


CHUNKED = post(b"Transfer-Encoding: chunked")
BAD_CHUNKS = {
    "non-hex size": b"g\r\nhello\r\n0\r\n\r\n",
    "negative size": b"-5\r\nhello\r\n0\r\n\r\n",
    "0x prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
    "17 hex digits": b"1" + b"0" * 16 + b"\r\n",
    "space after size": b"5 \r\nhello\r\n0\r\n\r\n",
    "empty size line": b"\r\nhello\r\n0\r\n\r\n",
    "data not followed by CRLF": b"5\r\nhelloXX0\r\n\r\n",
    "bare CR after data": b"5\r\nhello\r0\r\n\r\n",
    "bare LF after data": b"5\r\nhello\n0\r\n\r\n",
    "bare LF in size line": b"5\nhello\r\n0\r\n\r\n",
    "bare LF after last chunk": b"5\r\nhello\r\n0\n\n",
    "NUL in extension": b"5;\x00\r\nhello\r\n0\r\n\r\n",
    "bad trailer": b"0\r\nX : y\r\n\r\n",
    "folded trailer": b"0\r\nX: y\r\n z\r\n\r\n",
    "bare LF in trailers": b"0\r\nX: y\n\r\n",
    "long extension": b"5;" + b"x" * MAX_CHUNK_LINE + b"\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("body", BAD_CHUNKS.values(), ids=BAD_CHUNKS.keys())
def test_bad_chunked_framing_is_400(body: bytes) -> None:
    tr_error(CHUNKED + body, 400)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (head(b"Host: a", start=b"GET / HTTP/2.0"), 505),
        (head(b"Host: a", start=b"GET / HTTP/0.9"), 505),
        (head(b"Host: a", start=b"PRI * HTTP/2.0"), 505),
        (head(b"Host: a", start=b"CONNECT a:443 HTTP/1.1"), 501),
        (post(b"Transfer-Encoding: gzip, chunked"), 501),
        (post(b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"), 501),
    ],
)
def test_unsupported_versions_and_features(data: bytes, status: int) -> None:
    tr_error(data, status)


def test_truncated_messages_are_400_at_eof() -> None:
    tr_error(b"GET / HTTP/1.1\r\nHost:", 400, eof=True)
    tr_error(post(b"Content-Length: 10") + b"short", 400, eof=True)
    tr_error(CHUNKED + b"5\r\nhel", 400, eof=True)
    tr_error(CHUNKED + b"0\r\nX: y\r\n", 400, eof=True)


# -- limits --------------------------------------------------------------------------------------


def test_default_limits() -> None:
    limits = HTTPLimits()
    assert (limits.max_request_line, limits.max_header_block) == (
        MAX_REQUEST_LINE,
        MAX_HEADER_BLOCK,
    )
    assert (limits.max_header_count, limits.max_chunk_line) == (MAX_HEADER_COUNT, MAX_CHUNK_LINE)
    assert limits.max_body is None
    with pytest.raises(ValueError, match="positive"):
        HTTPLimits(max_header_count=0)
    with pytest.raises(ValueError, match="max_body"):
        HTTPLimits(max_body=-1)


def test_request_line_limit_is_414() -> None:
    limits = HTTPLimits(max_request_line=30)
    line = b"GET /" + b"a" * 16 + b" HTTP/1.1"  # exactly 30 bytes
    request = Request(b"GET", line[4:-9], b"1.1", [(b"host", b"a")])
    tr(head(b"Host: a", start=line), [request, EndOfMessage()], limits=limits)
    tr_error(head(b"Host: a", start=b"GET /" + b"a" * 17 + b" HTTP/1.1"), 414, limits=limits)
    tr_error(b"GET /" + b"a" * 40, 414, limits=limits)  # never completed


def test_header_block_limit_is_431() -> None:
    limits = HTTPLimits(max_header_block=20)
    fields = (b"Host: a", b"X: 012345")  # 7 + 2 + 9 + 2 = 20 bytes with their CRLFs
    request = Request(b"GET", b"/", b"1.1", [(b"host", b"a"), (b"x", b"012345")])
    tr(head(*fields), [request, EndOfMessage()], limits=limits)
    tr_error(head(b"Host: a", b"X: 0123456"), 431, limits=limits)
    tr_error(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 40, 431, limits=limits)


def test_header_count_limit_is_431() -> None:
    limits = HTTPLimits(max_header_count=3)
    events = exchange(ServerConnection(limits), head(b"Host: a", b"A: 1", b"B: 2"))
    assert len(events) == 2
    tr_error(head(b"Host: a", b"A: 1", b"B: 2", b"C: 3"), 431, limits=limits)


def test_trailer_limits_are_431() -> None:
    trailers = b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
    tr_error(CHUNKED + trailers, 431, limits=HTTPLimits(max_header_count=2))
    tr_error(CHUNKED + b"0\r\nX: " + b"y" * 50, 431, limits=HTTPLimits(max_header_block=40))


def test_chunk_line_limit() -> None:
    limits = HTTPLimits(max_chunk_line=10)
    events = exchange(ServerConnection(limits), CHUNKED + b"5;xxxxxxxx\r\nhello\r\n0\r\n\r\n")
    assert normalize(events[1:]) == [Data(b"hello"), EndOfMessage()]
    tr_error(CHUNKED + b"5;xxxxxxxxx\r\nhello\r\n0\r\n\r\n", 400, limits=limits)


def test_body_limit_is_413() -> None:
    limits = HTTPLimits(max_body=10)
    events = exchange(ServerConnection(limits), post(b"Content-Length: 10") + b"0123456789")
    assert normalize(events[1:]) == [Data(b"0123456789"), EndOfMessage()]
    tr_error(post(b"Content-Length: 11"), 413, limits=limits)
    tr_error(CHUNKED + b"6\r\nabcdef\r\n5\r\nabcde\r\n0\r\n\r\n", 413, limits=limits)


# -- errors and EOF ------------------------------------------------------------------------------


def test_an_error_answer_can_still_be_sent_and_closes() -> None:
    conn = ServerConnection()
    with pytest.raises(ProtocolError) as info:
        exchange(conn, b"BAD\r\n\r\n")
    assert info.value.status == 400 and conn.server_state is State.IDLE
    out = respond(conn, [Response(400, [(b"content-length", b"0")]), EndOfMessage()])
    assert out == b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    assert (conn.server_state, conn.keep_alive) == (State.MUST_CLOSE, False)


def test_an_error_in_a_body_is_answered_in_the_exchange() -> None:
    conn = ServerConnection()
    with pytest.raises(ProtocolError):
        exchange(conn, CHUNKED + b"zz\r\n")
    assert conn.server_state is State.SEND_RESPONSE
    out = conn.send(Response(400, []))
    assert out == (
        b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )


def test_clean_eof_between_requests() -> None:
    conn = ServerConnection()
    conn.receive_data(b"")
    assert drain(conn) == [ConnectionClosed()] and conn.next_event() == ConnectionClosed()
    assert conn.client_state is State.CLOSED and not conn.keep_alive
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"late")


def test_an_answer_without_a_request_stops_reading() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET / HT")
    assert conn.next_event() is NEED_DATA
    out = respond(conn, [Response(408, [(b"content-length", b"0")]), EndOfMessage()])
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and not conn.keep_alive
    conn.receive_data(b"TP/1.1\r\nHost: a\r\n\r\n")
    assert conn.next_event() is PAUSED
    conn.receive_data(b"")
    conn.receive_data(b"")  # a second EOF changes nothing
    assert conn.trailing_data == (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True)


def test_half_close_after_a_request_still_gets_the_response() -> None:
    conn = ServerConnection()
    conn.receive_data(GET)
    conn.receive_data(b"")
    assert drain(conn) == [GET_REQUEST, EndOfMessage(), ConnectionClosed()]
    out = respond(conn, ok(b"hi"))
    assert out.endswith(b"connection: close\r\n\r\nhi")
    assert conn.server_state is State.MUST_CLOSE


def test_pipelined_requests_before_eof_are_all_served() -> None:
    conn = ServerConnection()
    conn.receive_data(GET * 3)
    conn.receive_data(b"")
    for _ in range(2):
        assert drain(conn) == [GET_REQUEST, EndOfMessage()]
        assert conn.keep_alive
        respond(conn, ok())
    assert drain(conn) == [GET_REQUEST, EndOfMessage(), ConnectionClosed()]
    assert b"connection: close" in respond(conn, ok())


# -- exchanges: pipelining, keep-alive, 100-continue, HEAD ---------------------------------------


def serve(
    pieces: list[bytes], answer: Callable[[Request], list[Event]]
) -> tuple[list[Event], bytes]:
    """Run a connection over ``pieces``, answering each request when the machine pauses."""
    conn = ServerConnection()
    events: list[Event] = []
    out = b""
    request: Request | None = None
    for piece in [*pieces, b""]:
        conn.receive_data(piece)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED or isinstance(event, ConnectionClosed):
                if conn.server_state is not State.SEND_RESPONSE:
                    break
                assert request is not None
                out += respond(conn, answer(request))
                continue
            assert isinstance(event, Event)
            request = event if isinstance(event, Request) else request
            events.append(event)
    return normalize(events), out


def test_pipelining_answers_in_order_at_every_chunking() -> None:
    data = (
        head(b"Host: a", start=b"GET /1 HTTP/1.1")
        + post(b"Content-Length: 3")
        + b"abc"
        + CHUNKED
        + b"2\r\nde\r\n0\r\n\r\n"
        + head(b"Host: a", start=b"GET /4 HTTP/1.1")
    )

    def answer(request: Request) -> list[Event]:
        return ok(request.target + b"!")

    expected = None
    for pieces in chunkings(data):
        result = serve(pieces, answer)
        expected = expected or result
        assert result == expected
    assert expected is not None
    events, out = expected
    assert [e.target for e in events if isinstance(e, Request)] == [b"/1", b"/", b"/", b"/4"]
    assert [e for e in events if isinstance(e, Data)] == [Data(b"abc"), Data(b"de")]
    assert out.count(b"HTTP/1.1 200 OK") == 4
    assert out.index(b"/1!") < out.index(b"/!") < out.index(b"/4!")


def test_many_pipelined_requests_in_ragged_pieces() -> None:
    data = b"".join(head(b"Host: a", start=b"GET /%d HTTP/1.1" % i) for i in range(300))
    conn = ServerConnection()
    targets = []
    for start in range(0, len(data), 997):
        conn.receive_data(data[start : start + 997])
        while (event := conn.next_event()) is not NEED_DATA:
            if event is PAUSED:
                respond(conn, ok())
            elif isinstance(event, Request):
                targets.append(event.target)
    assert targets == [b"/%d" % i for i in range(300)]


def test_paused_until_the_response_is_finished() -> None:
    conn = ServerConnection()
    conn.receive_data(GET * 2)
    assert drain(conn) == [GET_REQUEST, EndOfMessage()]
    assert (conn.client_state, conn.server_state) == (State.DONE, State.SEND_RESPONSE)
    assert conn.next_event() is PAUSED
    conn.send(Response(200, []))
    assert conn.next_event() is PAUSED
    conn.send(Data(b"x"))
    assert conn.next_event() is PAUSED
    assert conn.send(EndOfMessage()) == b"0\r\n\r\n"
    assert (conn.client_state, conn.server_state) == (State.IDLE, State.IDLE)
    assert drain(conn) == [GET_REQUEST, EndOfMessage()]


def test_no_request_is_read_after_connection_close() -> None:
    conn = ServerConnection()
    conn.receive_data(head(b"Host: a", b"Connection: close") + GET)
    assert len(drain(conn)) == 2 and not conn.keep_alive
    assert respond(conn, ok()).endswith(b"connection: close\r\n\r\n")
    assert (conn.client_state, conn.server_state) == (State.MUST_CLOSE, State.MUST_CLOSE)
    assert conn.next_event() is PAUSED
    assert conn.trailing_data == (GET, False)
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()


def test_early_response_then_the_body_is_drained() -> None:
    conn = ServerConnection()
    conn.receive_data(post(b"Content-Length: 4"))
    assert len(drain(conn)) == 1 and conn.client_state is State.SEND_BODY
    respond(conn, ok())
    assert conn.server_state is State.DONE and conn.keep_alive
    conn.receive_data(b"body" + GET)
    assert drain(conn) == [Data(b"body"), EndOfMessage(), GET_REQUEST, EndOfMessage()]


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive", "added"),
    [
        (b"1.1", [], True, None),
        (b"1.1", [b"Connection: close"], False, b"connection: close"),
        (b"1.1", [b"Connection: Close"], False, b"connection: close"),
        (b"1.1", [b"Connection: keep-alive, close"], False, b"connection: close"),
        (b"1.1", [b"Connection: keep-alive", b"Connection: close"], False, b"connection: close"),
        (b"1.1", [b"Connection: Upgrade", b"Upgrade: websocket"], True, None),
        (b"1.1", [b"Connection: x-custom"], True, None),
        (b"1.0", [], False, b"connection: close"),
        (b"1.0", [b"Connection: keep-alive"], True, b"connection: keep-alive"),
        (b"1.0", [b"Connection: Keep-Alive"], True, b"connection: keep-alive"),
        (b"1.0", [b"Connection: x, keep-alive"], True, b"connection: keep-alive"),
        (b"1.0", [b"Connection: keep-alive, close"], False, b"connection: close"),
    ],
)
def test_keep_alive(
    version: bytes, connection: list[bytes], keep_alive: bool, added: bytes | None
) -> None:
    conn = ServerConnection()
    exchange(conn, head(b"Host: a", *connection, start=b"GET / HTTP/" + version))
    assert conn.keep_alive is keep_alive
    out = conn.send(Response(200, [(b"content-length", b"0")]))
    assert out.count(b"connection:") == (added is not None)
    if added:
        assert added in out
    conn.send(EndOfMessage())
    assert conn.server_state is (State.IDLE if keep_alive else State.MUST_CLOSE)


def test_response_connection_close_ends_keep_alive() -> None:
    conn = ServerConnection()
    exchange(conn, GET)
    out = respond(conn, [Response(200, [(b"Connection", b"close")]), EndOfMessage()])
    assert out.count(b"onnection") == 1 and not conn.keep_alive


def test_100_continue_sent_when_the_body_is_wanted() -> None:
    conn = ServerConnection()
    events = exchange(conn, post(b"Content-Length: 2", b"Expect: 100-Continue"))
    assert len(events) == 1 and conn.expects_continue
    assert conn.want_body() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert (conn.want_body(), conn.expects_continue) == (b"", False)
    conn.receive_data(b"ok")
    assert drain(conn) == [Data(b"ok"), EndOfMessage()]
    respond(conn, ok())
    assert conn.keep_alive


def test_100_continue_forgotten_once_the_body_arrives() -> None:
    conn = ServerConnection()
    exchange(conn, post(b"Content-Length: 2", b"Expect: 100-continue") + b"o")
    assert not conn.expects_continue and conn.want_body() == b""


def test_answering_before_asking_for_the_body_closes() -> None:
    conn = ServerConnection()
    exchange(conn, post(b"Content-Length: 2", b"Expect: 100-continue"))
    out = respond(conn, [Response(413, [(b"content-length", b"0")]), EndOfMessage()])
    assert b"connection: close" in out and not conn.keep_alive
    assert conn.want_body() == b""


@pytest.mark.parametrize(
    "data",
    [
        head(b"Host: a", b"Expect: 100-continue"),  # no body
        head(b"Expect: 100-continue", b"Content-Length: 1", start=b"POST / HTTP/1.0"),
        post(b"Content-Length: 1", b"Expect: something-else"),
    ],
)
def test_100_continue_not_expected(data: bytes) -> None:
    conn = ServerConnection()
    exchange(conn, data)
    assert not conn.expects_continue and conn.want_body() == b""


def test_head_response_keeps_headers_and_drops_the_body() -> None:
    conn = ServerConnection()
    exchange(conn, head(b"Host: a", start=b"HEAD / HTTP/1.1"))
    out = respond(conn, ok(b"hello"))
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    assert conn.keep_alive and conn.server_state is State.IDLE
    exchange(conn, head(b"Host: a", start=b"HEAD / HTTP/1.1"))
    out = respond(conn, [Response(200, []), Data(b"x" * 100), EndOfMessage([(b"t", b"1")])])
    assert out == b"HTTP/1.1 200 OK\r\n\r\n" and conn.keep_alive


# -- sending -------------------------------------------------------------------------------------


def test_response_bytes() -> None:
    conn = ServerConnection()
    exchange(conn, GET)
    assert conn.send(Response(200, [(b"Content-Length", b"5"), (b"X", b"y")])) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\n"
    )
    assert conn.send(Data(b"he")) + conn.send(Data(memoryview(b"llo"))) == b"hello"
    assert conn.send(EndOfMessage()) == b""
    exchange(conn, GET)
    assert conn.send(Response(599, [(b"content-length", b"0")], reason=b"Custom Thing")) == (
        b"HTTP/1.1 599 Custom Thing\r\ncontent-length: 0\r\n\r\n"
    )
    conn.send(EndOfMessage())
    exchange(conn, GET)
    assert conn.send(Response(599, [(b"content-length", b"0")])).startswith(b"HTTP/1.1 599 \r\n")


def test_chunked_response_with_trailers() -> None:
    conn = ServerConnection()
    exchange(conn, GET)
    assert conn.send(Response(200, [(b"content-type", b"text/plain")])) == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    assert conn.send(Data(b"hello")) == b"5\r\nhello\r\n"
    assert conn.send(Data(b"")) == b""
    assert conn.send(Data(bytearray(b"x" * 17))) == b"11\r\n" + b"x" * 17 + b"\r\n"
    trailers = [(b"x-checksum", b"abc"), (b"x-n", b"1")]
    assert conn.send(EndOfMessage(trailers)) == b"0\r\nx-checksum: abc\r\nx-n: 1\r\n\r\n"
    assert conn.keep_alive and conn.server_state is State.IDLE


def test_app_chunked_header_is_not_repeated() -> None:
    conn = ServerConnection()
    exchange(conn, GET)
    out = conn.send(Response(200, [(b"Transfer-Encoding", b"chunked")]))
    assert out.lower().count(b"transfer-encoding") == 1
    assert conn.send(Data(b"a")) == b"1\r\na\r\n"


def test_http_1_0_response_without_length_is_close_delimited() -> None:
    conn = ServerConnection()
    exchange(conn, head(b"Connection: keep-alive", start=b"GET / HTTP/1.0"))
    out = conn.send(Response(200, [(b"transfer-encoding", b"chunked")]))
    assert out == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
    assert conn.send(Data(b"raw")) == b"raw"
    conn.send(EndOfMessage())
    assert not conn.keep_alive and conn.server_state is State.MUST_CLOSE


def test_informational_responses() -> None:
    conn = ServerConnection()
    exchange(conn, GET)
    hints = InformationalResponse(103, [(b"link", b"</a.css>; rel=preload")])
    assert conn.send(hints) == b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
    assert conn.server_state is State.SEND_RESPONSE
    conn = ServerConnection()
    exchange(conn, head(start=b"GET / HTTP/1.0"))
    assert conn.send(hints) == b""  # never a 1xx to an HTTP/1.0 client


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(status: int) -> None:
    conn = ServerConnection()
    exchange(conn, GET)
    headers = [(b"content-length", b"10")] if status == 304 else []
    out = respond(conn, [Response(status, headers), Data(b""), EndOfMessage()])
    assert b"transfer-encoding" not in out and conn.keep_alive
    exchange(conn, GET)
    conn.send(Response(status, []))
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"x"))


def test_sending_connection_closed() -> None:
    conn = ServerConnection()
    assert conn.send(ConnectionClosed()) == b""
    assert conn.server_state is State.CLOSED and not conn.keep_alive


BAD_SENDS: dict[str, list[Event]] = {
    "data before response": [Data(b"x")],
    "end before response": [EndOfMessage()],
    "request": [Request(b"GET", b"/")],
    "two responses": [Response(200, [(b"content-length", b"0")]), Response(200)],
    "CRLF injection in a value": [Response(200, [(b"x", b"a\r\nSet-Cookie: evil")])],
    "LF in a value": [Response(200, [(b"x", b"a\nb")])],
    "NUL in a value": [Response(200, [(b"x", b"a\x00")])],
    "colon in a name": [Response(200, [(b"x:y", b"z")])],
    "space in a name": [Response(200, [(b"x y", b"z")])],
    "empty name": [Response(200, [(b"", b"z")])],
    "CRLF in reason": [Response(200, reason=b"OK\r\nX: y")],
    "1xx as a Response": [Response(100)],
    "status too large": [Response(1000)],
    "101": [InformationalResponse(101)],
    "final status as informational": [InformationalResponse(200)],
    "bad content-length": [Response(200, [(b"content-length", b"-1")])],
    "two content-lengths": [Response(200, [(b"content-length", b"1"), (b"content-length", b"1")])],
    "gzip coding": [Response(200, [(b"transfer-encoding", b"gzip")])],
    "length and chunked": [
        Response(200, [(b"content-length", b"1"), (b"transfer-encoding", b"chunked")])
    ],
    "too much data": [Response(200, [(b"content-length", b"1")]), Data(b"ab")],
    "too little data": [Response(200, [(b"content-length", b"3")]), Data(b"ab"), EndOfMessage()],
    "trailers without chunked": [
        Response(200, [(b"content-length", b"0")]),
        EndOfMessage([(b"x", b"y")]),
    ],
    "bad trailer": [Response(200), EndOfMessage([(b"x", b"\r\n")])],
    "204 with a length": [Response(204, [(b"content-length", b"0")])],
}


@pytest.mark.parametrize("events", BAD_SENDS.values(), ids=BAD_SENDS.keys())
def test_bad_sends_raise_and_poison_the_sender(events: list[Event]) -> None:
    conn = ServerConnection()
    exchange(conn, GET)
    with pytest.raises(LocalProtocolError) as info:
        respond(conn, events)
    assert info.value.status == 500
    assert conn.server_state is State.ERROR and not conn.keep_alive
    with pytest.raises(LocalProtocolError):
        conn.send(ConnectionClosed())


# -- the module's surface ------------------------------------------------------------------------


def test_events_are_frozen_and_data_repr_is_readable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        GET_REQUEST.method = b"POST"  # type: ignore[misc]
    assert repr(Data(memoryview(b"ab"))) == "Data(data=b'ab')"
    assert "100 bytes" in repr(Data(b"x" * 100))


def test_exports_exist() -> None:
    for name in http.__all__:
        assert getattr(http, name) is not None


def test_no_io_modules_are_imported() -> None:
    code = (
        "import sys, portside.proto.http\n"
        "bad = {'asyncio', 'socket', 'ssl', 'portside.core'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_buffered_counts_unconsumed_bytes() -> None:
    conn = ServerConnection()
    assert conn.buffered == 0
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HT")
    assert isinstance(conn.next_event(), Request)
    assert conn.buffered == len(b"GET /next HT")


def test_send_external_counts_against_content_length() -> None:
    conn = ServerConnection()
    exchange(conn, head(b"Host: a"))
    conn.send(Response(200, [(b"content-length", b"10")]))
    assert conn.send_external(0) == 0
    assert conn.send_external(6) == 6
    with pytest.raises(LocalProtocolError):
        conn.send(EndOfMessage())  # 4 bytes still owed
    conn = ServerConnection()
    exchange(conn, head(b"Host: a"))
    conn.send(Response(200, [(b"content-length", b"10")]))
    assert conn.send_external(6) + len(conn.send(Data(b"1234"))) == 10
    assert conn.send(EndOfMessage()) == b""
    assert conn.server_state is State.IDLE and conn.keep_alive  # ready for the next request


def test_send_external_is_zero_for_head() -> None:
    conn = ServerConnection()
    exchange(conn, head(b"Host: a", start=b"HEAD / HTTP/1.1"))
    conn.send(Response(200, [(b"content-length", b"10")]))
    assert conn.send_external(10) == 0
    assert conn.send(EndOfMessage()) == b""


@pytest.mark.parametrize(
    ("headers", "size", "state"),
    [
        ([(b"content-length", b"3")], 4, True),  # more than the length
        ([], 3, True),  # chunked: the machine must frame it
        ([(b"content-length", b"3")], -1, True),
        ([(b"content-length", b"3")], 3, False),  # before the response head
    ],
)
def test_send_external_misuse(headers: list[tuple[bytes, bytes]], size: int, state: bool) -> None:
    conn = ServerConnection()
    exchange(conn, head(b"Host: a"))
    if state:
        conn.send(Response(200, headers))
    with pytest.raises(LocalProtocolError):
        conn.send_external(size)
    assert conn.server_state is State.ERROR


def test_repeated_heads_give_fresh_events() -> None:
    """Heads are memoized per connection; the events handed out must still be independent."""
    conn = ServerConnection()
    request = b"GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n"
    first = exchange(conn, request)
    conn.send_response(Response(200, [(b"content-length", b"0")]))
    assert isinstance(first[0], Request)
    first[0].headers.append((b"mutated", b"yes"))
    second = exchange(conn, request.replace(b"/a", b"/b"))
    assert isinstance(second[0], Request)
    assert second[0].target == b"/b"
    assert second[0].headers == [(b"host", b"a"), (b"x-a", b"1")]
    conn.send_response(Response(200, [(b"content-length", b"0")]))
    for i in range(20):  # more distinct heads than the memo holds
        events = exchange(conn, b"GET / HTTP/1.1\r\nHost: a\r\nX-N: %d\r\n\r\n" % i)
        assert isinstance(events[0], Request) and events[0].headers[1] == (b"x-n", b"%d" % i)
        conn.send_response(Response(200, [(b"content-length", b"0")]))


def test_send_response_matches_separate_events() -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    one, three = ServerConnection(), ServerConnection()
    for conn in (one, three):
        exchange(conn, head(b"Host: a"))
    whole = one.send_response(Response(200, headers), b"hello")
    parts = respond(three, [Response(200, headers), Data(b"hello"), EndOfMessage()])
    assert whole == parts
    assert one.server_state is three.server_state is State.IDLE


def test_response_fields_are_checked_every_time() -> None:
    """Serializing fields is memoized; a bad value is refused however often it is sent."""
    for _ in range(3):
        conn = ServerConnection()
        exchange(conn, head(b"Host: a"))
        assert conn.send(Response(200, [(b"content-length", b"0"), (b"x", b"1")])).endswith(
            b"x: 1\r\n\r\n"
        )
    for _ in range(2):
        conn = ServerConnection()
        exchange(conn, head(b"Host: a"))
        with pytest.raises(LocalProtocolError):
            conn.send(Response(200, [(b"x", b"a\r\nInjected: 1")]))
    conn = ServerConnection()
    exchange(conn, head(b"Host: a"))
    mutable = [(b"content-length", b"1"), (b"x", bytearray(b"v"))]  # unhashable: no memo
    assert conn.send(Response(200, mutable)).endswith(b"x: v\r\n\r\n")  # type: ignore[arg-type]


def test_remembered_heads_depend_on_the_request() -> None:
    """The machine remembers the heads it made per set of fields; never across contexts."""
    from portside.proto import _http_write

    fields = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    requests = [
        head(b"Host: a"),
        head(b"Host: a", b"Connection: close"),
        head(start=b"GET / HTTP/1.0"),
        head(b"Connection: keep-alive", start=b"GET / HTTP/1.0"),
        head(b"Host: a", start=b"HEAD / HTTP/1.1"),
        head(b"Host: a", b"Content-Length: 1", b"Expect: 100-continue"),
    ]

    def answer(request: bytes, status: int) -> tuple[bytes, bool]:
        conn = ServerConnection()
        exchange(conn, request)
        return conn.send_response(Response(status, fields), b"ok"), conn.keep_alive

    fresh = []
    for request in requests:
        for status in (200, 404):
            _http_write._fields_memo.clear()
            fresh.append(answer(request, status))
    for _ in range(2):  # from the memo now, in any order
        remembered = [answer(r, s) for r in reversed(requests) for s in (404, 200)]
        assert remembered == fresh[::-1]
    assert fresh[0] == (b"HTTP/1.1 200 OK\r\n" + http_fields(fields) + b"\r\nok", True)


def http_fields(fields: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(b"%s: %s\r\n" % f for f in fields)


def test_only_small_heads_are_remembered() -> None:
    """The per-connection memos hold heads of at most 4 KiB: an idle connection stays small."""
    from portside.proto._http_parse import MAX_MEMO_HEAD

    conn = ServerConnection()
    big = head(b"Host: a", b"Cookie: " + b"c" * 5000)
    for _ in range(3):
        events = exchange(conn, big)
        assert isinstance(events[0], Request) and len(events[0].headers[1][1]) == 5000
        conn.send_response(Response(200, [(b"content-length", b"0")]))
    exchange(conn, GET)
    reader = conn._head
    assert reader._heads and all(len(h) <= MAX_MEMO_HEAD for h in reader._heads)
    assert reader._memo and all(len(k[2]) <= MAX_MEMO_HEAD for k in reader._memo)
