"""In-memory transports: drive an engine connection, and the protocol inside it, without sockets.

:func:`connect` serves anything ``portside.serve`` accepts (a Twisted ``Factory``, an
``asyncio.Protocol`` factory, an ``async def handler(reader, writer)``, engine
:class:`~portside.core.server.Handlers`), or runs an engine
:class:`~portside.core.connection.Connection` you built, over a :class:`MemoryTransport`.
The test plays the peer::

    async def test_echo() -> None:
        transport = connect(EchoFactory())
        transport.feed(b"hello")               # the peer sends
        assert transport.take() == b"hello"    # what the peer has received
        transport.feed_eof()                   # the peer half-closes
        await transport.wait_lost()            # connection_lost has been delivered

The transport keeps asyncio's rules, so what passes here holds on a real socket:
``connection_lost`` arrives in a later loop iteration, never from inside ``close()``; a
closing transport drops writes and ignores what the peer sends; ``close()`` waits for the
unsent bytes, ``abort()`` discards them; the protocol is paused when the unsent bytes go
above the high-water mark and resumed at or below the low one; an exception escaping a
protocol callback goes to the loop's exception handler, as asyncio does.

By default the peer reads everything at once, so nothing stays buffered.
:meth:`MemoryTransport.stall` makes the peer stop reading so the buffer fills;
:meth:`MemoryTransport.drain` then reads some or all of it.

Use these from a running event loop (an ``async def`` test): an engine connection takes the
running loop when it starts.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Mapping
from typing import Any

from portside.app import as_handlers
from portside.config import Limits
from portside.core.connection import Connection, ConnectionOwner
from portside.core.datagram import DatagramConnection

__all__ = ["MemoryDatagramTransport", "MemoryTransport", "connect", "connect_datagram"]

DEFAULT_PEERNAME = ("127.0.0.1", 54321)
DEFAULT_SOCKNAME = ("127.0.0.1", 8000)
# asyncio's default water marks for a transport nobody configured.
DEFAULT_HIGH_WATER = 64 * 1024


class MemoryTransport(asyncio.Transport):
    """A stream transport whose peer is the test: records writes, fakes flow control and closing.

    Peer side: :meth:`feed`, :meth:`feed_eof`, :meth:`reset`, :meth:`stall`, :meth:`drain`,
    :meth:`take`, :meth:`wait_lost`. Protocol side: the ``asyncio.Transport`` methods.
    """

    def __init__(
        self,
        protocol: asyncio.BaseProtocol,
        *,
        peername: Any = DEFAULT_PEERNAME,
        sockname: Any = DEFAULT_SOCKNAME,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        info: dict[str, Any] = {
            "peername": peername,
            "sockname": sockname,
            "socket": None,
            "sslcontext": None,
        }
        info.update(extra or {})
        super().__init__(info)
        self.loop = asyncio.get_running_loop()
        self.protocol = protocol
        self.buffer = bytearray()
        """Bytes written but not yet read by the peer (only while it is stalled)."""
        self.eof_written = False
        """True once the protocol called :meth:`write_eof`."""
        self.aborted = False
        """True once the protocol called :meth:`abort`."""
        self._delivered = bytearray()
        self._stalled = False
        self._closing = False
        self._reading = True
        self._unread: list[bytes | None] = []
        self._high = DEFAULT_HIGH_WATER
        self._low = DEFAULT_HIGH_WATER // 4
        self._protocol_paused = False
        self._lost_scheduled = False
        self._lost: asyncio.Future[Exception | None] = self.loop.create_future()

    # -- the peer's side ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """The peer sends ``data``; held back while reading is paused, ignored once closing."""
        if self._closing:
            return
        if not self._reading or self._unread:
            self._unread.append(bytes(data))
            return
        self._deliver(bytes(data))

    def feed_eof(self) -> None:
        """The peer half-closes; the transport closes unless ``eof_received`` returns True."""
        if self._closing:
            return
        if not self._reading or self._unread:
            self._unread.append(None)
            return
        self._deliver_eof()

    def reset(self, exc: Exception | None = None) -> None:
        """The peer resets the connection: unsent bytes are lost, ``connection_lost(exc)``."""
        if exc is None:
            exc = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        self._closing = True
        self.buffer.clear()
        self._schedule_lost(exc)

    def stall(self) -> None:
        """The peer stops reading: later writes stay in :attr:`buffer`."""
        self._stalled = True

    def drain(self, size: int | None = None) -> bytes:
        """The peer reads ``size`` bytes (all when None) of the buffer; returns them.

        The peer stays stalled; call :meth:`unstall` to make it read everything from now on.
        """
        count = len(self.buffer) if size is None else min(size, len(self.buffer))
        chunk = bytes(self.buffer[:count])
        del self.buffer[:count]
        self._delivered += chunk
        self._maybe_resume_protocol()
        if self._closing and not self.buffer:
            self._schedule_lost(None)
        return chunk

    def unstall(self) -> None:
        """The peer reads again: the buffer is drained and later writes go straight through."""
        self._stalled = False
        self.drain()

    def value(self) -> bytes:
        """Everything the peer has received since the last :meth:`take`."""
        return bytes(self._delivered)

    def take(self) -> bytes:
        """Everything the peer has received since the last call, then forget it."""
        data = bytes(self._delivered)
        self._delivered.clear()
        return data

    @property
    def lost(self) -> bool:
        """True once ``connection_lost`` has been delivered to the protocol."""
        return self._lost.done()

    async def wait_lost(self) -> Exception | None:
        """Wait until ``connection_lost`` has been delivered; returns the exception it got."""
        return await asyncio.shield(self._lost)

    # -- asyncio.Transport -------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for the peer (dropped once closing, as asyncio does)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__}")
        if self.eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._closing or not data:
            return
        if self._stalled:
            self.buffer += data
            self._maybe_pause_protocol()
        else:
            self._delivered += data

    def writelines(self, list_of_data: Any) -> None:
        """Queue several chunks."""
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """Half-close after the buffered bytes (recorded in :attr:`eof_written`)."""
        if not self._closing:
            self.eof_written = True

    def can_write_eof(self) -> bool:
        """A memory transport can half-close."""
        return True

    def close(self) -> None:
        """Close once the buffered bytes have been read by the peer."""
        if self._closing:
            return
        self._closing = True
        if not self.buffer:
            self._schedule_lost(None)

    def abort(self) -> None:
        """Close now, discarding the buffered bytes."""
        self.aborted = True
        self._closing = True
        self.buffer.clear()
        self._schedule_lost(None)

    def is_closing(self) -> bool:
        """True once closing (by either side)."""
        return self._closing

    def pause_reading(self) -> None:
        """Hold back what the peer sends until :meth:`resume_reading`."""
        self._reading = False

    def resume_reading(self) -> None:
        """Deliver what the peer sent meanwhile, then keep delivering."""
        self._reading = True
        while self._reading and self._unread and not self._closing:
            item = self._unread.pop(0)
            if item is None:
                self._deliver_eof()
            else:
                self._deliver(item)

    def is_reading(self) -> bool:
        """True unless reading is paused or the transport is closing."""
        return self._reading and not self._closing

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks, with asyncio's defaults (high 64 KiB, low high // 4)."""
        if high is None:
            high = DEFAULT_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The (low, high) water marks."""
        return self._low, self._high

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet read by the peer."""
        return len(self.buffer)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Deliver later events to ``protocol``."""
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol events are delivered to."""
        return self.protocol

    # -- delivery ----------------------------------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        protocol = self.protocol
        try:
            if isinstance(protocol, asyncio.BufferedProtocol):
                view = memoryview(data)
                while view:
                    with memoryview(protocol.get_buffer(len(view))).cast("B") as buf:
                        n = min(len(buf), len(view))
                        if n == 0:
                            raise RuntimeError("get_buffer() returned an empty buffer")
                        buf[:n] = view[:n]
                    protocol.buffer_updated(n)
                    view = view[n:]
            else:
                assert isinstance(protocol, asyncio.Protocol)
                protocol.data_received(data)
        except Exception as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")

    def _deliver_eof(self) -> None:
        protocol = self.protocol
        assert isinstance(protocol, asyncio.Protocol | asyncio.BufferedProtocol)
        try:
            keep_open = protocol.eof_received()
        except Exception as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if not keep_open:
            self.close()

    def _maybe_pause_protocol(self) -> None:
        if len(self.buffer) <= self._high or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self.protocol.pause_writing()
        except Exception as exc:
            self._report(exc, "protocol.pause_writing() failed")

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and len(self.buffer) <= self._low:
            self._protocol_paused = False
            try:
                self.protocol.resume_writing()
            except Exception as exc:
                self._report(exc, "protocol.resume_writing() failed")

    def _fatal_error(self, exc: Exception, message: str) -> None:
        self._report(exc, message)
        self._closing = True
        self.buffer.clear()
        self._schedule_lost(exc)

    def _report(self, exc: Exception, message: str) -> None:
        self.loop.call_exception_handler(
            {"message": message, "exception": exc, "transport": self, "protocol": self.protocol}
        )

    def _schedule_lost(self, exc: Exception | None) -> None:
        if not self._lost_scheduled:
            self._lost_scheduled = True
            self.loop.call_soon(self._call_lost, exc)

    def _call_lost(self, exc: Exception | None) -> None:
        try:
            self.protocol.connection_lost(exc)
        except Exception as error:
            self._report(error, "protocol.connection_lost() failed")
        finally:
            self._lost.set_result(exc)


class MemoryDatagramTransport(asyncio.DatagramTransport):
    """A datagram transport whose peers are the test: records what is sent, feeds datagrams."""

    def __init__(
        self,
        protocol: asyncio.DatagramProtocol,
        *,
        sockname: Any = DEFAULT_SOCKNAME,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        info: dict[str, Any] = {"sockname": sockname, "peername": None, "socket": None}
        info.update(extra or {})
        super().__init__(info)
        self.loop = asyncio.get_running_loop()
        self.protocol = protocol
        self.sent: list[tuple[bytes, Any]] = []
        """Datagrams sent, with their addresses, since the last :meth:`take`."""
        self._closing = False
        self._lost: asyncio.Future[None] = self.loop.create_future()

    def feed(self, data: bytes, addr: Any) -> None:
        """A datagram arrives from ``addr``; ignored once closing."""
        if not self._closing:
            self.protocol.datagram_received(bytes(data), addr)

    def feed_error(self, exc: Exception) -> None:
        """A send or receive failed (an ICMP error for an earlier datagram)."""
        if not self._closing:
            self.protocol.error_received(exc)

    def take(self) -> list[tuple[bytes, Any]]:
        """The datagrams sent since the last call, then forget them."""
        sent, self.sent = self.sent, []
        return sent

    async def wait_lost(self) -> None:
        """Wait until ``connection_lost`` has been delivered."""
        await asyncio.shield(self._lost)

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Record one datagram to ``addr`` (dropped once closing)."""
        if not self._closing:
            self.sent.append((bytes(data), addr))

    def close(self) -> None:
        """Close; ``connection_lost(None)`` follows in a later loop iteration."""
        if not self._closing:
            self._closing = True
            self.loop.call_soon(self._call_lost)

    def abort(self) -> None:
        """Close now (there is never anything buffered)."""
        self.close()

    def is_closing(self) -> bool:
        """True once closing."""
        return self._closing

    def get_write_buffer_size(self) -> int:
        """Always 0: a datagram is sent or dropped at once."""
        return 0

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Deliver later events to ``protocol``."""
        assert isinstance(protocol, asyncio.DatagramProtocol)
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol events are delivered to."""
        return self.protocol

    def _call_lost(self) -> None:
        try:
            self.protocol.connection_lost(None)
        finally:
            self._lost.set_result(None)


def _owner(owner: ConnectionOwner | None, limits: Limits | None) -> ConnectionOwner:
    if owner is not None and limits is not None:
        raise TypeError("pass owner or limits, not both")
    return owner if owner is not None else ConnectionOwner(limits)


def connect(
    target: Any,
    *,
    owner: ConnectionOwner | None = None,
    limits: Limits | None = None,
    peername: Any = DEFAULT_PEERNAME,
    sockname: Any = DEFAULT_SOCKNAME,
    extra: Mapping[str, Any] | None = None,
) -> MemoryTransport:
    """Start one connection over a :class:`MemoryTransport` and return the transport.

    ``target`` is an engine :class:`Connection` (which brings its own owner) or anything
    ``portside.serve`` accepts, served under ``owner`` (or a new one with ``limits``).
    Raises ConnectionRefusedError when the application refuses the peer.
    """
    if isinstance(target, Connection):
        if owner is not None or limits is not None:
            raise TypeError("a Connection brings its own owner and limits")
        connection = target
    else:
        stream = as_handlers(target).stream
        if stream is None:
            raise TypeError(f"{target!r} does not serve stream connections")
        made = stream(_owner(owner, limits), peername)
        if made is None:
            raise ConnectionRefusedError(f"{target!r} refused a connection from {peername!r}")
        connection = made
    transport = MemoryTransport(connection, peername=peername, sockname=sockname, extra=extra)
    connection.connection_made(transport)
    return transport


def connect_datagram(
    target: Any,
    *,
    owner: ConnectionOwner | None = None,
    limits: Limits | None = None,
    sockname: Any = DEFAULT_SOCKNAME,
    extra: Mapping[str, Any] | None = None,
) -> MemoryDatagramTransport:
    """Start one datagram endpoint over a :class:`MemoryDatagramTransport`; return the transport.

    ``target`` is an engine :class:`DatagramConnection` or anything ``portside.serve``
    accepts that speaks UDP (a Twisted ``DatagramProtocol``).
    """
    if isinstance(target, DatagramConnection):
        if owner is not None or limits is not None:
            raise TypeError("a DatagramConnection brings its own owner and limits")
        endpoint = target
    else:
        datagram = as_handlers(target).datagram
        if datagram is None:
            raise TypeError(f"{target!r} does not serve datagrams")
        endpoint = datagram(_owner(owner, limits))
    transport = MemoryDatagramTransport(endpoint, sockname=sockname, extra=extra)
    endpoint.connection_made(transport)
    return transport
