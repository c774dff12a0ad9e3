"""Examples for the framing engine, each run at every chunking (whole, byte at a time, every
split) and with trailing data, through both ``next_frame`` and ``next_chunk``."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterator

import pytest

from portside.proto.framing import (
    DEFAULT_MAX_LINE,
    DEFAULT_MAX_STRING,
    END,
    NEED_DATA,
    Chunk,
    Counted,
    Delimited,
    Framer,
    FrameTooLong,
    FramingError,
    LengthPrefixed,
    MalformedFrame,
    Mode,
    Netstring,
    Raw,
)

Outcome = tuple[list[bytes], type[FramingError] | None, bytes]


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    """Every way to split short data; for longer data whole, byte at a time, and every split
    into two and (up to 40 bytes) three pieces."""
    n = len(data)
    if n <= 10:
        for cuts in itertools.product((False, True), repeat=max(n - 1, 0)):
            pieces, start = [], 0
            for i, cut in enumerate(cuts, 1):
                if cut:
                    pieces.append(data[start:i])
                    start = i
            pieces.append(data[start:])
            yield [p for p in pieces if p]
        return
    yield [data]
    yield [data[i : i + 1] for i in range(n)]
    for i in range(1, n):
        yield [data[:i], data[i:]]
    if n <= 40:
        for i, j in itertools.combinations(range(1, n), 2):
            yield [data[:i], data[i:j], data[j:]]


def drain(framer: Framer, frames: list[bytes], current: list[bytes], chunks: bool) -> None:
    """Pull until a signal; a frame is appended whole, or assembled from its chunks."""
    for _ in range(4 * framer.buffered + 16):
        if chunks:
            chunk = framer.next_chunk()
            if not isinstance(chunk, Chunk):
                return
            current.append(chunk.data)
            if chunk.end:
                frames.append(b"".join(current))
                current.clear()
        else:
            frame = framer.next_frame()
            if not isinstance(frame, bytes):
                return
            frames.append(frame)
    pytest.fail("the framer kept returning frames without consuming input")


def run(mode: Mode, pieces: list[bytes], *, chunks: bool = False, eof: bool = True) -> Outcome:
    """Feed the pieces, pulling after each; return frames, error class, and the tail (bytes of
    the unfinished frame, handed over or still buffered)."""
    framer = Framer(mode)
    frames: list[bytes] = []
    current: list[bytes] = []
    try:
        for piece in [*pieces, b""] if eof else pieces:
            framer.receive_data(piece)
            drain(framer, frames, current, chunks)
    except FramingError as exc:
        with pytest.raises(type(exc)):  # errors are a function of the state: pull again
            framer.next_chunk() if chunks else framer.next_frame()
        return frames, type(exc), b""
    return frames, None, b"".join(current) + framer.take()


def trailing_for(mode: Mode) -> bytes | None:
    """Bytes that start, but cannot finish, one more frame under mode."""
    if isinstance(mode, Delimited):
        byte = next(bytes([c]) for c in b"x~\x00" if c not in mode.delimiter)
        return byte if mode.max_length + len(mode.delimiter) > 1 else None
    if isinstance(mode, Counted):
        return b"x" if mode.n > 1 else None
    if isinstance(mode, Netstring):
        return b"1"
    if isinstance(mode, LengthPrefixed):
        if mode.prefix_size > 1:
            return b"\x00"
        return b"\x01" if mode.max_length >= 1 else None
    return None


def tr(
    mode: Mode,
    data: bytes,
    frames: list[bytes],
    *,
    error: type[FramingError] | None = None,
    tail: bytes = b"",
) -> None:
    """Check the frames (then error, or tail) at every chunking, with and without the end of
    stream, through next_frame and next_chunk; then again with trailing data that must stay
    buffered."""
    expected: Outcome = (frames, error, b"" if error else tail)
    headerless = isinstance(mode, Delimited | Counted)
    for pieces in chunkings(data):
        for eof in (True, False):
            assert run(mode, pieces, eof=eof) == expected, (pieces, eof)
            got = run(mode, pieces, chunks=True, eof=eof)
            if headerless:
                assert got == expected, (pieces, eof)
            else:  # a prefix handed over by next_chunk is not part of the tail
                assert got[:2] == expected[:2], (pieces, eof)
    trailing = trailing_for(mode)
    if error or tail or trailing is None:
        return
    for pieces in chunkings(data + trailing):
        assert run(mode, pieces, eof=False) == (frames, None, trailing), pieces


# ---------------------------------------------------------------------------- Delimited

CRLF = Delimited(b"\r\n", max_length=5)
BLANK_LINE = Delimited(b"\r\n\r\n", max_length=64)


@pytest.mark.parametrize(
    ("mode", "data", "frames", "tail"),
    [
        (CRLF, b"a\r\nbc\r\n", [b"a", b"bc"], b""),
        (CRLF, b"\r\n\r\n", [b"", b""], b""),
        (CRLF, b"a\r\nbc", [b"a"], b"bc"),
        (CRLF, b"a\r\nb\r", [b"a"], b"b\r"),
        (CRLF, b"a\r\r\n\n", [b"a\r"], b"\n"),
        (Delimited(b"\n"), b"one\ntwo\n\nthree", [b"one", b"two", b""], b"three"),
        (Delimited(b"aba"), b"xababay", [b"x"], b"bay"),
        (BLANK_LINE, b"GET /\r\nHost: x\r\n\r\nbody", [b"GET /\r\nHost: x"], b"body"),
        (BLANK_LINE, b"a\r\n\r\r\n\r\nb", [b"a\r\n\r"], b"b"),
        (BLANK_LINE, b"\r\n\r\r\n\r\r\n\r\n", [b"\r\n\r\r\n\r"], b""),
    ],
)
def test_delimited(mode: Delimited, data: bytes, frames: list[bytes], tail: bytes) -> None:
    tr(mode, data, frames, tail=tail)


@pytest.mark.parametrize(
    ("data", "frames", "error", "tail"),
    [
        (b"abcde\r\n", [b"abcde"], None, b""),  # exactly max_length
        (b"abcde\r", [], None, b"abcde\r"),  # max_length + a delimiter prefix: may still fit
        (b"abcdef", [], None, b"abcdef"),  # max_length + 1, the delimiter may come next
        (b"abcdef\r\n", [], FrameTooLong, b""),  # the delimiter came one byte too late
        (b"abcdefg", [], FrameTooLong, b""),  # max_length + len(delimiter), no delimiter
        (b"ok\r\nabcdefgh\r\n", [b"ok"], FrameTooLong, b""),
    ],
)
def test_delimited_max_length(
    data: bytes, frames: list[bytes], error: type[FramingError] | None, tail: bytes
) -> None:
    tr(CRLF, data, frames, error=error, tail=tail)


def test_delimited_max_length_zero_allows_only_empty_frames() -> None:
    mode = Delimited(b"\n", max_length=0)
    tr(mode, b"\n\n", [b"", b""])
    tr(mode, b"\na", [b""], error=FrameTooLong)


def test_too_long_line_is_left_buffered_for_the_door() -> None:
    framer = Framer(CRLF)
    framer.feed(b"abcdefgh\r\nnext\r\n")
    with pytest.raises(FrameTooLong) as info:
        framer.next_frame()
    assert (info.value.length, info.value.max_length, info.value.status) == (16, 5, 413)
    # LineReceiver hands lineLengthExceeded the line, delimiter and rest, then goes on.
    assert framer.take() == b"abcdefgh\r\nnext\r\n"
    assert framer.next_frame() is NEED_DATA
    framer.feed(b"again\r\n")
    assert list(framer) == [b"again"]


def test_too_long_line_can_be_read_under_another_mode() -> None:
    # asyncio's LimitOverrunError leaves the data for read(): switch mode and carry on.
    framer = Framer(CRLF)
    framer.feed(b"abcdefghij")
    with pytest.raises(FrameTooLong):
        framer.next_frame()
    framer.set_mode(Counted(4))
    assert list(framer) == [b"abcd", b"efgh"]
    assert framer.take(1) == b"i"
    assert framer.take() == b"j"


def test_delimited_search_is_bounded_by_max_length() -> None:
    framer = Framer(Delimited(b"\n", max_length=3))
    framer.feed(b"abcd\n")  # the delimiter is present, but past the limit
    with pytest.raises(FrameTooLong, match="within 3 bytes"):
        framer.next_frame()


def test_delimited_encode() -> None:
    assert Delimited(b"\r\n").encode(b"hi") == b"hi\r\n"
    with pytest.raises(ValueError, match="contains the delimiter"):
        Delimited(b"\r\n").encode(b"a\r\nb")
    with pytest.raises(ValueError, match="contains the delimiter"):
        Delimited(b"aba").encode(b"ab")  # b"ababa" would be cut at b"", not at b"ab"


# ---------------------------------------------------------------------------- Counted, Raw


@pytest.mark.parametrize(
    ("mode", "data", "frames", "tail"),
    [
        (Counted(3), b"abcdefg", [b"abc", b"def"], b"g"),
        (Counted(3), b"abcdef", [b"abc", b"def"], b""),
        (Counted(1), b"xyz", [b"x", b"y", b"z"], b""),
        (Counted(8), b"abc", [], b"abc"),
    ],
)
def test_counted(mode: Counted, data: bytes, frames: list[bytes], tail: bytes) -> None:
    tr(mode, data, frames, tail=tail)


def test_raw_hands_over_everything_as_it_comes() -> None:
    for pieces in chunkings(b"any\r\nbytes"):
        frames, error, tail = run(Raw(), pieces)
        assert (b"".join(frames), error, tail) == (b"any\r\nbytes", None, b"")
        assert all(frames)
        frames, error, tail = run(Raw(), pieces, chunks=True)
        assert (frames, error, tail) == ([], None, b"any\r\nbytes")  # a frame that never ends


# ---------------------------------------------------------------------------- Netstring


@pytest.mark.parametrize(
    ("mode", "data", "frames", "error", "tail"),
    [
        (Netstring(), b"5:hello,0:,3:a:,,", [b"hello", b"", b"a:,"], None, b""),
        (Netstring(), b"5:hello,3:ab", [b"hello"], None, b"3:ab"),
        (Netstring(5), b"5:hello,", [b"hello"], None, b""),  # exactly max_length
        (Netstring(5), b"6:", [], FrameTooLong, b""),  # over, refused before the body
        (Netstring(9), b"10", [], FrameTooLong, b""),  # too many digits, no ':' needed
        (Netstring(99999), b"99999", [], None, b"99999"),
        (Netstring(99999), b"100000", [], FrameTooLong, b""),
        (Netstring(0), b"0:,", [b""], None, b""),
        (Netstring(), b"0", [], None, b"0"),
        (Netstring(), b"05:hello,", [], MalformedFrame, b""),
        (Netstring(), b"00", [], MalformedFrame, b""),
        (Netstring(0), b"01", [], MalformedFrame, b""),
        (Netstring(), b":", [], MalformedFrame, b""),
        (Netstring(), b"x", [], MalformedFrame, b""),
        (Netstring(), b"1x:", [], MalformedFrame, b""),
        (Netstring(), b"-1:", [], MalformedFrame, b""),
        (Netstring(), b" 1:a,", [], MalformedFrame, b""),
        (Netstring(), b"1 :a,", [], MalformedFrame, b""),
        (Netstring(), b"1:a;", [], MalformedFrame, b""),
        (Netstring(), b"1:ab,", [], MalformedFrame, b""),
        (Netstring(), b"2:ok,1:a", [b"ok"], None, b"1:a"),
        (Netstring(), b"2:ok,1:ab", [b"ok"], MalformedFrame, b""),
    ],
)
def test_netstring(
    mode: Netstring,
    data: bytes,
    frames: list[bytes],
    error: type[FramingError] | None,
    tail: bytes,
) -> None:
    tr(mode, data, frames, error=error, tail=tail)


def test_netstring_too_long_carries_the_declared_length() -> None:
    framer = Framer(Netstring(10))
    framer.feed(b"11:")
    with pytest.raises(FrameTooLong) as info:
        framer.next_frame()
    assert (info.value.length, info.value.max_length) == (11, 10)


def test_netstring_encode() -> None:
    assert Netstring().encode(b"hello") == b"5:hello,"
    assert Netstring().encode(b"") == b"0:,"
    assert Netstring(0).max_length == 0
    assert Netstring().max_length == DEFAULT_MAX_STRING


# ---------------------------------------------------------------------------- LengthPrefixed


@pytest.mark.parametrize("fmt", ["!I", "!H", "!B", "<I", ">Q", "<H"])
def test_length_prefixed_round_trip(fmt: str) -> None:
    mode = LengthPrefixed(fmt, max_length=10)
    strings = [b"hello", b"", b"0123456789"]
    data = b"".join(map(mode.encode, strings))
    assert data.startswith(struct.pack(fmt, 5) + b"hello")
    tr(mode, data, strings)


@pytest.mark.parametrize(
    ("mode", "data", "frames", "error", "tail"),
    [
        (LengthPrefixed("!I", 5), b"\0\0\0\x05hello", [b"hello"], None, b""),
        (LengthPrefixed("!I", 5), b"\0\0\0\x06", [], FrameTooLong, b""),
        (LengthPrefixed("!I", 5), b"\0\0\0", [], None, b"\0\0\0"),
        (LengthPrefixed("!H", 5), b"\0\x02ok\0\x03ab", [b"ok"], None, b"\0\x03ab"),
        (LengthPrefixed("!B", 0), b"\0\0", [b"", b""], None, b""),
        (LengthPrefixed("!B", 0), b"\0\x01", [b""], FrameTooLong, b""),
    ],
)
def test_length_prefixed(
    mode: LengthPrefixed,
    data: bytes,
    frames: list[bytes],
    error: type[FramingError] | None,
    tail: bytes,
) -> None:
    tr(mode, data, frames, error=error, tail=tail)


def test_length_prefix_over_the_limit_is_refused_before_the_body() -> None:
    framer = Framer(LengthPrefixed("!I", max_length=1000))
    framer.feed(struct.pack("!I", 2**31))
    with pytest.raises(FrameTooLong) as info:
        framer.next_frame()
    assert (info.value.length, info.value.max_length) == (2**31, 1000)


def test_length_prefixed_encode_refuses_what_the_prefix_cannot_say() -> None:
    assert LengthPrefixed("!B").encode(b"x" * 255)[:1] == b"\xff"
    with pytest.raises(ValueError, match="do not fit"):
        LengthPrefixed("!B").encode(b"x" * 256)
    assert LengthPrefixed("!H").prefix_size == 2


@pytest.mark.parametrize("fmt", ["I", "!i", "!b", "!II", "@I", "!f", ""])
def test_length_prefixed_rejects_bad_formats(fmt: str) -> None:
    with pytest.raises(ValueError, match="fmt"):
        LengthPrefixed(fmt)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Delimited(b""),
        lambda: Delimited(b"\n", max_length=-1),
        lambda: Counted(0),
        lambda: Counted(-1),
        lambda: Netstring(-1),
        lambda: LengthPrefixed("!I", -1),
    ],
)
def test_modes_reject_bad_parameters(make: Callable[[], Mode]) -> None:
    with pytest.raises(ValueError):
        make()


def test_modes_are_values() -> None:
    assert Delimited(b"\n") == Delimited(b"\n", DEFAULT_MAX_LINE)
    assert LengthPrefixed("!I", 5) == LengthPrefixed("!I", 5)
    assert hash(Netstring(3)) == hash(Netstring(3))
    assert "_struct" not in repr(LengthPrefixed())


# ---------------------------------------------------------------------------- mode switching


def run_script(
    mode: Mode, pieces: list[bytes], switch: Callable[[bytes], Mode | None], *, chunks: bool
) -> list[tuple[str, bytes]]:
    """Feed pieces, pulling after each; after every frame, switch(frame) may set a new mode,
    like a LineReceiver or async_chat handler does inside its callback."""
    framer = Framer(mode)
    out: list[tuple[str, bytes]] = []
    current: list[bytes] = []
    for piece in [*pieces, b""]:
        framer.receive_data(piece)
        while True:
            if chunks:
                chunk = framer.next_chunk()
                if not isinstance(chunk, Chunk):
                    break
                current.append(chunk.data)
                if not chunk.end:
                    continue
                frame = b"".join(current)
                current.clear()
            else:
                item = framer.next_frame()
                if not isinstance(item, bytes):
                    break
                frame = item
            out.append((type(framer.mode).__name__, frame))
            new = switch(frame)
            if new is not None:
                framer.set_mode(new)
    if current:
        out.append(("unfinished", b"".join(current)))
    return out


def http_like() -> Callable[[bytes], Mode | None]:
    """Lines until an empty one; a 'len N' line announces a body of N bytes after it."""
    body = 0

    def switch(frame: bytes) -> Mode | None:
        nonlocal body
        if frame.startswith(b"len "):
            body = int(frame[4:])
            return None
        if frame == b"" and body:
            mode, body = Counted(body), 0
            return mode
        return Delimited(b"\r\n", 32)

    return switch


def test_switching_between_lines_and_counted_bodies_at_every_chunking() -> None:
    data = b"GET\r\nlen 5\r\n\r\nhelloPOST\r\nlen 2\r\n\r\nokEND\r\n"
    expected = [
        ("Delimited", b"GET"),
        ("Delimited", b"len 5"),
        ("Delimited", b""),
        ("Counted", b"hello"),
        ("Delimited", b"POST"),
        ("Delimited", b"len 2"),
        ("Delimited", b""),
        ("Counted", b"ok"),
        ("Delimited", b"END"),
    ]
    for pieces in chunkings(data):
        for chunks in (False, True):
            got = run_script(Delimited(b"\r\n", 32), pieces, http_like(), chunks=chunks)
            assert got == expected, pieces


def test_line_receiver_switching_to_raw_mode_keeps_the_buffered_bytes() -> None:
    def to_raw(frame: bytes) -> Mode | None:
        return Raw() if frame == b"RAW" else None

    for pieces in chunkings(b"a\r\nRAW\r\nno\r\nlines"):
        got = run_script(CRLF, pieces, to_raw, chunks=False)
        assert got[:2] == [("Delimited", b"a"), ("Delimited", b"RAW")]
        assert {name for name, _ in got[2:]} == {"Raw"}
        assert b"".join(frame for _, frame in got[2:]) == b"no\r\nlines"


def test_netstrings_after_a_greeting_line() -> None:
    def to_netstring(frame: bytes) -> Mode | None:
        return Netstring(10) if frame == b"HELLO" else None

    for pieces in chunkings(b"HELLO\n3:abc,0:,"):
        got = run_script(Delimited(b"\n"), pieces, to_netstring, chunks=False)
        assert got == [("Delimited", b"HELLO"), ("Netstring", b"abc"), ("Netstring", b"")]


def test_switching_inside_a_for_loop_applies_to_the_next_frame() -> None:
    framer = Framer(Delimited(b"\n"))
    framer.feed(b"3\nabcrest\n")
    seen = []
    for frame in framer:
        seen.append(frame)
        framer.set_mode(Counted(int(frame)) if frame.isdigit() else Delimited(b"\n"))
    assert seen == [b"3", b"abc", b"rest"]


def test_switching_mid_frame_starts_a_new_frame_from_the_buffer() -> None:
    framer = Framer(Delimited(b"\n"))
    framer.feed(b"abcdef")
    assert framer.next_chunk() == Chunk(b"abcdef", False)
    framer.feed(b"ghij")
    framer.set_mode(Counted(2))  # asynchat's set_terminator(2) from collect_incoming_data
    assert list(framer) == [b"gh", b"ij"]


# ---------------------------------------------------------------------------- next_chunk


def test_partial_pulls_never_release_a_possible_delimiter_prefix() -> None:
    framer = Framer(Delimited(b"\r\n\r\n", max_length=100))
    framer.feed(b"ab\r\n\r")
    assert framer.next_chunk() == Chunk(b"ab", False)
    assert framer.next_chunk() is NEED_DATA
    assert framer.buffered == 3
    framer.feed(b"x")  # not a delimiter after all: release it all
    assert framer.next_chunk() == Chunk(b"\r\n\rx", False)
    framer.feed(b"\r\n\r\n")
    assert framer.next_chunk() == Chunk(b"", True)
    assert framer.next_chunk() is NEED_DATA


def test_partial_pull_at_end_of_stream_releases_the_held_back_bytes() -> None:
    framer = Framer(Delimited(b"\r\n"))
    framer.feed(b"tail\r")
    assert framer.next_chunk() == Chunk(b"tail", False)
    framer.feed_eof()
    assert framer.next_chunk() == Chunk(b"\r", False)
    assert framer.next_chunk() is END


def test_partial_pulls_count_toward_max_length() -> None:
    framer = Framer(Delimited(b"\n", max_length=5))
    framer.feed(b"abc")
    assert framer.next_chunk() == Chunk(b"abc", False)
    framer.feed(b"de")
    assert framer.next_chunk() == Chunk(b"de", False)
    framer.feed(b"f")  # never released: it is byte 6
    with pytest.raises(FrameTooLong) as info:
        framer.next_chunk()
    assert info.value.length == 6

    framer = Framer(Delimited(b"\r\n", max_length=5))
    framer.feed(b"abcdef")  # may still be a 5-byte line and a late delimiter: wait for it
    assert framer.next_chunk() == Chunk(b"abcde", False)
    assert framer.next_chunk() is NEED_DATA
    framer.feed(b"\n")
    with pytest.raises(FrameTooLong):
        framer.next_chunk()


def test_partial_pulls_of_counted_and_prefixed_bodies() -> None:
    framer = Framer(Counted(5))
    framer.feed(b"ab")
    assert framer.next_chunk() == Chunk(b"ab", False)
    framer.feed(b"cdefg")
    assert [framer.next_chunk(), framer.next_chunk()] == [Chunk(b"cde", True), Chunk(b"fg", False)]
    framer.feed(b"hij")
    assert framer.next_frame() == b"hij"  # the rest of a frame begun with next_chunk

    framer = Framer(Netstring())
    for piece, chunk in [(b"5:he", (b"he", False)), (b"llo", (b"llo", False)), (b",", (b"", True))]:
        framer.feed(piece)
        assert framer.next_chunk() == chunk
    assert framer.next_chunk() is NEED_DATA


# ---------------------------------------------------------------------------- feeding


def test_feeding_and_end_of_stream() -> None:
    framer = Framer(Counted(2))
    framer.feed(b"")
    framer.feed(bytearray(b"a"))
    framer.receive_data(memoryview(b"bc"))
    assert framer.next_frame() == b"ab"
    assert framer.next_frame() is NEED_DATA
    eof_before = framer.eof
    framer.receive_data(b"")
    assert (eof_before, framer.eof) == (False, True)
    assert framer.next_frame() is END
    assert (framer.buffered, framer.take(), framer.buffered) == (1, b"c", 0)
    assert framer.next_frame() is END
    with pytest.raises(RuntimeError, match="end of the stream"):
        framer.feed(b"more")
    assert "Counted(n=2)" in repr(framer)


# ---------------------------------------------------------------------------- linear time


class CountingBuffer(bytearray):
    """A receive buffer that adds up the bytes each operation scans or copies."""

    work = 0

    def find(self, sub: bytes, start: int = 0, end: int | None = None, /) -> int:  # type: ignore[override]
        found = super().find(sub, start, end)
        # memchr-style search: it reads up to the match, or to the end of the window
        stop = found + len(sub) if found >= 0 else len(self) if end is None else min(len(self), end)
        self.work += max(0, stop - start)
        return found

    def __getitem__(self, index: slice) -> bytearray:  # type: ignore[override]
        result = super().__getitem__(index)
        self.work += len(result)
        return result

    def __delitem__(self, index: slice) -> None:  # type: ignore[override]
        self.work += len(self) - (index.stop or 0)  # bytes moved to the front
        super().__delitem__(index)

    def __iadd__(self, other: bytes) -> CountingBuffer:  # type: ignore[override,misc]
        self.work += len(other)
        super().__iadd__(other)
        return self


def counted_framer(mode: Mode) -> tuple[Framer, CountingBuffer]:
    framer = Framer(mode)
    buf = CountingBuffer()
    framer._buf = buf  # white box: count the work the engine does on its buffer
    return framer, buf


BIG = 10 * 1024 * 1024
FEED = 64 * 1024


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("mode", "encoded"),
    [
        (Delimited(b"\r\n", BIG), b"x" * BIG + b"\r\n"),
        (Delimited(b"\r\n\r\n", BIG), b"\r\n\r" * (BIG // 3) + b"\r\n\r\n"),
        (Counted(BIG), b"x" * BIG),
        (Netstring(BIG), Netstring(BIG).encode(b"x" * BIG)),
        (LengthPrefixed("!I", BIG), LengthPrefixed("!I").encode(b"x" * BIG)),
    ],
    ids=["line", "near-miss-delimiters", "counted", "netstring", "length-prefixed"],
)
@pytest.mark.parametrize("chunks", [False, True], ids=["frames", "chunks"])
def test_a_10_mb_frame_in_64_kib_feeds_takes_linear_work(
    mode: Mode, encoded: bytes, chunks: bool
) -> None:
    framer, buf = counted_framer(mode)
    size = 0
    for start in range(0, len(encoded), FEED):
        framer.feed(encoded[start : start + FEED])
        while True:
            item = framer.next_chunk() if chunks else framer.next_frame()
            if isinstance(item, Chunk):
                size += len(item.data)
            elif isinstance(item, bytes):
                size += len(item)
            else:
                break
    assert framer.buffered == 0
    assert BIG - 3 <= size <= BIG + 2
    assert buf.work <= 4 * len(encoded)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("mode", "one"),
    [
        (Delimited(b"\r\n", 100), b"0123456789\r\n"),
        (Counted(12), b"0123456789\r\n"),
        (Netstring(), b"10:0123456789,"),
        (LengthPrefixed("!H"), b"\0\x0a0123456789"),
    ],
)
def test_many_frames_in_one_feed_take_linear_work(mode: Mode, one: bytes) -> None:
    framer, buf = counted_framer(mode)
    framer.feed(one * 30_000)
    assert sum(1 for _ in framer) == 30_000
    assert buf.work <= 4 * len(one) * 30_000
