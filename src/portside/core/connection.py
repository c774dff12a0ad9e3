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
from collections.abc import Callable
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
    A connection counts against ``max_connections`` from the moment it is accepted: while
    it waits for its transport (and its TLS handshake) it sits in :attr:`pending`, then
    ``connection_made`` moves it to :attr:`live`.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.counters = Counters()
        self.live: set[Connection] = set()
        self.pending: set[Connection] = set()
        self._capacity_waiters: list[Callable[[], None]] = []
        self._empty: asyncio.Event | None = None
        self._sweep: asyncio.TimerHandle | None = None

    @property
    def at_capacity(self) -> bool:
        """True when no further connection may be accepted right now."""
        cap = self.limits.max_connections
        return cap is not None and len(self.live) + len(self.pending) >= cap

    def on_capacity(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the count of connections drops below ``max_connections``."""
        self._capacity_waiters.append(callback)

    def remove_on_capacity(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` (its listener closed)."""
        if callback in self._capacity_waiters:
            self._capacity_waiters.remove(callback)

    def admitting(self, connection: Connection) -> None:
        """Count ``connection`` (accepted, waiting for its transport) against the cap."""
        self.pending.add(connection)

    def admission_failed(self, connection: Connection) -> None:
        """``connection`` never started (its handshake failed or was cancelled): free its slot."""
        if connection in self.pending:
            self.pending.discard(connection)
            self.slot_freed()

    def opened(self, connection: Connection) -> None:
        """Admit ``connection`` to the live set (called from ``connection_made``)."""
        self.pending.discard(connection)
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
        """One connection fewer: wake the listeners if that took the count just below the cap.

        Counts move one at a time, so a listener that paused at the cap (count >= cap) is
        woken exactly when the count reaches ``cap - 1``; below that nobody is paused.
        """
        cap = self.limits.max_connections
        if cap is not None and len(self.live) + len(self.pending) == cap - 1:
            for callback in list(self._capacity_waiters):
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

    def sweep_idle(self) -> None:
        """One pass of the idle sweep; the owner runs it SWEEPS_PER_TIMEOUT times per timeout.

        A connection whose byte counts moved since the last pass starts a new quiet spell; one
        that stays quiet for SWEEPS_PER_TIMEOUT passes in a row is closed (counted in
        ``timeouts``). Comparing counts keeps the per-chunk hot path free of bookkeeping.
        """
        expired = []
        for connection in self.live:
            traffic = connection.bytes_received + connection.bytes_sent
            if traffic != connection.swept_traffic:
                connection.swept_traffic = traffic
                connection.idle_sweeps = 0
            else:
                connection.idle_sweeps += 1
                if connection.idle_sweeps >= SWEEPS_PER_TIMEOUT:
                    expired.append(connection)
        for connection in expired:
            self.counters.timeouts += 1
            try:
                connection.idle_timed_out()
            except Exception as exc:
                self.report_error(f"{type(connection).__name__}: error in idle timeout", exc)
                connection.abort()

    def _schedule_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        timeout = self.limits.idle_timeout
        assert timeout is not None
        self._sweep = loop.call_later(timeout / SWEEPS_PER_TIMEOUT, self._on_sweep, loop)

    def _on_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep = None
        self.sweep_idle()
        if self.live:  # with nothing open the timer stops; the next connection restarts it
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
        "_resuming",
        "_transport_write",
        "bytes_received",
        "bytes_sent",
        "idle_sweeps",
        "loop",
        "owner",
        "peer",
        "swept_traffic",
        "transport",
        "writing_paused",
    )

    transport: asyncio.Transport

    def __init__(self, owner: ConnectionOwner, peer: Any = None) -> None:
        self.owner = owner
        self.peer = peer
        self.bytes_received = 0
        self.bytes_sent = 0
        self.swept_traffic = -1  # the first sweep sees "new traffic" and starts the count
        self.idle_sweeps = 0
        self.writing_paused = False
        self._closed = False
        self._resuming = False

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
        try:
            self._on_data(data)
        except Exception as exc:
            self._failed("handling received data", exc)

    def eof_received(self) -> bool | None:
        self.idle_sweeps = 0  # an end of input is traffic too
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
        try:
            self._on_pause_writing()
        except Exception as exc:
            self._failed("pausing its producer", exc)

    def resume_writing(self) -> None:
        # asyncio's socket transport calls resume_writing from its write path and, when its
        # buffer has just emptied, delivers connection_lost twice if the protocol closes from
        # there (CPython 3.11-3.13): close() and abort() called meanwhile wait a loop turn.
        self.writing_paused = False
        self._resuming = True
        try:
            self._on_resume_writing()
        except Exception as exc:
            self._failed("resuming its producer", exc)
        finally:
            self._resuming = False

    # -- app-facing ----------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for sending; silently dropped once the connection is closing."""
        if self._closed:
            return
        self.bytes_sent += len(data)
        self._transport_write(data)

    def writelines(self, chunks: Any) -> None:
        """Queue several chunks at once (joined into one send)."""
        self.write(b"".join(chunks))

    def close(self) -> None:
        """Close after everything written so far has been sent."""
        if not self._closed:
            self._closed = True
            if self._resuming:
                self.loop.call_soon(self.transport.close)
            else:
                self.transport.close()

    def abort(self) -> None:
        """Close now, discarding unsent data."""
        self._closed = True
        if self._resuming:
            self.loop.call_soon(self.transport.abort)
        else:
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
