"""How handler code blocks on the event loop without blocking it.

A green handler runs on a :class:`HandlerGreenlet` whose parent is the greenlet running the
loop (the *hub*). To wait, it registers a :class:`GreenWaiter` and switches to the hub; the loop
callback that makes progress possible (bytes arrived, buffer drained, timer fired) switches
back. A thread that uses a loop-side object instead has the operation run for it on a
short-lived greenlet in the loop (:func:`call_in_loop`) and waits on a lock for the result.

``greenlet`` is imported lazily: thread, fork and plain servers work without it.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import threading
from collections.abc import Callable
from types import MethodType
from typing import Any, TypeVar

__all__ = [
    "GreenWaiter",
    "call_in_loop",
    "current_handler",
    "greenlet_module",
    "run_in_thread",
    "spawn",
]

T = TypeVar("T")

_HandlerGreenlet: Any = None
getcurrent: Any = None
"""``greenlet.getcurrent`` once a handler greenlet exists (read on the hot paths)."""


def greenlet_module() -> Any:
    """The ``greenlet`` module, or an ImportError that says what needs it."""
    try:
        import greenlet  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - greenlet is installed with the test extra
        raise ImportError(
            "green socketserver handlers need the 'greenlet' package: pip install greenlet"
        ) from exc
    return greenlet


def _handler_class() -> Any:
    global _HandlerGreenlet, getcurrent
    if _HandlerGreenlet is None:
        greenlet = greenlet_module()

        class HandlerGreenlet(greenlet.greenlet):  # type: ignore[misc, name-defined]
            """A greenlet running handler code for a loop; it may wait on that loop."""

            __slots__ = ("loop",)  # no instance dict: one per held connection

            def __init__(self, run: Callable[..., object], hub: Any, loop: Any) -> None:
                super().__init__(run, hub)
                self.loop = loop

        getcurrent = greenlet.getcurrent
        _HandlerGreenlet = HandlerGreenlet
    return _HandlerGreenlet


def current_handler() -> Any:
    """The handler greenlet running now, or None (a thread, or the loop's own greenlet)."""
    if getcurrent is None:
        return None
    current = getcurrent()
    return current if isinstance(current, _HandlerGreenlet) else None


def spawn(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    """Run ``fn(*args)`` on a new handler greenlet of ``loop`` (must be called in its thread).

    Called from the hub, the greenlet starts at once and runs until it first waits; called
    from another handler greenlet, it starts on the next loop iteration.
    """
    handler_class = _handler_class()
    current = getcurrent()
    here = current if isinstance(current, handler_class) else None
    hub = current if here is None else here.parent
    if type(fn) is MethodType:
        # started as a plain function, the greenlet's C stack is one frame shallower: less
        # to copy on every switch and to keep while it waits (144 bytes on CPython 3.11)
        args = (fn.__self__, *args)
        fn = fn.__func__
    glet = handler_class(fn, hub, loop)
    if here is None:
        glet.switch(*args)
    else:
        loop.call_soon(glet.switch, *args)


class GreenWaiter:
    """One wait of the current handler greenlet: :meth:`wait` suspends, :meth:`wake` resumes."""

    __slots__ = ("glet", "hub", "loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        glet = current_handler()
        if glet is None:
            raise RuntimeError(
                "a blocking call was made on the event loop's own greenlet; only green "
                "handlers (or threads) may block on a portside socket"
            )
        self.glet = glet
        self.hub = glet.parent
        self.loop = loop
        self.pending = True

    def wait(self, timeout: float | None) -> bool:
        """Suspend until woken (True) or ``timeout`` seconds pass (False)."""
        if timeout is None:
            try:
                return bool(self.hub.switch())
            finally:
                self.pending = False
        timer = self.loop.call_later(timeout, self._expire)
        try:
            return bool(self.hub.switch())
        finally:
            self.pending = False
            timer.cancel()

    def wake(self) -> None:
        """Resume the waiting greenlet (from the loop's own greenlet: now; otherwise: soon)."""
        if not self.pending:
            return
        self.pending = False
        if getcurrent() is self.hub:
            self.glet.switch(True)
        else:
            self.loop.call_soon(self.glet.switch, True)

    def _expire(self) -> None:
        if self.pending:
            self.pending = False
            self.glet.switch(False)


def call_in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any) -> T:
    """From a thread, run ``fn(*args)`` on a handler greenlet of ``loop`` and return its result.

    ``fn`` may wait (it runs green); this thread blocks until it is done. A closed loop raises
    ``OSError(EBADF)``, as a closed socket would. An exception that is not an ``Exception``
    (``KeyboardInterrupt`` or ``SystemExit`` landing in the loop's thread while ``fn`` runs,
    a ``GreenletExit``) belongs to the loop: it goes on up there, and this thread gets a
    :class:`ConnectionAbortedError` instead.
    """
    done = threading.Lock()
    done.acquire()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, fn(*args)))
        except Exception as exc:
            outcome.append((False, exc))
        except BaseException as exc:
            reason = f"the server's event loop was interrupted ({type(exc).__name__})"
            aborted = ConnectionAbortedError(errno.ECONNABORTED, reason)
            outcome.append((False, aborted))
            raise
        finally:
            done.release()

    try:
        loop.call_soon_threadsafe(spawn, loop, run)
    except RuntimeError:
        raise OSError(errno.EBADF, "the server's event loop is closed") from None
    done.acquire()
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def run_in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call without blocking the loop: ``fn(*args, **kwargs)`` in a thread.

    In a green handler this runs ``fn`` in the loop's default executor and suspends only the
    handler until it returns (or raises). Anywhere else (thread and fork servers, plain
    code) it simply calls ``fn``, so handlers can use it unconditionally.
    """
    glet = current_handler()
    if glet is None:
        return fn(*args, **kwargs)
    loop: asyncio.AbstractEventLoop = glet.loop
    future = loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))
    waiter = GreenWaiter(loop)
    future.add_done_callback(lambda _future: waiter.wake())
    waiter.wait(None)
    return future.result()
