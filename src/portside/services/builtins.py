"""The classic small services of RFCs 862-868, written as Twisted-door protocols.

Each service has a stream ``Protocol`` (with a ``Factory``) and a ``DatagramProtocol``:

=========  ========  ====================================================================
service    RFC       behaviour (TCP / UDP)
=========  ========  ====================================================================
echo       862       send back what arrives / send each datagram back
discard    863       read and drop / drop
chargen    864       stream the rotating character pattern until the client leaves /
                     answer each datagram with 1-512 bytes of the pattern
qotd       865       send one quote, close / answer each datagram with a quote
daytime    867       send the date and time as text, close / answer with it
time       868       send 4 bytes (seconds since 1900, big-endian), close / answer with them
=========  ========  ====================================================================

They are also the reference examples of the Twisted door: the echo protocol is the whole
``dataReceived -> transport.write`` path that the echo benchmark measures.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside.internet.protocol import DatagramProtocol, Factory, Protocol

__all__ = [
    "CHARGEN_CHUNK",
    "CHARGEN_DATAGRAM_MAX",
    "CHARGEN_LINE",
    "CHARGEN_PRINTABLE",
    "DEFAULT_QUOTES",
    "MAX_QUOTE",
    "Chargen",
    "ChargenDatagram",
    "Daytime",
    "DaytimeDatagram",
    "Discard",
    "DiscardDatagram",
    "Echo",
    "EchoDatagram",
    "QotdOptions",
    "Quote",
    "QuoteDatagram",
    "QuoteFactory",
    "Time",
    "TimeDatagram",
    "daytime_text",
    "load_quotes",
    "quotes_for",
    "time_bytes",
]

# -- echo (RFC 862) and discard (RFC 863) ----------------------------------------------------


class Echo(Protocol):
    """RFC 862 over TCP: whatever arrives is sent back.

    The connection's own reading is registered as its producer, so a client that sends without
    reading gets its input paused at the write-buffer high-water mark instead of growing the
    server's memory.
    """

    def connectionMade(self) -> None:
        self.transport.registerProducer(self.transport, True)

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class EchoDatagram(DatagramProtocol):
    """RFC 862 over UDP: each datagram is sent back to where it came from."""

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(datagram, addr)


class Discard(Protocol):
    """RFC 863 over TCP: everything that arrives is dropped; nothing is ever sent."""

    def dataReceived(self, data: bytes) -> None:
        """Drop ``data``."""


class DiscardDatagram(DatagramProtocol):
    """RFC 863 over UDP: every datagram is dropped."""

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Drop ``datagram``."""


# -- chargen (RFC 864) ----------------------------------------------------------------------

CHARGEN_PRINTABLE = bytes(range(32, 127))
"""The 95 printable ASCII characters, space first (the ring BSD inetd's chargen uses)."""
CHARGEN_LINE = 72
"""Characters per line, before the CRLF."""

_RING = CHARGEN_PRINTABLE * 2
# One full cycle: line n holds the 72 characters starting at the n-th of the 95, so the
# pattern repeats after 95 lines (95 * 74 = 7,030 bytes).
_CYCLE = b"".join(
    _RING[start : start + CHARGEN_LINE] + b"\r\n" for start in range(len(CHARGEN_PRINTABLE))
)
# What one producer step writes: two whole cycles (14,060 bytes), so every write starts at line 0,
# a step is worth one system call, and a paused connection holds at most one step above the
# high-water mark.
CHARGEN_CHUNK = _CYCLE * 2
# UDP answers are cut from here: a cycle plus the longest answer, so any start line fits.
_UDP_SOURCE = _CYCLE + _CYCLE[:512]
# RFC 864: "The data may be anywhere between 0 and 512 characters" per datagram.
CHARGEN_DATAGRAM_MAX = 512


class Chargen(Protocol):
    """RFC 864 over TCP: stream the character pattern until the client closes; input is dropped.

    The protocol is a push producer registered with its transport: the engine calls
    ``pauseProducing`` when the write buffer passes the high-water mark and
    ``resumeProducing`` when it drains below the low one, so a client that never reads costs
    at most the high-water mark plus one chunk (``CHARGEN_CHUNK``) of memory.
    """

    chunk = CHARGEN_CHUNK

    def __init__(self) -> None:
        self._paused = False
        self._stopped = False
        self._next: asyncio.Handle | None = None

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        if not (self._paused or self._stopped):
            self._schedule()

    def dataReceived(self, data: bytes) -> None:
        """Drop ``data``: a chargen server ignores its input."""

    # IPushProducer: called by the transport, in pairs, as its write buffer fills and drains.

    def pauseProducing(self) -> None:
        """Stop writing until :meth:`resumeProducing`."""
        self._paused = True
        self._cancel()

    def resumeProducing(self) -> None:
        """Write again."""
        self._paused = False
        if not self._stopped:
            self._schedule()

    def stopProducing(self) -> None:
        """Stop for good (the connection is closing)."""
        self._stopped = True
        self._cancel()

    def _schedule(self) -> None:
        if self._next is None:
            self._next = asyncio.get_running_loop().call_soon(self._produce)

    def _cancel(self) -> None:
        if self._next is not None:
            self._next.cancel()
            self._next = None

    def _produce(self) -> None:
        # One chunk per loop iteration, so other connections are served in between.
        self._next = None
        if self._paused or self._stopped:
            return
        self.transport.write(self.chunk)  # may call pauseProducing before it returns
        if not (self._paused or self._stopped):
            self._schedule()


class ChargenDatagram(DatagramProtocol):
    """RFC 864 over UDP: answer each datagram with up to 512 bytes of the pattern.

    Successive answers start one line further into the pattern, as successive lines do on TCP.
    ``length`` chooses each answer's size; by default it is random in 1-512: the RFC allows an
    empty answer, but a client cannot tell it from a lost one, and asyncio before Python 3.13
    does not send empty datagrams at all.
    """

    def __init__(self, length: Callable[[], int] | None = None) -> None:
        self._length = length or (lambda: random.randint(1, CHARGEN_DATAGRAM_MAX))
        self._line = 0

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        length = min(max(self._length(), 0), CHARGEN_DATAGRAM_MAX)
        start = self._line * (CHARGEN_LINE + 2)
        self._line = (self._line + 1) % len(CHARGEN_PRINTABLE)
        self.transport.write(_UDP_SOURCE[start : start + length], addr)


# -- daytime (RFC 867) and time (RFC 868) ---------------------------------------------------

# RFC 868: seconds from 1900-01-01 00:00 UTC to the Unix epoch (17 leap years in between).
EPOCH_1900_OFFSET = 2_208_988_800


def daytime_text(now: float) -> bytes:
    """RFC 867's answer for ``now``: the local date and time in the RFC's example format, CRLF.

    For example ``Tuesday, February 22, 1982 17:37:43-PST``; the RFC fixes no syntax.
    """
    moment = datetime.datetime.fromtimestamp(now).astimezone()
    return moment.strftime("%A, %B %d, %Y %H:%M:%S-%Z\r\n").encode("ascii", "replace")


def time_bytes(now: float) -> bytes:
    """RFC 868's answer for ``now``: seconds since 1900 as 32 big-endian bits.

    The count wraps modulo 2**32 (in February 2036), as the RFC's 32-bit field does.
    """
    return struct.pack("!I", (int(now) + EPOCH_1900_OFFSET) & 0xFFFF_FFFF)


class Daytime(Protocol):
    """RFC 867 over TCP: send the date and time as one line of text, then close."""

    def connectionMade(self) -> None:
        self.transport.write(daytime_text(time.time()))
        self.transport.loseConnection()


class DaytimeDatagram(DatagramProtocol):
    """RFC 867 over UDP: answer any datagram with the date and time."""

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(daytime_text(time.time()), addr)


class Time(Protocol):
    """RFC 868 over TCP: send the time as 4 bytes (seconds since 1900), then close."""

    def connectionMade(self) -> None:
        self.transport.write(time_bytes(time.time()))
        self.transport.loseConnection()


class TimeDatagram(DatagramProtocol):
    """RFC 868 over UDP: answer any datagram with the time as 4 bytes."""

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(time_bytes(time.time()), addr)


# -- qotd (RFC 865) ---------------------------------------------------------------------------

MAX_QUOTE = 512
"""RFC 865: "the quote ... should be limited to ... less than 512" characters (bytes here)."""

DEFAULT_QUOTES = (
    b"Be liberal in what you accept, and conservative in what you send.\r\n"
    b"    -- Jon Postel, RFC 761\r\n",
    b"Simple things should be simple, complex things should be possible.\r\n    -- Alan Kay\r\n",
    b"Premature optimization is the root of all evil.\r\n    -- Donald Knuth\r\n",
)
"""The quotes served when no quote file is given."""


@dataclass(frozen=True, slots=True)
class QotdOptions:
    """Settings of the qotd service (the ``portside serve qotd`` options)."""

    quote_file: Path | None = field(
        default=None,
        metadata={
            "help": "File of quotes to serve (none: a few built-in ones): UTF-8 text, quotes "
            "separated by lines holding only '%' (the fortune format), each under 512 bytes."
        },
    )


def load_quotes(path: Path | str) -> tuple[bytes, ...]:
    """Read a fortune-format quote file; ValueError names a quote of 512 bytes or more.

    Quotes are separated by lines holding only ``%``; blank quotes are skipped; line endings
    become CRLF and each quote ends with one.
    """
    text = Path(path).read_text(encoding="utf-8")
    quotes: list[bytes] = []
    current: list[str] = []
    lines = [*text.splitlines(), "%"]
    for number, line in enumerate(lines, start=1):
        if line.strip() != "%":
            current.append(line.rstrip())
            continue
        body = "\r\n".join(current).strip("\r\n")
        current = []
        if not body:
            continue
        quote = (body + "\r\n").encode("utf-8")
        if len(quote) >= MAX_QUOTE:
            raise ValueError(
                f"{path}: the quote ending at line {min(number, len(lines) - 1)} has "
                f"{len(quote)} bytes; RFC 865 asks for fewer than {MAX_QUOTE}"
            )
        quotes.append(quote)
    if not quotes:
        raise ValueError(f"{path}: no quotes found")
    return tuple(quotes)


def quotes_for(options: QotdOptions) -> tuple[bytes, ...]:
    """The quotes ``options`` asks for: its quote file's, or :data:`DEFAULT_QUOTES`."""
    return DEFAULT_QUOTES if options.quote_file is None else load_quotes(options.quote_file)


class _Quotes:
    """A quote source: picks one of its quotes at random for each answer."""

    def __init__(self, quotes: Sequence[bytes], rng: random.Random | None = None) -> None:
        if not quotes:
            raise ValueError("no quotes to serve")
        self.quotes = tuple(quotes)
        self._rng = rng or random.Random()

    def pick(self) -> bytes:
        return self._rng.choice(self.quotes)


class Quote(Protocol):
    """RFC 865 over TCP: send one quote, then close.

    The quote comes from :meth:`getQuote`: by default one of its :class:`QuoteFactory`'s
    quotes; override it (as with Twisted's ``QOTD``) to serve quotes from elsewhere.
    """

    factory: QuoteFactory

    def connectionMade(self) -> None:
        self.transport.write(self.getQuote())
        self.transport.loseConnection()

    def getQuote(self) -> bytes:
        """The quote to send: a random one of the factory's."""
        return self.factory.quotes.pick()


class QuoteFactory(Factory):
    """Builds :class:`Quote` protocols serving ``quotes`` (each under 512 bytes)."""

    protocol = Quote

    def __init__(self, quotes: Sequence[bytes], rng: random.Random | None = None) -> None:
        self.quotes = _Quotes(quotes, rng)


class QuoteDatagram(DatagramProtocol):
    """RFC 865 over UDP: answer any datagram with a quote."""

    def __init__(self, quotes: Sequence[bytes], rng: random.Random | None = None) -> None:
        self.quotes = _Quotes(quotes, rng)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(self.quotes.pick(), addr)
