"""Properties of the HTTP/1.1 server machine under hypothesis: any bytes at any chunking give
events or our ProtocolError (nothing else, never a hang); chunking never changes the events of
valid requests, which parse back to what was generated; llhttp (httptools) agrees on them and
on every response we write; and ``send`` never writes a header it should have refused."""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from portside.proto.http import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    HTTPLimits,
    LocalProtocolError,
    ProtocolError,
    Request,
    Response,
    ServerConnection,
    State,
)

pytestmark = pytest.mark.timeout(60)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REMOTE_STATUSES = {400, 413, 414, 431, 501, 505}
ANSWER = [Response(200, [(b"content-length", b"2")]), Data(b"ok"), EndOfMessage()]
FRAMING_NAMES = {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"}

# -- strategies ------------------------------------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=10).map(str.encode)
names = tokens.filter(lambda name: name.lower() not in FRAMING_NAMES)
VALUE_CHARS = "\t" + "".join(map(chr, range(0x20, 0x7F))) + "".join(map(chr, range(0x80, 0x100)))
values = st.text(VALUE_CHARS, max_size=20).map(lambda s: s.encode("latin-1").strip(b" \t"))
ows = st.sampled_from([b"", b" ", b"\t", b"  \t"])
targets = st.text("".join(map(chr, range(0x21, 0x7F))), max_size=20).map(
    lambda s: b"/" + s.encode()
)
methods = st.one_of(st.sampled_from([b"GET", b"POST", b"PUT", b"OPTIONS"]), tokens).filter(
    lambda m: m != b"CONNECT"
)


@dataclass
class Generated:
    """A request as bytes on the wire and the events it must parse into."""

    wire: bytes
    events: list[Event] = field(default_factory=list)


@st.composite
def fields_st(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Some header lines with optional whitespace, and the pairs they parse into."""
    wire, parsed = b"", []
    for name, value in draw(st.lists(st.tuples(names, values), max_size=6)):
        wire += name + b":" + draw(ows) + value + draw(ows) + b"\r\n"
        parsed.append((name.lower(), value))
    return wire, parsed


@st.composite
def requests_st(draw: st.DrawFn) -> Generated:
    """One valid keep-alive request: any method, fields, body framing, chunks and trailers."""
    method, target = draw(methods), draw(targets)
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    before, headers = draw(fields_st())
    after, more = draw(fields_st())
    body = draw(st.binary(max_size=100))
    framing = draw(st.sampled_from(["length", "chunked"] if version == b"1.1" else ["length"]))
    if not body and draw(st.booleans()):
        framing = "none"
    lines = b"Host: example.com\r\n"
    headers = [*headers, (b"host", b"example.com")]
    if version == b"1.0":
        lines += b"Connection: keep-alive\r\n"
        headers.append((b"connection", b"keep-alive"))
    trailers: list[tuple[bytes, bytes]] = []
    if framing == "length":
        lines += b"Content-Length: %d\r\n" % len(body)
        headers.append((b"content-length", b"%d" % len(body)))
        encoded = body
    elif framing == "chunked":
        lines += b"Transfer-Encoding: chunked\r\n"
        headers.append((b"transfer-encoding", b"chunked"))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        encoded = b""
        for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
            if end > start:
                ext = draw(st.sampled_from([b"", b";a=b", b' ; x="y z"', b";k"]))
                encoded += b"%x%s\r\n%s\r\n" % (end - start, ext, body[start:end])
        trailer_wire, trailers = draw(fields_st())
        encoded += b"0\r\n" + trailer_wire + b"\r\n"
    else:
        encoded = b""
    head = b"%s %s HTTP/%s\r\n" % (method, target, version) + before + lines + after + b"\r\n"
    events: list[Event] = [Request(method, target, version, headers + more)]
    if body:
        events.append(Data(body))
    events.append(EndOfMessage(trailers))
    return Generated(head + encoded, events)


@st.composite
def streams_st(draw: st.DrawFn) -> Generated:
    """One to three pipelined requests."""
    parts = draw(st.lists(requests_st(), min_size=1, max_size=3))
    return Generated(b"".join(p.wire for p in parts), [e for p in parts for e in p.events])


@st.composite
def mutated_st(draw: st.DrawFn) -> bytes:
    """A valid stream with a few bytes replaced, inserted or deleted."""
    data = bytearray(draw(streams_st()).wire)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        junk = draw(st.sampled_from([b"\r", b"\n", b" ", b"\t", b":", b"0", b"\x00", b"\xff", b""]))
        span = draw(st.integers(0, 2))
        data[at : at + span] = junk
    return bytes(data)


ATOMS = [b"GET / HTTP/1.1\r\n", b"Host: a\r\n", b"Transfer-Encoding: chunked\r\n", b"\r\n"]
ATOMS += [b"Content-Length: 3\r\n", b"5\r\nhello\r\n", b"0\r\n", b"\n", b"\r", b" ", b"x", b";"]
garbage = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(ATOMS), max_size=20).map(b"".join),
    mutated_st(),
)
limits_st = st.one_of(
    st.just(HTTPLimits()),
    st.builds(
        HTTPLimits,
        max_request_line=st.integers(1, 40),
        max_header_block=st.integers(1, 80),
        max_header_count=st.integers(1, 4),
        max_chunk_line=st.integers(1, 10),
        max_body=st.none() | st.integers(0, 50),
    ),
)

# -- driving ---------------------------------------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a] or [data]


def serve(pieces: list[bytes], limits: HTTPLimits | None = None) -> list[Event]:
    """Feed pieces then EOF, answering each request; bounded, so a hang fails the test."""
    conn = ServerConnection(limits)
    events: list[Event] = []
    for piece in [*pieces, b""]:
        conn.receive_data(piece)
        for _ in range(10 * len(piece) + 50):
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED or isinstance(event, ConnectionClosed):
                if conn.server_state is not State.SEND_RESPONSE:
                    break
                for answer in ANSWER:
                    conn.send(answer)
                continue
            assert isinstance(event, Event)
            events.append(event)
        else:
            raise AssertionError("next_event did not stop")
    return events


def merged(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, Data):
            if out and isinstance(out[-1], Data):
                out[-1] = Data(bytes(out[-1].data) + bytes(event.data))
            else:
                out.append(Data(bytes(event.data)))
        else:
            out.append(event)
    return out


# -- properties ------------------------------------------------------------------------------------


@FUZZ
@given(data=garbage, cuts=st.lists(st.integers(0, 250), max_size=6), limits=limits_st)
def test_any_bytes_give_events_or_our_protocol_error(
    data: bytes, cuts: list[int], limits: HTTPLimits
) -> None:
    pieces = split(data, cuts)
    try:
        serve(pieces, limits)
    except ProtocolError as exc:
        assert not isinstance(exc, LocalProtocolError), exc
        assert exc.status in REMOTE_STATUSES


@FUZZ
@given(data=garbage, cuts=st.lists(st.integers(0, 250), max_size=6))
def test_errors_do_not_depend_on_chunking(data: bytes, cuts: list[int]) -> None:
    def outcome(pieces: list[bytes]) -> tuple[list[Event], int | None]:
        events: list[Event] = []
        try:
            events = serve(pieces)
        except ProtocolError as exc:
            return [], exc.status
        return merged(events), None

    assert outcome(split(data, cuts)) == outcome([data])


@FUZZ
@given(stream=streams_st(), cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_chunking_does_not_change_the_events(stream: Generated, cuts: list[int]) -> None:
    whole = merged(serve([stream.wire]))
    assert whole == stream.events
    assert merged(serve(split(stream.wire, cuts))) == whole


@FUZZ
@given(request=requests_st())
def test_byte_at_a_time(request: Generated) -> None:
    pieces = [request.wire[i : i + 1] for i in range(len(request.wire))]
    assert merged(serve(pieces)) == request.events


LLHTTP_METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"PROPFIND"]


@FUZZ
@given(request=requests_st(), method=st.sampled_from(LLHTTP_METHODS))
def test_llhttp_agrees_on_valid_requests(request: Generated, method: bytes) -> None:
    """llhttp knows only registered methods and keeps trailing whitespace in values."""
    httptools = pytest.importorskip("httptools")
    seen: dict[str, object] = {"headers": [], "body": b""}

    class Callbacks:
        def on_url(self, url: bytes) -> None:
            seen["url"] = url

        def on_header(self, name: bytes, value: bytes) -> None:
            pair = (name.lower(), value.rstrip(b" \t"))
            seen["headers"].append(pair)  # type: ignore[attr-defined]

        def on_body(self, body: bytes) -> None:
            seen["body"] += body  # type: ignore[operator]

        def on_message_complete(self) -> None:
            seen["done"] = True

    first = request.events[0]
    assert isinstance(first, Request)
    wire = method + request.wire[len(first.method) :]
    assume(b" ;" not in wire)  # llhttp refuses whitespace before a chunk extension
    parser = httptools.HttpRequestParser(Callbacks())
    parser.feed_data(wire)
    assert merged(serve([wire]))[1:] == request.events[1:]
    trailers = request.events[-1]
    assert isinstance(trailers, EndOfMessage)
    assert seen.get("done") and parser.get_method() == method and seen["url"] == first.target
    assert seen["headers"] == first.headers + trailers.trailers
    assert seen["body"] == b"".join(bytes(e.data) for e in request.events if isinstance(e, Data))


responses_st = st.tuples(
    st.integers(200, 599).filter(lambda s: s not in (204, 304)),
    st.lists(st.tuples(names, values), max_size=5),
    st.lists(st.binary(max_size=40), max_size=4),
    st.booleans(),
    st.lists(st.tuples(names, values), max_size=3),
)


@FUZZ
@given(response=responses_st)
def test_llhttp_reads_back_every_response_we_write(
    response: tuple[int, list[tuple[bytes, bytes]], list[bytes], bool, list[tuple[bytes, bytes]]],
) -> None:
    httptools = pytest.importorskip("httptools")
    status, headers, pieces, with_length, trailers = response
    body = b"".join(pieces)
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    while conn.next_event() is not PAUSED:
        pass
    if with_length:
        headers = [*headers, (b"Content-Length", b"%d" % len(body))]
        trailers = []
    wire = conn.send(Response(status, headers))
    wire += b"".join(conn.send(Data(piece)) for piece in pieces)
    wire += conn.send(EndOfMessage(trailers))
    seen: dict[str, object] = {"headers": [], "body": b""}

    class Callbacks:
        def on_header(self, name: bytes, value: bytes) -> None:
            seen["headers"].append((name, value))  # type: ignore[attr-defined]

        def on_body(self, chunk: bytes) -> None:
            seen["body"] += chunk  # type: ignore[operator]

        def on_message_complete(self) -> None:
            seen["done"] = True

    parser = httptools.HttpResponseParser(Callbacks())
    parser.feed_data(wire)
    framing = [] if with_length else [(b"transfer-encoding", b"chunked")]
    assert parser.get_status_code() == status and seen.get("done")
    assert seen["headers"] == headers + framing + trailers
    assert seen["body"] == body
    assert conn.keep_alive and conn.server_state is State.IDLE


@FUZZ
@given(
    header=st.tuples(st.binary(max_size=8), st.binary(max_size=12)),
    reason=st.binary(max_size=8),
)
def test_send_refuses_what_could_inject(header: tuple[bytes, bytes], reason: bytes) -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    while conn.next_event() is not PAUSED:
        pass
    try:
        wire = conn.send(Response(200, [header], reason=reason))
    except LocalProtocolError:
        assert conn.server_state is State.ERROR
        return
    status_line, *lines, empty, end = wire.split(b"\r\n")
    assert (empty, end) == (b"", b"")
    assert len(lines) == 2 and lines[0] == header[0] + b": " + header[1]
    assert b"\n" not in wire.replace(b"\r\n", b"") and b"\r" not in wire.replace(b"\r\n", b"")
    assert status_line.startswith(b"HTTP/1.1 200 ")


def messages(events: list[Event]) -> list[tuple[bytes, bytes, bytes]]:
    """(method, target, body) of every complete request among ``events``."""
    done, current = [], (b"", b"", b"")
    for event in events:
        if isinstance(event, Request):
            current = (event.method, event.target, b"")
        elif isinstance(event, Data):
            current = (*current[:2], current[2] + bytes(event.data))
        elif isinstance(event, EndOfMessage):
            done.append(current)
    return done


@FUZZ
@given(data=mutated_st())
def test_no_framing_disagreement_with_llhttp(data: bytes) -> None:
    """Where llhttp and we both accept a request, we agree on where it and its body end: the
    disagreement request smuggling needs."""
    httptools = pytest.importorskip("httptools")
    events: list[Event] = []
    conn = ServerConnection()
    conn.receive_data(data)
    try:
        for _ in range(10 * len(data) + 50):
            event = conn.next_event()
            if event is NEED_DATA or isinstance(event, ConnectionClosed):
                break
            if event is PAUSED:
                if conn.server_state is not State.SEND_RESPONSE:
                    break
                for answer in ANSWER:
                    conn.send(answer)
            else:
                assert isinstance(event, Event)
                events.append(event)
    except ProtocolError:
        pass
    theirs: list[tuple[bytes, bytes, bytes]] = []

    class Callbacks:
        url = body = b""

        def on_url(self, url: bytes) -> None:
            self.url, self.body = url, b""

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            theirs.append((parser.get_method(), self.url, self.body))

    parser = httptools.HttpRequestParser(Callbacks())
    try:
        parser.feed_data(data)
    except httptools.HttpParserError:
        pass
    ours = messages(events)
    both = min(len(ours), len(theirs))
    assert ours[:both] == theirs[:both]
