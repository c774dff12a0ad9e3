"""The loop a socketserver server runs on, in the thread that calls ``serve_forever``.

While serving, the server's socket is watched by the loop; each readiness runs the stdlib
request cycle (``get_request`` -> ``verify_request`` -> ``process_request``) up to
:data:`ACCEPT_BATCH` times, within ``max_connections``, and then ``service_actions``. Nothing
polls: ``shutdown()`` from any thread stops the loop through its wake-up pipe, and
``service_actions`` runs on a ``poll_interval`` timer only when a subclass overrides it.

Stopping (``shutdown``): accepting stops at once; native requests (thread, fork, plain
servers) are drained from the calling thread; requests that live on the loop (green handlers,
TLS in thread mode) are drained by the loop, given ``limits.shutdown_timeout`` to finish, then
aborted, and ``serve_forever`` returns when they are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import threading
from typing import Any

from portside._socketserver.channel import StreamChannel
from portside._socketserver.greensock import ChannelSocket
from portside._socketserver.inflight import InFlight
from portside._socketserver.pool import WorkerPool
from portside._socketserver.waiting import spawn
from portside.config import Limits
from portside.core.connection import SWEEPS_PER_TIMEOUT, ConnectionOwner
from portside.core.listeners import ACCEPT_BACKOFF, ACCEPT_BATCH
from portside.core.loop import new_event_loop
from portside.core.metrics import Statistics

__all__ = ["Runtime", "handler_context"]

log = logging.getLogger("portside")

# After aborting what the graceful deadline left, handlers woken with an error usually end
# within a loop iteration; this bounds the wait for ones stuck in code that never yields.
FORCE_GRACE = 1.0

_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

handler_context = threading.local()
"""``handler_context.server`` is set in a thread while it runs a request of that server."""


class Runtime:
    """A socketserver server's engine side: loop, requests in flight, counters, stopping."""

    def __init__(self, server: Any, limits: Limits, loop_kind: str) -> None:
        self.server = server
        self.limits = limits
        self.loop_kind = loop_kind
        self.owner = ConnectionOwner(limits)
        self.counters = self.owner.counters
        self.inflight = InFlight(limits, self.counters)
        self.inflight.on_free = self._slot_freed
        self._recheck_callback = self._recheck  # one bound method, shared by every channel
        self.inflight.on_green_done = self._recheck_callback
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None
        self.shutdown_request = False
        self.is_shut_down = threading.Event()
        self.threads: list[threading.Thread] = []
        self.pool: WorkerPool | None = None
        self.accept_error: OSError | None = None
        self.fatal: BaseException | None = None
        self._acceptor: _Acceptor | None = None
        self._changed: asyncio.Event | None = None
        self._sweeping: asyncio.TimerHandle | None = None
        self._connecting: set[asyncio.Task[None]] = set()

    # -- the loop --------------------------------------------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The server's loop (made on first use, reused until ``server_close``)."""
        if self.loop is None or self.loop.is_closed():
            self.loop = new_event_loop(self.loop_kind)
        return self.loop

    def in_loop_thread(self) -> bool:
        """True in the thread currently running the server's loop."""
        return self.loop_thread == threading.get_ident()

    def serve_forever(self, poll_interval: float) -> None:
        """``BaseServer.serve_forever``: serve until :meth:`shutdown`."""
        self.is_shut_down.clear()
        loop = self.get_loop()
        self.inflight.end_drain()
        self.loop_thread = threading.get_ident()
        try:
            if not self.shutdown_request:
                self._run(loop, poll_interval)
            fatal, self.fatal = self.fatal, None
            if fatal is not None:
                raise fatal
            self._finish(loop)
        finally:
            self.loop_thread = None
            self.shutdown_request = False
            self.is_shut_down.set()

    def fail(self, exc: BaseException) -> None:
        """A hook raised outside a handler: ``serve_forever`` (or ``handle_request``) raises it."""
        self.fatal = exc
        if self._acceptor is not None and self.loop is not None:
            self.loop.stop()
        else:
            self._recheck()

    def _run(self, loop: asyncio.AbstractEventLoop, poll_interval: float) -> None:
        acceptor = self._acceptor = _Acceptor(self, loop)
        ticker = None
        if _overrides(self.server, "service_actions"):
            ticker = _Ticker(self, loop, poll_interval)
        try:
            acceptor.start()
            if not self.shutdown_request:  # a shutdown() that raced with the start
                loop.run_forever()
        finally:
            self._acceptor = None
            acceptor.stop()
            if ticker is not None:
                ticker.cancel()

    def shutdown(self) -> bool:
        """Ask ``serve_forever`` to stop; True if the caller should wait for it."""
        self.shutdown_request = True
        self.inflight.begin_drain()
        loop = self.loop
        if self.loop_thread is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing to stop
                loop.call_soon_threadsafe(loop.stop)
        inside = self.in_loop_thread() or getattr(handler_context, "server", None) is self.server
        return not inside

    def _finish(self, loop: asyncio.AbstractEventLoop) -> None:
        self.inflight.begin_drain()
        if self._settled():
            return
        loop.run_until_complete(self._drain())

    async def _drain(self) -> None:
        self._cancel_handshakes()
        for connection in list(self.owner.live):
            connection.begin_shutdown()
        deadline = self.limits.shutdown_timeout
        if await self._settle(deadline):
            return
        log.warning(
            "%s: %d request(s) still running after %.1fs; aborting them",
            type(self.server).__name__,
            self.inflight.loop_bound or self.inflight.green_running,
            deadline,
        )
        self.abort_all()
        await self._settle(FORCE_GRACE)

    def abort_all(self) -> None:
        """Abort every loop-side connection (the forced end of a shutdown)."""
        self._cancel_handshakes()
        for connection in list(self.owner.live):
            connection.abort()

    def _cancel_handshakes(self) -> None:
        for task in list(self._connecting):
            task.cancel()

    def _settled(self) -> bool:
        return not (
            self.inflight.green_running
            or self.inflight.loop_bound
            or self.owner.live
            or self._connecting
        )

    async def _settle(self, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        self._changed = changed = asyncio.Event()
        try:
            while not self._settled() and self.fatal is None:
                changed.clear()
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
            return True
        finally:
            self._changed = None

    def _slot_freed(self) -> None:
        loop = self.loop
        if loop is None or self.loop_thread is None:
            return
        if self.in_loop_thread():
            self._recheck()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._recheck)

    def _recheck(self) -> None:
        if self._acceptor is not None:
            self._acceptor.maybe_resume()
        if self._changed is not None:
            self._changed.set()

    # -- one request at a time (handle_request) --------------------------------------------

    def handle_request(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` for one request and serve it; False if none came."""
        loop = self.get_loop()
        self.loop_thread = threading.get_ident()
        try:
            served = loop.run_until_complete(self._one_request(timeout))
        finally:
            self.loop_thread = None
        fatal, self.fatal = self.fatal, None
        if fatal is not None:
            raise fatal
        return served

    async def _one_request(self, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        fd = self.server.fileno()
        ready: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
        served = loop.create_future()

        def serve_one() -> None:
            try:
                self.server._handle_request_noblock()
            except BaseException as exc:
                served.set_exception(exc)
            else:
                served.set_result(None)

        loop.call_soon(serve_one)
        await served
        await self._settle(None)
        return True

    # -- admitting a request ---------------------------------------------------------------

    def admit(self, request: Any, client_address: Any, loop_bound: bool) -> None:
        """Track a stream request, then run the request cycle for it.

        A loop-bound request (green, or TLS in thread mode) first becomes an engine connection
        (after its TLS handshake, if any); the cycle then runs for its green socket.
        """
        if not loop_bound:
            self.inflight.add(request)
            self.ensure_sweeping()
            self.server._portside_cycle(request, client_address)
            return
        loop = asyncio.get_running_loop()
        family = request.family
        if family in (socket.AF_INET, socket.AF_INET6):
            # as the engine's listeners do: answers go out at once, not after the next ACK
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        channel = StreamChannel(self.owner, client_address)
        green = ChannelSocket(channel, self, family, request.type, request.proto)
        channel.on_start = lambda: spawn(loop, self._green_cycle, green, client_address)
        channel.on_lost = self._recheck_callback
        self.inflight.add(green)
        task = loop.create_task(self._connect(loop, channel, green, request))
        self._connecting.add(task)
        task.add_done_callback(self._connect_done)

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        self._connecting.discard(task)
        self._recheck()

    def _green_cycle(self, request: ChannelSocket, client_address: Any) -> None:
        """The request cycle of a loop-backed request, on its own handler greenlet.

        On a greenlet, hooks may block on the request as they may under the stdlib (a
        ``verify_request`` that peeks at the first bytes); an exception outside the handler
        ends ``serve_forever``, as the stdlib's does.
        """
        try:
            self.server._portside_cycle(request, client_address)
        except Exception as exc:
            self.finished(request)
            self.fail(exc)

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        channel: StreamChannel,
        green: ChannelSocket,
        sock: socket.socket,
    ) -> None:
        context = self.server.ssl_context
        try:
            if context is None:
                await loop.connect_accepted_socket(lambda: channel, sock)
            else:
                await loop.connect_accepted_socket(
                    lambda: channel,
                    sock,
                    ssl=context,
                    ssl_handshake_timeout=self.limits.handshake_timeout,
                )
        except (OSError, ssl.SSLError, TimeoutError, asyncio.CancelledError) as exc:
            self.counters.connection_errors += 1
            log.debug("connection from %s failed before it started: %r", channel.peer, exc)
            sock.close()
            self.inflight.done(green)

    def finished(self, request: Any) -> None:
        """The request is over: a loop-backed socket really closes now; its slot is freed."""
        if isinstance(request, ChannelSocket):
            request.release()  # first: the loop keeps running while the request counts
        self.inflight.done(request)

    def tls_wrap(self, request: Any) -> Any:
        """Native TLS for plain and forking servers: the handshake in the handler's context.

        Returns the wrapped socket, or None (counted, closed) if the handshake failed.
        """
        context = self.server.ssl_context
        if context is None or not isinstance(request, socket.socket):
            return request
        previous = request.gettimeout()
        try:
            request.settimeout(self.limits.handshake_timeout)
            wrapped = context.wrap_socket(request, server_side=True)
            wrapped.settimeout(previous)
        except (OSError, ssl.SSLError) as exc:
            self.counters.connection_errors += 1
            log.debug("TLS handshake failed: %r", exc)
            request.close()
            return None
        return wrapped

    def ensure_sweeping(self) -> None:
        """Start the native idle sweep if it is not running (serving thread only)."""
        timeout = self.limits.idle_timeout
        if timeout is None or self._sweeping is not None or self.loop is None:
            return
        self._sweeping = self.loop.call_later(timeout / SWEEPS_PER_TIMEOUT, self._sweep)

    def _sweep(self) -> None:
        self._sweeping = None
        if self.inflight.sweep():
            self.ensure_sweeping()

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """``server_close``: end what still lives on the loop, then close the loop."""
        self.inflight.begin_drain()
        loop = self.loop
        if self._sweeping is not None:
            self._sweeping.cancel()
            self._sweeping = None
        self.owner.stop_sweeping()
        if loop is None or loop.is_closed():
            return
        if loop.is_running():
            return  # server_close() from another thread while serving: the loop is not ours
        self.loop_thread = threading.get_ident()
        try:
            if not self._settled():
                self.abort_all()
                loop.run_until_complete(self._settle(FORCE_GRACE))
            loop.run_until_complete(asyncio.sleep(0))  # let closing transports finish
        finally:
            self.loop_thread = None
        loop.close()
        self.loop = None

    def statistics(self) -> Statistics:
        """A snapshot of this server's counters (requests, bytes, errors, timeouts)."""
        counters = self.counters
        live = list(self.owner.live)
        received, sent = self.inflight.byte_totals()
        return counters.snapshot(
            len(self.inflight),
            received + sum(c.bytes_received for c in live),
            sent + sum(c.bytes_sent for c in live),
        )


class _Acceptor:
    """Watches the server's socket while serving, within the limits, backing off on EMFILE."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.loop = loop
        sock = runtime.server.socket
        self.sock = sock
        self.fd = sock.fileno()
        self.stream = sock.type == socket.SOCK_STREAM
        self.saved_timeout = sock.gettimeout()
        self.reading = False
        self.backoff: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self.stream:
            self.sock.setblocking(False)  # a batch of accepts ends at EAGAIN
        self.maybe_resume()

    def stop(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False
        if self.backoff is not None:
            self.backoff.cancel()
            self.backoff = None
        if self.stream and self.sock.fileno() != -1:
            self.sock.settimeout(self.saved_timeout)

    def maybe_resume(self) -> None:
        if self.reading or self.backoff is not None or self.runtime.inflight.full:
            return
        if self.sock.fileno() == -1:
            return
        self.loop.add_reader(self.fd, self._ready)
        self.reading = True

    def _pause(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False

    def _ready(self) -> None:
        runtime = self.runtime
        server = runtime.server
        for _ in range(ACCEPT_BATCH if self.stream else 1):
            if runtime.shutdown_request:
                return
            if runtime.inflight.full:
                runtime.counters.accept_pauses += 1
                self._pause()
                break
            try:
                server._handle_request_noblock()
            except Exception as exc:  # a hook outside process_request raised: as the stdlib,
                runtime.fail(exc)  # serve_forever raises it
                return
            error, runtime.accept_error = runtime.accept_error, None
            if error is None:
                continue
            if error.errno in _RESOURCE_ERRNOS:
                runtime.counters.accept_pauses += 1
                log.warning("accept failed (%s); pausing %.1fs", error.strerror, ACCEPT_BACKOFF)
                self._pause()
                self.backoff = self.loop.call_later(ACCEPT_BACKOFF, self._end_backoff)
            break
        try:
            server.service_actions()
        except Exception as exc:
            runtime.fail(exc)

    def _end_backoff(self) -> None:
        self.backoff = None
        self.maybe_resume()


class _Ticker:
    """Calls an overridden ``service_actions`` every ``poll_interval`` seconds while serving."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.runtime = runtime
        self.loop = loop
        self.interval = interval
        self.handle = loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        self.handle = self.loop.call_later(self.interval, self._tick)
        try:
            self.runtime.server.service_actions()
        except Exception as exc:
            self.runtime.fail(exc)

    def cancel(self) -> None:
        self.handle.cancel()


def _overrides(server: Any, name: str) -> bool:
    from portside._socketserver.servers import BaseServer

    return getattr(type(server), name) is not getattr(BaseServer, name)
