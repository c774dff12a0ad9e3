"""One sans-I/O framing engine behind every byte-stream front door.

asynchat's terminators, Twisted's ``LineReceiver``, ``NetstringReceiver`` and
``IntNStringReceiver``, and asyncio's ``readuntil``/``readexactly`` all cut a byte stream into
frames in one of a few ways. A :class:`Framer` owns the receive buffer and cuts it under a
*mode*:

==========================  ===============================================================
``Delimited(d, max)``       up to the delimiter ``d`` (not part of the frame), at most ``max``
``Counted(n)``              exactly ``n`` bytes, frame after frame
``Raw()``                   whatever is buffered
``Netstring(max)``          ``b"5:hello,"`` is the frame ``b"hello"``
``LengthPrefixed(f, max)``  a :mod:`struct` unsigned integer (``"!I"``...), then that many bytes
==========================  ===============================================================

The caller feeds bytes and pulls one frame at a time, so the handler of a frame may switch the
mode and the bytes already buffered are cut under the new one (``LineReceiver.setRawMode``,
``async_chat.set_terminator`` inside ``found_terminator``)::

    framer = Framer(Delimited(b"\\r\\n", max_length=1024))
    framer.feed(data)                    # receive_data(b"") or feed_eof() at end of stream
    while isinstance(frame := framer.next_frame(), bytes):
        handle(frame)                    # may call framer.set_mode(...)
    # frame is NEED_DATA (feed more) or END (stream over; framer.take() is the tail)

:meth:`Framer.next_chunk` hands a frame over piece by piece as it arrives (asynchat's
``collect_incoming_data``), holding back only bytes that may start the delimiter, so a frame
never has to fit in memory. Every frame consumes at least one byte (``Counted`` needs
``n >= 1``), so pulling until ``NEED_DATA`` always ends.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Final, NamedTuple, TypeAlias

from portside.errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_STRING",
    "END",
    "NEED_DATA",
    "Chunk",
    "Counted",
    "Delimited",
    "FrameTooLong",
    "Framer",
    "FramingError",
    "LengthPrefixed",
    "MalformedFrame",
    "Mode",
    "Netstring",
    "Raw",
    "Signal",
]

DEFAULT_MAX_LINE: Final = 65_536
"""Default longest delimited frame: asyncio's StreamReader limit (2**16). Twisted's
LineReceiver uses 16 KiB and nginx 8 KiB per header line; a door passes its own."""

DEFAULT_MAX_STRING: Final = 99_999
"""Default longest netstring or length-prefixed frame: Twisted's ``MAX_LENGTH`` for
``NetstringReceiver`` and ``IntNStringReceiver``, so ported protocols keep their limit."""


class FramingError(ProtocolError):
    """The peer's bytes cannot be cut into frames under the current mode.

    The framer's state is left as it was, so pulling again raises again: the door closes the
    connection, or drops the bytes with :meth:`Framer.take` or switches mode, and goes on.
    """


class MalformedFrame(FramingError):
    """A length prefix or trailer is not well formed (a netstring length that is not decimal,
    has a leading zero, is empty, or a body not followed by ``,``)."""


class FrameTooLong(FramingError):
    """A frame is longer than its mode's ``max_length``; raised before its body is buffered
    when a prefix declares the length.

    ``length`` is the frame's length as far as known: the declared length for a prefix, the
    bytes seen without a delimiter otherwise. The bytes stay buffered: ``LineReceiver`` hands
    :meth:`Framer.take` to ``lineLengthExceeded``; asyncio leaves them for the next read.
    """

    def __init__(self, message: str, *, length: int, max_length: int, status: int = 413) -> None:
        self.length = length
        self.max_length = max_length
        super().__init__(message, status)


class Signal(enum.Enum):
    """What a pull returns when it has no frame to give."""

    NEED_DATA = "need data"
    """Feed more bytes, then pull again."""
    END = "end"
    """End of stream was fed and no complete frame is left; ``take()`` returns any tail."""


NEED_DATA: Final = Signal.NEED_DATA
END: Final = Signal.END


class Chunk(NamedTuple):
    """A piece of a frame from :meth:`Framer.next_chunk`; ``end`` is true on its last piece.

    The last piece may be empty (the delimiter arrived alone). In ``Raw`` mode the frame never
    ends: every chunk has ``end`` false, like asynchat's ``None`` terminator.
    """

    data: bytes
    end: bool


def _check_max(max_length: int) -> None:
    if max_length < 0:
        raise ValueError(f"max_length must be >= 0, not {max_length}")


@dataclass(frozen=True, slots=True)
class Delimited:
    """Frames end with ``delimiter`` (not part of the frame) and hold at most ``max_length``
    bytes: ``LineReceiver``'s line mode, asynchat's bytes terminator, asyncio's ``readuntil``.

    A frame is too long once ``max_length + len(delimiter)`` bytes arrive without a delimiter,
    or the delimiter starts past ``max_length``. For no limit (asynchat), pass ``sys.maxsize``
    and pull with :meth:`Framer.next_chunk`, which keeps memory bounded anyway.
    """

    delimiter: bytes
    max_length: int = DEFAULT_MAX_LINE

    def __post_init__(self) -> None:
        if not self.delimiter:
            raise ValueError("delimiter must not be empty")
        _check_max(self.max_length)

    def encode(self, data: bytes) -> bytes:
        """Return ``data`` followed by the delimiter; ``ValueError`` if the receiver would cut
        it elsewhere (``data`` contains the delimiter, or ends with a part of it that completes
        an earlier delimiter)."""
        framed = data + self.delimiter
        if framed.find(self.delimiter) != len(data):
            raise ValueError(f"data contains the delimiter {self.delimiter!r}")
        return framed


@dataclass(frozen=True, slots=True)
class Counted:
    """Frames of exactly ``n`` bytes, one after another until the mode changes: asynchat's
    integer terminator, asyncio's ``readexactly``. ``n`` is at least 1 (an endless run of empty
    frames is never what a caller wants; asynchat's ``0`` means ``Raw``)."""

    n: int
    _trailer: ClassVar[bytes] = b""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"Counted needs n >= 1, not {self.n}")

    def _header(self, buf: bytearray, pos: int) -> tuple[int, int] | None:
        return 0, self.n


@dataclass(frozen=True, slots=True)
class Raw:
    """Each frame is whatever is buffered: ``LineReceiver``'s raw mode, asynchat's ``None``
    terminator, asyncio's ``read``."""


@dataclass(frozen=True, slots=True)
class Netstring:
    """D. J. Bernstein's netstrings, ``b"5:hello,"``, with bodies of at most ``max_length``
    bytes: Twisted's ``NetstringReceiver``. The length must be decimal without leading zeros
    (``"0"`` alone is the empty string); a too long length is refused from its digits."""

    max_length: int = DEFAULT_MAX_STRING
    _digits: int = field(init=False, repr=False, compare=False)
    _trailer: ClassVar[bytes] = b","

    def __post_init__(self) -> None:
        _check_max(self.max_length)
        object.__setattr__(self, "_digits", len(str(self.max_length)))

    def encode(self, data: bytes) -> bytes:
        """Return ``data`` as a netstring."""
        return b"%d:%b," % (len(data), data)

    def _header(self, buf: bytearray, pos: int) -> tuple[int, int] | None:
        digits = self._digits
        colon = buf.find(b":", pos, pos + digits + 1)
        head = buf[pos : colon if colon >= 0 else pos + digits + 1]
        if head and not head.isdigit():
            raise MalformedFrame(f"netstring length is not a decimal number: {bytes(head)!r}")
        if len(head) > 1 and head[0] == 0x30:
            raise MalformedFrame(f"netstring length has a leading zero: {bytes(head)!r}")
        if colon < 0:
            if len(head) > digits:
                raise FrameTooLong(
                    f"netstring length {head.decode()}... exceeds {self.max_length}",
                    length=int(head),
                    max_length=self.max_length,
                )
            return None
        if not head:
            raise MalformedFrame("netstring length is empty")
        length = int(head)
        if length > self.max_length:
            raise FrameTooLong(
                f"netstring length {length} exceeds {self.max_length}",
                length=length,
                max_length=self.max_length,
            )
        return len(head) + 1, length


@dataclass(frozen=True, slots=True)
class LengthPrefixed:
    """Frames preceded by their length as a :mod:`struct` unsigned integer, at most
    ``max_length`` bytes: Twisted's ``Int32StringReceiver`` (``"!I"``), ``Int16...`` (``"!H"``)
    and ``Int8...`` (``"!B"``). ``fmt`` is a byte order (``!``, ``<``, ``>``) and ``B``, ``H``,
    ``I`` or ``Q``. A length over ``max_length`` is refused before the body is buffered."""

    fmt: str = "!I"
    max_length: int = DEFAULT_MAX_STRING
    _struct: struct.Struct = field(init=False, repr=False, compare=False)
    _trailer: ClassVar[bytes] = b""

    def __post_init__(self) -> None:
        if len(self.fmt) != 2 or self.fmt[0] not in "!<>" or self.fmt[1] not in "BHIQ":
            raise ValueError(f"fmt must be one of !<> then one of BHIQ, not {self.fmt!r}")
        _check_max(self.max_length)
        object.__setattr__(self, "_struct", struct.Struct(self.fmt))

    @property
    def prefix_size(self) -> int:
        """Bytes in the length prefix."""
        return self._struct.size

    def encode(self, data: bytes) -> bytes:
        """Return ``data`` after its length prefix; ``ValueError`` if the length does not fit
        in the prefix (``max_length`` limits what is received, not what is sent)."""
        if len(data) >= 1 << (8 * self._struct.size):
            raise ValueError(f"{len(data)} bytes do not fit a {self.fmt!r} length prefix")
        return self._struct.pack(len(data)) + data

    def _header(self, buf: bytearray, pos: int) -> tuple[int, int] | None:
        size = self._struct.size
        if len(buf) - pos < size:
            return None
        length: int = self._struct.unpack_from(buf, pos)[0]
        if length > self.max_length:
            raise FrameTooLong(
                f"length prefix {length} exceeds {self.max_length}",
                length=length,
                max_length=self.max_length,
            )
        return size, length


Mode: TypeAlias = Delimited | Counted | Raw | Netstring | LengthPrefixed
"""How a :class:`Framer` cuts its buffer into frames."""


def _prefix_at_end(buf: bytearray, start: int, delimiter: bytes) -> int:
    """Length of the longest suffix of ``buf[start:]`` that is a proper prefix of
    ``delimiter``: the bytes that must wait for more data."""
    for size in range(min(len(delimiter) - 1, len(buf) - start), 0, -1):
        if buf.endswith(delimiter[:size]):
            return size
    return 0


class Framer:
    """A receive buffer cut into frames under a :data:`Mode` that may change between pulls.

    Order of calls: ``feed`` (any number) -> ``next_frame``/``next_chunk`` until a
    :class:`Signal` -> ``feed`` ... -> ``feed_eof`` -> pulls until ``END``. ``set_mode`` and
    ``take`` may come between any two pulls. Pulls raise :class:`FramingError` subclasses and
    nothing else for any bytes fed.
    """

    __slots__ = ("_buf", "_eof", "_hdr", "_mode", "_need", "_pos", "_released", "_scan")

    def __init__(self, mode: Mode) -> None:
        self._buf = bytearray()
        self._pos = 0  # first byte not yet handed over; the bytes before it are spent
        self._eof = False
        self._mode: Mode = mode
        self._released = 0  # bytes of the current frame already given by next_chunk
        self._scan = 0  # Delimited: where the search resumes (index into _buf, >= _pos)
        self._hdr = 0  # bytes of the current frame's prefix still at _pos
        self._need = -1  # body bytes still to come, or -1 before the prefix is parsed

    def __repr__(self) -> str:
        return f"<Framer {self._mode!r} buffered={self.buffered} eof={self._eof}>"

    @property
    def mode(self) -> Mode:
        """The mode the next pull cuts under."""
        return self._mode

    @property
    def buffered(self) -> int:
        """Bytes fed and not yet handed over (including a parsed but unfinished prefix)."""
        return len(self._buf) - self._pos

    @property
    def eof(self) -> bool:
        """Whether the end of the stream was fed."""
        return self._eof

    def set_mode(self, mode: Mode) -> None:
        """Cut from the next pull on under ``mode``: the bytes already buffered start a new
        frame (asynchat's ``set_terminator``, ``setLineMode``/``setRawMode``), even if part
        of the current one was handed over by :meth:`next_chunk`."""
        self._mode = mode
        self._start_frame()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (empty is a no-op). ``RuntimeError`` after :meth:`feed_eof`."""
        if self._eof:
            raise RuntimeError("bytes fed after the end of the stream")
        if not data:
            return
        buf, pos = self._buf, self._pos
        if pos and pos * 2 >= len(buf):
            # At least half the buffer is consumed: moving the rest costs no more than the
            # bytes already handed over, so compaction stays linear overall.
            del buf[:pos]
            self._scan -= pos
            self._pos = 0
        buf += data

    def feed_eof(self) -> None:
        """Mark the end of the stream: a later pull returns ``END`` once no frame is left."""
        self._eof = True

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """The sans-I/O entry point: feed ``data``, or the end of stream when it is empty."""
        if data:
            self.feed(data)
        else:
            self.feed_eof()

    def next_frame(self) -> bytes | Signal:
        """Return the next complete frame, or ``NEED_DATA``, or ``END`` after the end of
        stream. After :meth:`next_chunk` handed over part of a frame, returns the rest.

        At the end of stream an unfinished frame stays buffered for :meth:`take` (asyncio's
        ``IncompleteReadError.partial``, or the door drops it as Twisted does).
        """
        mode = self._mode
        if isinstance(mode, Delimited):
            piece = self._delimited(mode, False)
        else:
            piece = self._counted(mode, False)
        if piece is None:
            return END if self._eof else NEED_DATA
        return piece[0]

    def next_chunk(self) -> Chunk | Signal:
        """Return the next piece of the current frame as soon as it is safe to hand over, or
        ``NEED_DATA``, or ``END``.

        Delimited frames keep back only a tail that could start the delimiter; counted and
        prefixed bodies come as they arrive (asynchat's ``collect_incoming_data``, then
        ``found_terminator`` on ``end``). Limits count the pieces already handed over. At
        the end of stream the rest of an unfinished body or line is handed over, then ``END``.
        """
        mode = self._mode
        if isinstance(mode, Delimited):
            piece = self._delimited(mode, True)
        else:
            piece = self._counted(mode, True)
        if piece is None:
            return END if self._eof else NEED_DATA
        return Chunk(*piece)

    def __iter__(self) -> Iterator[bytes]:
        """Yield complete frames until ``NEED_DATA`` or ``END``; the loop body may switch the
        mode, and the next frame is cut under it."""
        while isinstance(frame := self.next_frame(), bytes):
            yield frame

    def take(self, n: int = -1) -> bytes:
        """Remove and return up to ``n`` buffered bytes (all if ``n`` < 0) whatever the mode,
        and start a new frame: ``clearLineBuffer``, the tail at the end of stream, the bytes
        of a frame that was too long, asyncio's ``read(n)``."""
        start, end = self._pos, len(self._buf)
        if 0 <= n < end - start:
            end = start + n
        data = bytes(self._buf[start:end])
        self._pos = end
        self._start_frame()
        return data

    def _start_frame(self) -> None:
        self._released = 0
        self._scan = self._pos
        self._hdr = 0
        self._need = -1

    # The two cutters below return (bytes, frame ended) or None for "nothing to give". They
    # are the hot path: one call per frame, no per-byte Python work, state reset inline.

    def _counted(
        self, mode: Counted | Netstring | LengthPrefixed | Raw, partial: bool
    ) -> tuple[bytes, bool] | None:
        buf, pos = self._buf, self._pos
        if isinstance(mode, Raw):
            if pos == len(buf):
                return None
            self._pos = len(buf)
            return bytes(buf[pos:]), False
        if self._need < 0:
            header = mode._header(buf, pos)
            if header is None:
                return None
            self._hdr, self._need = header
        trailer = mode._trailer
        start, need = pos + self._hdr, self._need
        available = len(buf) - start
        if available >= need + len(trailer):
            end = start + need
            if trailer and not buf.startswith(trailer, end):
                raise MalformedFrame(f"frame body not followed by {trailer!r}")
            self._pos = end + len(trailer)
            self._released = self._hdr = 0
            self._need = -1
            return bytes(buf[start:end]), True
        size = min(available, need)
        if not partial or size <= 0:
            return None
        self._pos = start + size
        self._hdr = 0
        self._need = need - size
        self._released += size
        return bytes(buf[start : start + size]), False

    def _delimited(self, mode: Delimited, partial: bool) -> tuple[bytes, bool] | None:
        buf, pos, delimiter = self._buf, self._pos, mode.delimiter
        room = mode.max_length - self._released  # frame bytes still allowed
        # The delimiter must end by `limit`; searching no further bounds the work per pull.
        limit = pos + room + len(delimiter)
        found = buf.find(delimiter, self._scan, limit)
        if found >= 0:
            self._pos = self._scan = found + len(delimiter)
            self._released = 0
            return bytes(buf[pos:found]), True
        end = len(buf)
        if end >= limit:
            raise FrameTooLong(
                f"no delimiter {delimiter!r} within {mode.max_length} bytes",
                length=self._released + end - pos,
                max_length=mode.max_length,
            )
        # Every occurrence starting before this point would have been found.
        self._scan = max(pos, end - len(delimiter) + 1)
        if not partial:
            return None
        stop = end if self._eof else end - _prefix_at_end(buf, pos, delimiter)
        stop = min(stop, pos + room)
        if stop <= pos:
            return None
        self._pos = self._scan = stop
        self._released += stop - pos
        return bytes(buf[pos:stop]), False
