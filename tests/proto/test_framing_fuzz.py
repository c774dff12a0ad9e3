"""Properties of the framing engine under hypothesis: any bytes at any chunking give frames or a
FramingError (nothing else, never a hang), chunking never changes the result, whole and
piecewise pulls agree, and encode -> decode round-trips."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from portside.proto.framing import (
    Chunk,
    Counted,
    Delimited,
    Framer,
    FramingError,
    LengthPrefixed,
    Mode,
    Netstring,
    Raw,
)

pytestmark = pytest.mark.timeout(60)

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Bytes that mean something to some codec, so random data hits the interesting paths.
ATOMS = [b"\r", b"\n", b"\r\n", b"a", b"b", b"ab", b":", b",", b"0", b"1", b"5", b"12"]
ATOMS += [b"\x00", b"\x01", b"\x03", b"\xff", b"x" * 7]

data_st = st.one_of(
    st.binary(max_size=120),
    st.lists(st.sampled_from(ATOMS), max_size=50).map(b"".join),
)
delimiters = st.one_of(
    st.sampled_from([b"\r\n", b"\n", b"\r\n\r\n", b"aba", b"aa", b"\x00"]),
    st.binary(min_size=1, max_size=4),
)
framing: list[st.SearchStrategy[Mode]] = [
    st.builds(Delimited, delimiters, st.integers(0, 24)),
    st.builds(Counted, st.integers(1, 9)),
    st.builds(Netstring, st.integers(0, 150)),
    st.builds(LengthPrefixed, st.sampled_from(["!B", "!H", "<H", "!I", ">Q"]), st.integers(0, 300)),
]
modes = st.one_of(*framing, st.just(Raw()))

Outcome = tuple[list[bytes], type[FramingError] | None, bytes]


def framed(mode: Mode) -> st.SearchStrategy[bytes]:
    """One frame as mode's encoder would write it, sometimes a little over its limit."""
    if isinstance(mode, Raw):
        return st.binary(min_size=1, max_size=20)
    if isinstance(mode, Counted):
        return st.binary(min_size=mode.n, max_size=mode.n)
    payload = st.binary(max_size=min(mode.max_length + 2, 60))
    if isinstance(mode, Delimited):
        return payload.map(lambda b: b + mode.delimiter)
    return payload.map(mode.encode)


@st.composite
def stream(draw: st.DrawFn, schedule: list[Mode]) -> bytes:
    """Random bytes, or frames written under the schedule's modes in turn, with a little noise
    (a stray byte, a cut frame) now and then."""
    if draw(st.integers(0, 3)) == 0:
        return draw(data_st)
    out = []
    for i in range(draw(st.integers(1, 8))):
        frame = draw(framed(schedule[i % len(schedule)]))
        noise = draw(st.sampled_from([b""] * 16 + ATOMS))
        cut = draw(st.sampled_from([None] * 16 + [0, 1, -1]))
        out.append(frame[:cut] + noise)
    return b"".join(out)


@st.composite
def mode_and_data(draw: st.DrawFn) -> tuple[Mode, bytes]:
    mode = draw(modes)
    return mode, draw(stream([mode]))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut data at the given offsets (any order, duplicates ignored)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def decode(
    modes: list[Mode], pieces: list[bytes], *, chunks: bool = False, eof: bool = True
) -> Outcome:
    """Feed pieces, pulling after each and switching to the next mode of the cycle after every
    frame; return frames, the error class, and (no error) the unfinished tail."""
    framer = Framer(modes[0])
    frames: list[bytes] = []
    current: list[bytes] = []
    error: type[FramingError] | None = None
    pulls = 0
    try:
        for piece in [*pieces, b""] if eof else pieces:
            framer.receive_data(piece)
            while True:
                pulls += 1
                assert pulls <= 4 * sum(map(len, pieces)) + 4 * len(pieces) + 8, "no progress"
                item = framer.next_chunk() if chunks else framer.next_frame()
                if isinstance(item, Chunk):
                    current.append(item.data)
                    if not item.end:
                        continue
                    frame = b"".join(current)
                    current.clear()
                elif isinstance(item, bytes):
                    frame = item
                else:
                    break
                frames.append(frame)
                if len(modes) > 1:
                    framer.set_mode(modes[len(frames) % len(modes)])
    except FramingError as exc:
        error = type(exc)
        with pytest.raises(error):  # the framer stays in its error until the door acts
            framer.next_chunk() if chunks else framer.next_frame()
        return frames, error, b""
    return frames, error, b"".join(current) + framer.take()


def normal(mode: Mode, outcome: Outcome) -> Outcome:
    """Raw frames are whatever was buffered, so only their concatenation is comparable."""
    if isinstance(mode, Raw):
        frames, error, tail = outcome
        return [b"".join(frames)], error, tail
    return outcome


@FUZZ
@given(case=mode_and_data(), cuts=st.lists(st.integers(0, 200), max_size=12))
def test_chunking_never_changes_the_result(case: tuple[Mode, bytes], cuts: list[int]) -> None:
    mode, data = case
    whole = normal(mode, decode([mode], [data] if data else []))
    event(f"{type(mode).__name__}: {len(whole[0])} frames, {whole[1]}")
    for eof in (True, False):
        assert normal(mode, decode([mode], split(data, cuts), eof=eof)) == whole
    assert normal(mode, decode([mode], split(data, list(range(len(data)))))) == whole


@FUZZ
@given(case=mode_and_data(), cuts=st.lists(st.integers(0, 200), max_size=12))
def test_chunks_assemble_into_the_same_frames(case: tuple[Mode, bytes], cuts: list[int]) -> None:
    mode, data = case
    if isinstance(mode, Raw):
        return
    pieces = split(data, cuts)
    frames, error, tail = decode([mode], pieces)
    got = decode([mode], pieces, chunks=True)
    if isinstance(mode, Delimited | Counted):
        assert got == (frames, error, tail)
    else:  # next_chunk consumed the prefix of the unfinished frame it began handing over
        assert got[:2] == (frames, error)


@st.composite
def schedule_and_data(draw: st.DrawFn) -> tuple[list[Mode], bytes]:
    schedule = draw(st.lists(st.one_of(*framing), min_size=2, max_size=4))
    return schedule, draw(stream(schedule))


@FUZZ
@given(
    case=schedule_and_data(),
    cuts=st.lists(st.integers(0, 200), max_size=12),
    chunks=st.booleans(),
)
def test_mode_switches_between_frames_are_chunking_independent(
    case: tuple[list[Mode], bytes], cuts: list[int], chunks: bool
) -> None:
    schedule, data = case
    event(f"{len(decode(schedule, [data] if data else [])[0])} frames")
    whole = decode(schedule, [data] if data else [], chunks=chunks)
    got = decode(schedule, split(data, cuts), chunks=chunks)
    if chunks and not isinstance(schedule[len(whole[0]) % len(schedule)], Delimited | Counted):
        got, whole = (*got[:2], b""), (*whole[:2], b"")
    assert got == whole


payloads = st.lists(st.binary(max_size=40), max_size=8)


@FUZZ
@given(
    codec=st.one_of(
        st.builds(Netstring, st.just(40)),
        st.builds(LengthPrefixed, st.sampled_from(["!B", "!H", "<I", ">Q"]), st.just(40)),
    ),
    strings=payloads,
    cuts=st.lists(st.integers(0, 400), max_size=12),
    chunks=st.booleans(),
)
def test_prefix_codecs_round_trip(
    codec: Netstring | LengthPrefixed, strings: list[bytes], cuts: list[int], chunks: bool
) -> None:
    encoded = b"".join(map(codec.encode, strings))
    assert decode([codec], split(encoded, cuts), chunks=chunks) == (strings, None, b"")


@FUZZ
@given(
    delimiter=delimiters,
    strings=payloads,
    cuts=st.lists(st.integers(0, 400), max_size=12),
    chunks=st.booleans(),
)
def test_delimited_round_trips_what_encode_accepts(
    delimiter: bytes, strings: list[bytes], cuts: list[int], chunks: bool
) -> None:
    mode = Delimited(delimiter, max_length=40)
    encoded = []
    for s in strings:
        try:
            encoded.append(mode.encode(s))
        except ValueError:
            assert (s + delimiter).find(delimiter) < len(s)
            continue
        assert encoded[-1].endswith(delimiter)
    frames = [e[: -len(delimiter)] for e in encoded]
    data = b"".join(encoded)
    assert decode([mode], split(data, cuts), chunks=chunks) == (frames, None, b"")


@FUZZ
@given(
    delimiter=delimiters,
    max_length=st.integers(0, 24),
    data=data_st,
    cuts=st.lists(st.integers(0, 200), max_size=12),
)
def test_partial_pulls_hold_back_only_a_possible_delimiter_start(
    delimiter: bytes, max_length: int, data: bytes, cuts: list[int]
) -> None:
    framer = Framer(Delimited(delimiter, max_length))
    seen = b""  # the stream as handed over so far
    released = 0  # bytes of the current frame handed over
    for piece in split(data, cuts):
        framer.feed(piece)
        try:
            while isinstance(chunk := framer.next_chunk(), Chunk):
                seen += chunk.data + (delimiter if chunk.end else b"")
                released = 0 if chunk.end else released + len(chunk.data)
                assert released <= max_length
        except FramingError:
            return
        held = data[len(seen) : len(seen) + framer.buffered]
        assert seen + held == data[: len(seen) + len(held)]
        assert len(held) < len(delimiter)
        # Held back: the start of a delimiter, or bytes past max_length that must wait to
        # see whether the delimiter comes right after the limit.
        assert delimiter.startswith(held) or released == max_length
