"""Shutdown signals: the first is graceful, the second forces, previous handlers come back."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from portside.core.signals import shutdown_signals
from portside.serving import Server, serve_until_signalled

from .support import Echo, Events, echo_handlers, open_client


def previous_handler(signum: int, frame: Any) -> None:
    raise AssertionError("the previous handler must not run while portside handles signals")


@pytest.fixture
def own_handlers() -> Iterator[None]:
    """Install recognisable SIGINT/SIGTERM handlers for the test, restore the real ones after."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, previous_handler)
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_first_signal_is_graceful_second_forces(run: Any, own_handlers: None) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        calls: list[str] = []
        graceful, forced = asyncio.Event(), asyncio.Event()

        def on_graceful() -> None:
            calls.append("graceful")
            graceful.set()

        def on_force() -> None:
            calls.append("force")
            forced.set()

        with shutdown_signals(loop, on_graceful, on_force):
            assert signal.getsignal(signal.SIGTERM) is not previous_handler
            signal.raise_signal(signal.SIGTERM)
            await graceful.wait()
            os.kill(os.getpid(), signal.SIGINT)
            await forced.wait()
            signal.raise_signal(signal.SIGINT)  # a third is another force
            await asyncio.sleep(0.01)
        return calls

    assert run(main()) == ["graceful", "force", "force"]
    assert signal.getsignal(signal.SIGINT) is previous_handler
    assert signal.getsignal(signal.SIGTERM) is previous_handler


def test_outside_the_main_thread_signals_are_left_alone(run: Any, own_handlers: None) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        entered = threading.Event()

        def in_thread() -> None:
            with shutdown_signals(loop, lambda: None, lambda: None):
                entered.set()

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        assert entered.is_set()
        assert signal.getsignal(signal.SIGINT) is previous_handler

    run(main())


class Stubborn(Echo):
    def begin_shutdown(self) -> None:
        pass


def test_serve_until_signalled(run: Any, own_handlers: None) -> None:
    async def main() -> None:
        events = Events()
        server = Server(echo_handlers(events, cls=Stubborn), "tcp:0:interface=127.0.0.1")
        serving = asyncio.ensure_future(serve_until_signalled(server))
        await asyncio.sleep(0)
        _, writer = await open_client(server.addresses[0])
        await events.started.get()
        signal.raise_signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
        assert not serving.done(), "the stubborn connection should hold the graceful shutdown"
        with pytest.raises(OSError):
            await open_client(server.addresses[0])
        signal.raise_signal(signal.SIGINT)
        await asyncio.wait_for(serving, 2)
        assert not server.owner.live
        writer.close()

    run(main())
    assert signal.getsignal(signal.SIGINT) is previous_handler
