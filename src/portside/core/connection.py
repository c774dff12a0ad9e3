"""One stream connection as the engine sees it, and the owner it reports to.

A :class:`Connection` is the asyncio protocol the loop drives. Front doors subclass it and
become the transport their users see (Twisted's ``transport``, asyncore's socket, a streams
writer), so there is one object per connection and no forwarding layer on the hot path.

Callbacks arrive in this order::

    connection_made -> _start_app -> data_received* -> [eof_received] -> connection_lost
                                    (pause_writing / resume_writing in between, in pairs)

The connection counts bytes, applies the owner's write-buffer water marks, takes part in the
owner's idle sweep, and turns an exception from application code into a logged error and an
aborted connection instead of a crashed loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from portside.config import Limits
from portside.core.metrics import Counters

__all__ = ["Connection", "ConnectionOwner"]

log = logging.getLogger("portside")

# The idle sweep looks at every connection this many times per idle_timeout, so a connection is
# closed between 1 and 1 + 1/SWEEPS_PER_TIMEOUT timeouts after its last traffic.
SWEEPS_PER_TIMEOUT = 4


class ConnectionOwner:
    """What connections report to: limits, counters, the live set, and capacity changes.

    A server owns one; so does each listening port of the reactor facade. Listeners ask
    :attr:`at_capacity` before accepting and register a callback to hear when a slot frees.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.counters = Counters()
        self.live: set[Connection] = set()
        self.pending = 0
        self._capacity_waiters: list[Any] = []
        self._empty: asyncio.Event | None = None
        self._sweep: asyncio.TimerHandle | None = None

    @property
    def at_capacity(self) -> bool:
        """True when no further connection may be accepted right now."""
        cap = self.limits.max_connections
        return cap is not None and len(self.live) + self.pending >= cap

    def on_capacity(self, callback: Any) -> None:
        """Call ``callback()`` whenever a connection slot frees up."""
        self._capacity_waiters.append(callback)

    def opened(self, connection: Connection) -> None:
        """Admit ``connection`` to the live set (called from ``connection_made``)."""
        self.live.add(connection)
        self.counters.connections_total += 1
        if self._empty is not None:
            self._empty.clear()
        if self._sweep is None and self.limits.idle_timeout is not None:
            self._schedule_sweep(connection.loop)

    def closed(self, connection: Connection) -> None:
        """Retire ``connection``: fold its byte counts into the totals and free its slot."""
        if connection not in self.live:
            return
        self.live.discard(connection)
        self.counters.bytes_received += connection.bytes_received
        self.counters.bytes_sent += connection.bytes_sent
        if not self.live and self._empty is not None:
            self._empty.set()
        self.slot_freed()

    def slot_freed(self) -> None:
        """Tell listeners paused at the cap that they may accept again."""
        if not self.at_capacity:
            for callback in self._capacity_waiters:
                callback()

    async def wait_empty(self) -> None:
        """Wait until no connection is open."""
        if not self.live:
            return
        if self._empty is None:
            self._empty = asyncio.Event()
        await self._empty.wait()

    def report_error(self, message: str, exc: BaseException | None = None) -> None:
        """Log an error from application code and count it."""
        self.counters.errors += 1
        log.error("%s", message, exc_info=exc)

    def _schedule_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        timeout = self.limits.idle_timeout
        assert timeout is not None
        self._sweep = loop.call_later(timeout / SWEEPS_PER_TIMEOUT, self._sweep_idle, loop)

    def _sweep_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep = None
        expired = []
        for connection in self.live:
            if connection.active:
                connection.active = False
                connection.idle_sweeps = 0
            else:
                connection.idle_sweeps += 1
                if connection.idle_sweeps >= SWEEPS_PER_TIMEOUT:
                    expired.append(connection)
        for connection in expired:
            self.counters.timeouts += 1
            connection.idle_timed_out()
        if self.live:
            self._schedule_sweep(loop)

    def stop_sweeping(self) -> None:
        """Cancel the idle sweep (the owner is going away)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None


class Connection(asyncio.Protocol):
    """The engine's stream connection: subclasses add a front door's behaviour.

    Subclasses override the ``_on_*`` hooks; they write with :meth:`write` and end with
    :meth:`close` (after flushing) or :meth:`abort`.
    """

    __slots__ = (
        "_closed",
        "_transport_write",
        "active",
        "bytes_received",
        "bytes_sent",
        "idle_sweeps",
        "loop",
        "owner",
        "peer",
        "transport",
        "writing_paused",
    )

    transport: asyncio.Transport

    def __init__(self, owner: ConnectionOwner, peer: Any = None) -> None:
        self.owner = owner
        self.peer = peer
        self.bytes_received = 0
        self.bytes_sent = 0
        self.active = True
        self.idle_sweeps = 0
        self.writing_paused = False
        self._closed = False

    # -- loop-facing (asyncio.Protocol) ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's classes, hence a cast
        self.transport = stream = cast(asyncio.Transport, transport)
        self.loop = asyncio.get_running_loop()
        self._transport_write = stream.write
        limits = self.owner.limits
        stream.set_write_buffer_limits(limits.write_buffer_high, limits.write_buffer_low)
        if self.peer is None:
            self.peer = transport.get_extra_info("peername")
        self.owner.opened(self)
        try:
            self._on_start()
        except Exception as exc:
            self._failed("starting the connection", exc)

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        self.active = True
        try:
            self._on_data(data)
        except Exception as exc:
            self._failed("handling received data", exc)

    def eof_received(self) -> bool | None:
        self.active = True
        try:
            return self._on_eof()
        except Exception as exc:
            self._failed("handling end of input", exc)
            return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if exc is not None:
            self.owner.counters.connection_errors += 1
        self.owner.closed(self)
        try:
            self._on_lost(exc)
        except Exception as error:
            self.owner.report_error(
                f"{type(self).__name__}: error in connection-lost handler", error
            )

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.owner.counters.write_pauses += 1
        self._on_pause_writing()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._on_resume_writing()

    # -- app-facing ----------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for sending; silently dropped once the connection is closing."""
        if self._closed:
            return
        self.bytes_sent += len(data)
        self.active = True
        self._transport_write(data)

    def writelines(self, chunks: Any) -> None:
        """Queue several chunks at once (joined into one send)."""
        self.write(b"".join(chunks))

    def close(self) -> None:
        """Close after everything written so far has been sent."""
        if not self._closed:
            self._closed = True
            self.transport.close()

    def abort(self) -> None:
        """Close now, discarding unsent data."""
        self._closed = True
        self.transport.abort()

    @property
    def closing(self) -> bool:
        """True once close or abort was asked for, or the peer went away."""
        return self._closed

    def write_buffer_size(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return self.transport.get_write_buffer_size()

    def begin_shutdown(self) -> None:
        """The server is shutting down gracefully: finish the exchange in hand, then close.

        The default closes once what was written has been sent; protocols with requests in
        flight override this to close after the current response.
        """
        self.close()

    def idle_timed_out(self) -> None:
        """No traffic for the idle timeout: close (abort if the peer stopped reading)."""
        if self.transport.get_write_buffer_size():
            self.abort()
        else:
            self.close()

    # -- hooks for subclasses ----------------------------------------------------------------

    def _on_start(self) -> None:
        """The connection is up (after any TLS handshake)."""

    def _on_data(self, data: bytes) -> None:
        """Bytes arrived."""

    def _on_eof(self) -> bool | None:
        """The peer half-closed; return True to keep the connection open for writing."""
        return None

    def _on_lost(self, exc: Exception | None) -> None:
        """The connection is gone; ``exc`` is None for a clean close."""

    def _on_pause_writing(self) -> None:
        """The write buffer went above high water: stop producing."""

    def _on_resume_writing(self) -> None:
        """The write buffer drained below low water: produce again."""

    def _failed(self, doing: str, exc: Exception) -> None:
        self.owner.report_error(f"{type(self).__name__}: unhandled error while {doing}", exc)
        self.abort()
