"""Signals for a serving process: the first SIGINT/SIGTERM is graceful, a second forces.

The handlers that were installed before are put back afterwards, so a program that embeds a
portside server keeps its own signal handling once the server is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

__all__ = ["SHUTDOWN_SIGNALS", "shutdown_signals"]

log = logging.getLogger("portside")

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def shutdown_signals(
    loop: asyncio.AbstractEventLoop, graceful: Callable[[], None], force: Callable[[], None]
) -> Iterator[None]:
    """While inside, call ``graceful()`` on the first shutdown signal and ``force()`` on the next.

    Outside the main thread signals cannot be handled, and this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in SHUTDOWN_SIGNALS}
    received = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal received
        received += 1
        if received == 1:
            log.info("received %s: shutting down gracefully (send again to force)", sig.name)
            graceful()
        else:
            log.warning("received %s again: aborting open connections", sig.name)
            force()

    for sig in SHUTDOWN_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in SHUTDOWN_SIGNALS:
            loop.remove_signal_handler(sig)
            handler = previous[sig]
            if handler is not None:
                signal.signal(sig, handler)
