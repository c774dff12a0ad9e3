"""How a request is run: in its own thread, a pooled thread, a child process, or a greenlet.

Each mix-in overrides ``process_request`` (and ``server_close`` to wait for what it started),
as the stdlib's do; it goes first in the bases: ``class S(ThreadingMixIn, TCPServer)``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from portside._socketserver.pool import WorkerPool
from portside._socketserver.serving import handler_context
from portside._socketserver.waiting import current_handler, spawn

__all__ = ["ForkingMixIn", "GreenMixIn", "ThreadPoolMixIn", "ThreadingMixIn"]

# ThreadPoolMixIn.max_workers: every connection holds a worker for its whole life, so the
# bound is the number of concurrent clients. Apache httpd's default MaxRequestWorkers is 150
# (256 for prefork); 128 threads cost about 1 MiB of RSS with the default thread stack, which
# the kernel only commits as it is touched.
MAX_WORKERS = 128


class ThreadingMixIn:
    """Run each request in a new thread (``daemon_threads``, ``block_on_close`` as stdlib).

    With ``block_on_close`` (the default), ``server_close`` waits for the threads: requests
    between exchanges end at once (the server is draining), the others get
    ``limits.shutdown_timeout`` seconds, then their sockets are shut down and the threads
    joined. With an ``ssl_context`` the TLS handshake runs on the event loop and the
    request socket is a loop-backed socket (see :mod:`portside.socketserver`).
    """

    daemon_threads = False
    block_on_close = True
    _portside: Any

    def _portside_loop_bound(self) -> bool:
        return getattr(self, "ssl_context", None) is not None

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """The body of a request thread: ``finish_request``, ``handle_error``, shutdown."""
        server: Any = self
        try:
            server.finish_request(request, client_address)
        except Exception:
            server._portside_failed(request, client_address)
        finally:
            server.shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread to serve the request."""
        thread = threading.Thread(
            target=process_request_thread, args=(self, request, client_address)
        )
        thread.daemon = self.daemon_threads
        if not thread.daemon and self.block_on_close:
            _keep(self._portside.threads, thread)
        thread.start()

    def server_close(self) -> None:
        """Close the server, then (``block_on_close``) wait for the request threads."""
        super().server_close()  # type: ignore[misc]
        runtime = self._portside
        pool = runtime.pool
        if pool is not None:
            pool.close()
        if not self.block_on_close:
            return
        if not runtime.inflight.wait_empty(runtime.limits.shutdown_timeout):
            runtime.inflight.force()
        if pool is not None:
            pool.join()
        threads, runtime.threads = runtime.threads, []
        for thread in threads:
            thread.join()


def process_request_thread(server: Any, request: Any, client_address: Any) -> None:
    """A request thread's target: the server's ``process_request_thread``, then bookkeeping.

    Named as the stdlib's target is, so request threads get the same default names.
    """
    handler_context.server = server
    try:
        server.process_request_thread(request, client_address)
    finally:
        handler_context.server = None
        server._portside.finished(request)


def _keep(threads: list[threading.Thread], thread: threading.Thread) -> None:
    """Remember a thread to join, forgetting finished ones now and then (amortised O(1))."""
    if len(threads) >= 64 and len(threads) & (len(threads) - 1) == 0:
        threads[:] = [t for t in threads if t.is_alive()]
    threads.append(thread)


class ThreadPoolMixIn(ThreadingMixIn):
    """Run requests on a bounded pool of ``max_workers`` reusable threads.

    Connections beyond the bound are accepted and wait, in order, for a free worker; the
    number of threads never exceeds ``max_workers``. ``daemon_threads`` and
    ``block_on_close`` apply to the workers.
    """

    max_workers = MAX_WORKERS

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the request for the next free worker."""
        runtime = self._portside
        if runtime.pool is None:
            runtime.pool = WorkerPool(
                self.max_workers, name=type(self).__name__, daemon=self.daemon_threads
            )
        runtime.pool.submit(process_request_thread, self, request, client_address)


class ForkingMixIn:
    """Run each request in a child process (``max_children``, ``block_on_close`` as stdlib).

    Children are reaped by ``service_actions`` (called every ``poll_interval`` while
    serving) and ``handle_timeout``; at most ``max_children`` run at once.
    """

    timeout: float | None = 300
    active_children: set[int] | None = None
    max_children = 40
    block_on_close = True
    _portside: Any

    def collect_children(self, *, blocking: bool = False) -> None:
        """Reap exited children; first wait while ``max_children`` are running."""
        if self.active_children is None:
            return
        while len(self.active_children) >= self.max_children:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                self.active_children.clear()
                break
            self.active_children.discard(pid)
        flags = 0 if blocking else os.WNOHANG
        for pid in list(self.active_children):
            try:
                reaped, _ = os.waitpid(pid, flags)
            except ChildProcessError:
                self.active_children.discard(pid)
                continue
            if reaped:
                self.active_children.discard(pid)

    def handle_timeout(self) -> None:
        """No request came: reap children."""
        self.collect_children()

    def service_actions(self) -> None:
        """Reap children (called while serving)."""
        self.collect_children()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Fork; the child serves the request and exits, the parent closes its copy."""
        server: Any = self
        pid = os.fork()
        if pid:
            if self.active_children is None:
                self.active_children = set()
            self.active_children.add(pid)
            server.close_request(request)
            self._portside.finished(request)
            return
        status = 1
        try:
            wrapped = self._portside.tls_wrap(request)
            if wrapped is not None:
                request = wrapped
                server.finish_request(request, client_address)
                status = 0
        except Exception:
            server.handle_error(request, client_address)
        finally:
            try:
                server.shutdown_request(request)
            finally:
                os._exit(status)

    def server_close(self) -> None:
        """Close the server, then reap children (waiting for them if ``block_on_close``)."""
        super().server_close()  # type: ignore[misc]
        self.collect_children(blocking=self.block_on_close)


class GreenMixIn:
    """Run each request's handler on a greenlet of the server's event loop.

    ``self.request`` is then a socket-like object whose blocking calls (``recv``,
    ``sendall``, ``makefile`` reads and writes…) suspend only this handler, so unmodified
    handler code serves thousands of connections without a thread each. Code that blocks
    without going through that socket (``time.sleep``, blocking libraries) blocks the whole
    loop: run it with :func:`portside.socketserver.run_in_thread`.
    """

    _portside: Any
    _portside_green = True

    def _portside_loop_bound(self) -> bool:
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Run the handler on a greenlet: this one, or a new one started at once."""
        inflight = self._portside.inflight
        inflight.green_started()
        if current_handler() is not None:  # the request cycle already runs on a greenlet
            self._portside_green_main(request, client_address)
            return
        try:
            spawn(asyncio.get_running_loop(), self._portside_green_main, request, client_address)
        except BaseException:
            inflight.green_finished()
            raise

    def _portside_green_main(self, request: Any, client_address: Any) -> None:
        server: Any = self
        inflight = self._portside.inflight
        try:
            try:
                server.finish_request(request, client_address)
            except Exception:
                server._portside_failed(request, client_address)
            finally:
                server.shutdown_request(request)
        finally:
            self._portside.finished(request)
            inflight.green_finished()
