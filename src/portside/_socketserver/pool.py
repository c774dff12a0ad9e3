"""A bounded pool of worker threads for :class:`~portside.socketserver.ThreadPoolMixIn`.

At most ``max_workers`` threads exist; they start on demand (no thread is started while one
sits idle) and are reused for request after request. Work beyond them waits in a FIFO queue,
so connections past the bound wait their turn instead of each costing a thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["WorkerPool"]

_STOP = object()


class WorkerPool:
    """Runs submitted calls on at most ``max_workers`` reusable threads, in order."""

    def __init__(self, max_workers: int, *, name: str, daemon: bool) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._name = name
        self._daemon = daemon
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def threads(self) -> int:
        """How many worker threads exist."""
        return len(self._threads)

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        """Queue ``fn(*args)``; start a worker if none is idle and the bound allows."""
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        self._queue.put((fn, args))
        if self._idle.acquire(blocking=False):
            return
        with self._lock:
            if len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._name}-{len(self._threads) + 1}",
                    daemon=self._daemon,
                )
                self._threads.append(thread)
                thread.start()

    def _work(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                fn, args = item
                fn(*args)
                self._idle.release()
        finally:  # also when fn raised past its own handling (SystemExit): free the slot
            with self._lock:
                self._threads.remove(threading.current_thread())

    def close(self) -> None:
        """Let every worker finish the work queued so far, then exit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put(_STOP)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the workers to exit (after :meth:`close`); False if ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
            if thread.is_alive():
                return False
        return True
