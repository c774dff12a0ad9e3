"""The stream requests a server has accepted and not finished, and its running green handlers.

It answers the questions the serving loop asks: may another connection be accepted
(``max_connections``)? which native requests have been idle for ``idle_timeout``? which must
be drained or forced at shutdown? is everything done? Requests are added in the serving thread
and finished in whichever thread or greenlet ran them, so the bookkeeping is under a lock.
Green connections are also engine connections: their idle sweep, drain and byte counts are
the engine's (:class:`~portside.core.connection.ConnectionOwner`); only their capacity slot
lives here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from portside._socketserver.greensock import ChannelSocket
from portside._socketserver.native import RequestSocket, force_close
from portside.config import Limits
from portside.core.connection import SWEEPS_PER_TIMEOUT
from portside.core.metrics import Counters

__all__ = ["InFlight"]


class InFlight:
    """Requests in flight: capacity, native idle sweep, drain, force, and waiting for the end."""

    def __init__(self, limits: Limits, counters: Counters) -> None:
        self.limits = limits
        self.counters = counters
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # request -> [traffic seen at the last sweep, sweeps without traffic since]
        self._requests: dict[Any, list[int]] = {}
        self._draining = False
        self.green_running = 0
        self.on_free: Callable[[], None] | None = None
        self.on_green_done: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._requests)

    @property
    def full(self) -> bool:
        """True when ``max_connections`` requests are in flight."""
        cap = self.limits.max_connections
        return cap is not None and len(self._requests) >= cap

    def add(self, request: Any) -> None:
        """A stream request was accepted."""
        with self._lock:
            native = isinstance(request, RequestSocket)
            self._requests[request] = [request.traffic, 0] if native else _NOT_SWEPT
            if not isinstance(request, ChannelSocket):  # an engine connection counts itself
                self.counters.connections_total += 1
            draining = self._draining
        if draining and isinstance(request, RequestSocket):
            request.begin_drain()

    def done(self, request: Any) -> None:
        """``request`` is finished (closed); a no-op for one not tracked or already done."""
        with self._lock:
            if self._requests.pop(request, None) is None:
                return
            if isinstance(request, RequestSocket):
                self.counters.bytes_received += request.bytes_received
                self.counters.bytes_sent += request.bytes_sent
            self._changed.notify_all()
        on_free = self.on_free
        if on_free is not None:
            on_free()

    @property
    def loop_bound(self) -> int:
        """Requests whose socket lives on the server's loop (they need it running to finish)."""
        with self._lock:
            return sum(isinstance(r, ChannelSocket) for r in self._requests)

    def byte_totals(self) -> tuple[int, int]:
        """Bytes received and sent: the totals so far plus native requests still open."""
        with self._lock:
            natives = [r for r in self._requests if isinstance(r, RequestSocket)]
            received = self.counters.bytes_received + sum(r.bytes_received for r in natives)
            sent = self.counters.bytes_sent + sum(r.bytes_sent for r in natives)
        return received, sent

    # -- green handlers (loop thread only) -------------------------------------------------

    def green_started(self) -> None:
        """A green handler began."""
        self.green_running += 1

    def green_finished(self) -> None:
        """A green handler ended."""
        self.green_running -= 1
        if not self.green_running and self.on_green_done is not None:
            self.on_green_done()

    # -- native requests: idle sweep, drain, force -----------------------------------------

    def sweep(self) -> bool:
        """One idle sweep of native requests; True while any remain to sweep."""
        expired = []
        with self._lock:
            for request, state in self._requests.items():
                if not isinstance(request, RequestSocket):
                    continue
                traffic = request.traffic
                if traffic != state[0]:
                    state[0], state[1] = traffic, 0
                    continue
                state[1] += 1
                if state[1] == SWEEPS_PER_TIMEOUT:
                    expired.append(request)
            remaining = any(isinstance(r, RequestSocket) for r in self._requests)
        for request in expired:
            self.counters.timeouts += 1
            force_close(request)
        return remaining

    def begin_drain(self) -> None:
        """Shut down gracefully: native requests end at their next exchange boundary."""
        with self._lock:
            self._draining = True
            natives = [r for r in self._requests if isinstance(r, RequestSocket)]
        for request in natives:
            request.begin_drain()

    def end_drain(self) -> None:
        """Serving again (``serve_forever`` after ``shutdown``): new requests are not drained."""
        with self._lock:
            self._draining = False

    def force(self) -> None:
        """Stop the traffic of every native request so blocked handlers return."""
        with self._lock:
            natives = [r for r in self._requests if isinstance(r, RequestSocket)]
        for request in natives:
            force_close(request)

    def wait_empty(self, timeout: float | None) -> bool:
        """Wait (from any thread but the ones serving) until no request is in flight."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._requests:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True


_NOT_SWEPT: list[int] = []  # the engine sweeps loop-backed requests; others keep no state
