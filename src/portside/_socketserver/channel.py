"""An engine connection whose bytes wait in a buffer until handler code asks for them.

The loop side of a green (or loop-bridged) request socket. Callbacks arrive as for any
:class:`~portside.core.connection.Connection`; each one that makes progress possible wakes the
handler waiting for it (``reader`` for bytes, end-of-file or loss; ``writer`` for the start of
the connection and for drained write buffers). Everything here runs in the loop's thread.
``on_start`` is called once the connection is up (after any TLS handshake): that is when the
server's request cycle (``verify_request``, ``process_request``) runs for it; ``on_lost`` once
it is gone.

Reading is flow-controlled: above :data:`READ_HIGH_WATER` unread bytes the transport stops
reading until the handler has consumed down to :data:`READ_LOW_WATER`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from portside._socketserver import waiting
from portside.core.connection import Connection, ConnectionOwner

__all__ = ["READ_HIGH_WATER", "READ_LOW_WATER", "StreamChannel"]

# The engine's write high-water default, for the same reason: a socket buffer's worth keeps the
# link busy while a handler that stops reading cannot make the server buffer without bound.
READ_HIGH_WATER = 64 * 1024
READ_LOW_WATER = 16 * 1024


class StreamChannel(Connection):
    """Buffers what the peer sends for a blocking-style reader; wakes it when it can go on.

    State the socket object reads: ``buffer[offset:]`` is unread data (an empty buffer means
    everything was read, and then ``offset`` is 0); ``eof`` (peer
    half-closed), ``lost`` (connection gone, ``error`` says why or is None), ``ended`` (lost,
    or closing: no more writes), ``halt`` (any of those, or draining: reads must look
    closer before waiting), ``started``
    (after any TLS handshake), ``draining`` (server shutting down), ``exchange_open`` (bytes
    were read since the handler last wrote).
    """

    __slots__ = (
        "buffer",
        "draining",
        "ended",
        "eof",
        "error",
        "exchange_open",
        "halt",
        "lost",
        "offset",
        "on_lost",
        "on_start",
        "read_shut",
        "reader",
        "reading_paused",
        "started",
        "write_shut",
        "writer",
    )

    def __init__(
        self, owner: ConnectionOwner, peer: Any, on_start: Callable[[], None] | None = None
    ) -> None:
        super().__init__(owner, peer)
        self.on_start = on_start
        self.on_lost: Callable[[], None] | None = None
        self.buffer: bytes | bytearray = b""
        self.offset = 0
        self.eof = False
        self.lost = False
        self.ended = False
        self.error: BaseException | None = None
        self.started = False
        self.draining = False
        self.exchange_open = False
        self.halt = False
        self.read_shut = False
        self.write_shut = False
        self.reading_paused = False
        self.reader: Any = None
        self.writer: Any = None

    # -- engine hooks (loop thread) --------------------------------------------------------

    def _on_start(self) -> None:
        self.started = True
        if self.on_start is not None:
            # Started by the first bytes if they come before the loop's next turn, else then.
            # A handler greenlet keeps the C stack depth it was started at: started from the
            # read path, its later switches from there copy no loop frames (about 10 % less
            # CPU per message); a handler that speaks first waits one loop turn at most.
            self.loop.call_soon(self._begin)

    def _begin(self) -> None:
        on_start, self.on_start = self.on_start, None
        if on_start is not None:
            on_start()

    def data_received(self, data: bytes) -> None:
        """Buffer ``data`` and resume a handler waiting for it (every message's hot path).

        The engine's ``data_received`` with the ``_on_data`` hook inlined: one call less.
        """
        self.bytes_received += len(data)
        try:
            buffer = self.buffer
            if not buffer:  # everything read (offset is then 0): the common case
                self.buffer = data
            else:
                if isinstance(buffer, bytes):
                    buffer = self.buffer = bytearray(memoryview(buffer)[self.offset :])
                    self.offset = 0
                buffer += data
                if len(buffer) >= READ_HIGH_WATER and not self.reading_paused:
                    self.reading_paused = True
                    self.transport.pause_reading()
            if self.on_start is not None:
                self._begin()  # the handler starts here and finds the bytes buffered
                return
            reader = self.reader
            if reader is not None:
                self.reader = None
                if reader.pending and waiting.getcurrent() is reader.hub:  # wake(), inlined
                    reader.pending = False
                    reader.glet.switch(True)
                else:
                    reader.wake()
        except Exception as exc:
            self._failed("handling received data", exc)

    def _on_eof(self) -> bool | None:
        self.eof = self.halt = True
        self._wake_reader()
        # keep the write side open so the handler can still answer a half-closed peer (TLS
        # cannot half-close, and asyncio warns if asked to)
        return self.transport.get_extra_info("sslcontext") is None

    def _on_lost(self, exc: Exception | None) -> None:
        self.lost = self.ended = self.halt = True
        self.error = exc
        self._wake_both()
        if self.on_lost is not None:
            self.on_lost()

    def _on_resume_writing(self) -> None:
        writer = self.writer
        if writer is not None:
            self.writer = None
            writer.wake()

    def idle_timed_out(self) -> None:
        """No traffic for the idle timeout: close, and let a waiting handler see end-of-file."""
        super().idle_timed_out()
        self._wake_both()

    def begin_shutdown(self) -> None:
        """Graceful shutdown: a read at an exchange boundary now returns end-of-file."""
        self.draining = self.halt = True
        if not self.exchange_open:
            self._wake_reader()

    # -- reading (the socket object calls these) -------------------------------------------

    @property
    def unread(self) -> int:
        """How many received bytes wait to be read."""
        return len(self.buffer) - self.offset

    @property
    def at_end(self) -> bool:
        """True when a read finding no buffered bytes must return end-of-file."""
        return (
            self.eof
            or self.lost
            or self.read_shut
            or (self.draining and not self.exchange_open)
            or self.ended
        )

    def take(self, count: int, *, peek: bool = False) -> bytes:
        """Up to ``count`` buffered bytes (all of them if ``count`` < 0)."""
        buffer, start = self.buffer, self.offset
        size = len(buffer)
        end = size if count < 0 or start + count > size else start + count
        if type(buffer) is bytes:
            data = buffer if start == 0 and end == size else buffer[start:end]
        else:
            data = bytes(memoryview(buffer)[start:end])
        if peek:
            return data
        if end == size and not self.reading_paused:  # the common case: everything taken
            self.buffer = b""
            self.offset = 0
            self.exchange_open = True
            return data
        self._consumed(end)
        return data

    def take_into(self, target: memoryview) -> int:
        """Copy buffered bytes into ``target``; return how many."""
        start = self.offset
        count = min(len(target), len(self.buffer) - start)
        target[:count] = memoryview(self.buffer)[start : start + count]
        self._consumed(start + count)
        return count

    def find(self, needle: bytes, limit: int) -> int:
        """The end of the first ``needle`` within ``limit`` unread bytes, or -1."""
        start = self.offset
        stop = len(self.buffer) if limit < 0 else min(len(self.buffer), start + limit)
        index = self.buffer.find(needle, start, stop)
        return -1 if index < 0 else index + len(needle) - start

    def _consumed(self, end: int) -> None:
        if end:
            self.exchange_open = True
        buffer = self.buffer
        if end >= len(buffer):
            self.buffer = b""
            self.offset = 0
        elif isinstance(buffer, bytearray) and end > len(buffer) // 2:
            del buffer[:end]
            self.offset = 0
        else:
            self.offset = end
        if self.reading_paused and len(self.buffer) - self.offset <= READ_LOW_WATER:
            self.reading_paused = False
            if not self.lost:
                self.transport.resume_reading()

    def read_more(self) -> None:
        """A reader needs more than is buffered: read on past the high-water mark.

        Pausing bounds what arrives unasked; a handler that asks for a longer line or a
        larger ``read(n)`` has chosen the memory it needs.
        """
        if self.reading_paused and not self.lost:
            self.reading_paused = False
            self.transport.resume_reading()

    # -- ending ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close after what was written is sent (see :class:`Connection`)."""
        self.ended = self.halt = True
        super().close()

    def abort(self) -> None:
        """Close now, dropping what was not sent."""
        self.ended = self.halt = True
        super().abort()

    # -- waking ----------------------------------------------------------------------------

    def _wake_reader(self) -> None:
        reader = self.reader
        if reader is not None:
            self.reader = None
            reader.wake()

    def _wake_both(self) -> None:
        self._wake_reader()
        writer = self.writer
        if writer is not None:
            self.writer = None
            writer.wake()


def transport_socket(channel: StreamChannel) -> Any:
    """The socket-like object behind the channel's transport (for options and names)."""
    transport: asyncio.BaseTransport = channel.transport
    return transport.get_extra_info("socket")
