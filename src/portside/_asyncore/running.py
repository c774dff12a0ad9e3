"""Where a dispatcher map runs: a private engine loop per thread, or a running asyncio loop.

``asyncore.loop()`` and ``poll()`` block, so they run the map on a private event loop of this
thread (``auto``: uvloop when installed; see :func:`use_loop`): while it is the only map on
that loop, the driver waits on the map's epoll directly (see :mod:`portside._asyncore.driver`);
every map run on the thread and not yet empty shares the loop. The loop and the map's driver
are kept between ``loop(count=N)`` calls and closed when the map empties (or by
``close_all``). Inside an asyncio program, :func:`attach` and :func:`loop_async` run the map on
the loop that is already running, beside whatever else it serves.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading

from portside._asyncore.driver import MapDriver
from portside._asyncore.shared import DRIVERS, Map
from portside.core.loop import new_event_loop

__all__ = ["Attachment", "attach", "loop_async", "release", "run", "run_once", "use_loop"]


class _Local(threading.local):
    loop: asyncio.AbstractEventLoop | None = None
    blocking = False  # inside loop()/poll() on this thread


_local = _Local()
_kind = os.environ.get("PORTSIDE_LOOP", "auto")
_private: set[asyncio.AbstractEventLoop] = set()  # the loops made here, in any thread


def use_loop(kind: str) -> None:
    """Choose the engine loop (``auto``, ``uvloop`` or ``asyncio``) that ``loop()`` uses; it
    applies to each thread's next private loop (made when none is open, e.g. after its map
    emptied). The default is ``auto``, or the ``PORTSIDE_LOOP`` environment variable.
    """
    global _kind
    new_event_loop(kind).close()  # fail now on an unknown or missing kind
    _kind = kind


def loop_kind() -> str:
    """The engine loop kind ``loop()`` makes its private loops of."""
    return _kind


def _engine_loop() -> asyncio.AbstractEventLoop:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop running in this thread: the blocking API may run its own
    else:
        raise RuntimeError(
            "asyncore.loop() cannot block inside a running event loop; "
            "use 'await portside.asyncore.loop_async()' or portside.asyncore.attach()"
        )
    if _local.loop is None or _local.loop.is_closed():
        _local.loop = new_event_loop(_kind)
        _private.add(_local.loop)
    return _local.loop


def _close_idle(loop: asyncio.AbstractEventLoop | None) -> None:
    """Close a private loop no map uses any more (whichever thread made it)."""
    if loop is None or loop not in _private or loop.is_running():
        return
    if any(d.loop is loop for d in DRIVERS.values()):
        return
    _private.discard(loop)
    if _local.loop is loop:
        _local.loop = None
    loop.close()


def driver_for(map: Map, loop: asyncio.AbstractEventLoop) -> MapDriver:
    """The driver of ``map`` on ``loop``, moving the map off an idle driver on another loop."""
    driver = DRIVERS.get(id(map))
    if driver is not None and driver.loop is not loop:
        if driver.running or driver.waiter is not None:
            raise RuntimeError("this dispatcher map is already being run by another event loop")
        driver.close()
        driver = None
    if driver is None:
        driver = DRIVERS[id(map)] = MapDriver(map, loop)
    return driver


def _enter() -> asyncio.AbstractEventLoop:
    loop = _engine_loop()
    if _local.blocking:
        raise RuntimeError("asyncore.loop() cannot be nested in a handler")
    _local.blocking = True
    return loop


def run_once(map: Map, timeout: float) -> None:
    """One iteration over ``map`` on this thread's engine loop."""
    loop = _enter()
    try:
        driver_for(map, loop).run_once(timeout)
    finally:
        _local.blocking = False
    if not map:
        release(map)


def run(map: Map, timeout: float) -> None:
    """Run ``map`` on this thread's engine loop until it is empty."""
    loop = _enter()
    try:
        driver_for(map, loop).run(timeout)
    finally:
        _local.blocking = False
        if not map:
            release(map)


def release(map: Map) -> None:
    """Forget ``map``'s driver; close this thread's engine loop if nothing else uses it."""
    driver = DRIVERS.get(id(map))
    if driver is not None and not driver.running and driver.waiter is None:
        driver.close()
        _close_idle(driver.loop)
    _close_idle(_local.loop)


class Attachment:
    """A dispatcher map being run by an asyncio loop that is already running.

    :meth:`wait` returns when the map is empty, or raises what would have left ``loop()``
    (``ExitNow``, an exception from a predicate or from ``handle_error``), after which no more
    events are delivered. :meth:`detach` stops running the map; the dispatchers stay open.
    """

    def __init__(self, driver: MapDriver) -> None:
        self._driver = driver

    async def wait(self) -> None:
        """Wait until the map is empty (or the run failed)."""
        waiter = self._driver.waiter
        if waiter is not None:
            await asyncio.shield(waiter)

    def detach(self) -> None:
        """Stop running the map on this loop."""
        driver = self._driver
        waiter, driver.waiter = driver.waiter, None
        if waiter is not None:
            if not waiter.done():
                waiter.cancel()
            elif not waiter.cancelled():
                waiter.exception()  # mark it retrieved: wait() is where it is reported
        driver.close()


def attach(map: Map | None = None, *, timeout: float = 30.0) -> Attachment:
    """Run ``map`` (default: ``asyncore.socket_map``) on the running asyncio loop.

    The dispatchers are served by the same loop as everything else on it (portside servers,
    asyncio tasks) until the map empties or :meth:`Attachment.detach` is called. ``timeout``
    is the idle interval of the full predicate sweep, as in ``loop()``.
    """
    if map is None:
        from portside.asyncore import socket_map

        map = socket_map
    loop = asyncio.get_running_loop()
    driver = driver_for(map, loop)
    if driver.waiter is not None:
        raise RuntimeError("this dispatcher map is already attached to this loop")
    driver.waiter = loop.create_future()
    driver.halted = False
    driver.sweep()
    driver.arm_sweep(timeout)
    driver.flush()
    return Attachment(driver)


async def loop_async(timeout: float = 30.0, map: Map | None = None) -> None:
    """The coroutine form of ``asyncore.loop()``: serve ``map`` on the running loop until it
    is empty; raises what ``loop()`` would raise."""
    attachment = attach(map, timeout=timeout)
    try:
        await attachment.wait()
    finally:
        attachment.detach()


@atexit.register
def _close_at_exit() -> None:
    for driver in list(DRIVERS.values()):
        if not driver.loop.is_running() and driver.waiter is None:
            driver.close()
    for loop in list(_private):
        _close_idle(loop)
