"""Server lifecycle over real sockets: several endpoints, statistics, graceful shutdown, force."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from portside.config import Limits
from portside.core import Connection, ConnectionOwner, Handlers, Server

from .support import Echo, Events, echo_handlers, echo_roundtrip, open_client


def test_several_endpoints_and_statistics(run: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")

    async def main() -> None:
        events = Events()
        server = Server(echo_handlers(events), "tcp:0:interface=127.0.0.1", f"unix:{path}")
        async with server:
            tcp, unix = server.addresses
            assert unix == path
            assert await echo_roundtrip(tcp, b"12345") == b"12345"
            assert await echo_roundtrip(unix, b"abc") == b"abc"
            for _ in range(2):
                await events.lost.get()
            reader, writer = await open_client(tcp)
            writer.write(b"xy")
            await reader.readexactly(2)
            stats = server.statistics()
            assert stats.connections_open == 1
            assert stats.connections_total == 3
            assert (stats.bytes_received, stats.bytes_sent) == (10, 10)
            assert (stats.errors, stats.connection_errors, stats.timeouts) == (0, 0, 0)
            writer.close()

    run(main())


class SlowResponse(Connection):
    """Answers each request in two halves, a moment apart; at shutdown, closes after the answer."""

    def __init__(self, owner: ConnectionOwner, peer: Any) -> None:
        super().__init__(owner, peer)
        self.busy = False
        self.stopping = False

    def _on_data(self, data: bytes) -> None:
        self.busy = True
        self.write(b"first half|")
        self.loop.call_later(0.1, self._finish)

    def _finish(self) -> None:
        self.write(b"second half")
        self.busy = False
        if self.stopping:
            self.close()

    def begin_shutdown(self) -> None:
        self.stopping = True
        if not self.busy:
            self.close()


def test_graceful_shutdown_lets_a_response_in_flight_finish(run: Any) -> None:
    async def main() -> None:
        events = Events()
        stopped: list[str] = []
        handlers = Handlers(
            stream=echo_handlers(events, cls=SlowResponse).stream,
            stopped=lambda: stopped.append("stopped"),
        )
        server = Server(handlers, "tcp:0:interface=127.0.0.1")
        await server.start()
        address = server.addresses[0]
        busy_reader, busy = await open_client(address)
        idle_reader, idle = await open_client(address)
        for _ in range(2):
            await events.started.get()
        busy.write(b"request")
        assert await busy_reader.readexactly(11) == b"first half|"
        shutdown = asyncio.ensure_future(server.shutdown(timeout=5))
        assert await idle_reader.read() == b"", "an idle connection is closed at once"
        assert not shutdown.done()
        assert stopped == ["stopped"], "the listener stops before connections finish"
        with pytest.raises(OSError):
            await open_client(address)
        assert await busy_reader.read() == b"second half"
        await shutdown
        assert server.statistics().connections_open == 0
        assert server.statistics().connection_errors == 0
        busy.close()
        idle.close()

    run(main())


class Stubborn(Echo):
    """Ignores the request to shut down."""

    def begin_shutdown(self) -> None:
        pass


def test_shutdown_aborts_connections_at_the_deadline(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Shutdown starts right after the connection did, while its start-up task may not have
    # resumed yet: cancelling that task once orphaned uvloop's transport (no connection_lost,
    # so the abort at the deadline never finished).
    async def main() -> None:
        events = Events()
        server = Server(echo_handlers(events, cls=Stubborn), "tcp:0:interface=127.0.0.1")
        await server.start()
        reader, writer = await open_client(server.addresses[0])
        await events.started.get()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.shutdown(timeout=0.2)
        # the deadline is a 0.2 s timer; uvloop keeps time in milliseconds, so allow one
        assert 0.199 <= loop.time() - started < 1
        assert not server.owner.live
        try:
            assert await reader.read() == b""
        except ConnectionResetError:
            pass
        writer.close()

    with caplog.at_level(logging.WARNING, "portside"):
        run(main())
    assert any("still open after" in r.getMessage() for r in caplog.records)


def test_force_aborts_during_a_graceful_shutdown(run: Any) -> None:
    async def main() -> None:
        events = Events()
        server = Server(echo_handlers(events, cls=Stubborn), "tcp:0:interface=127.0.0.1")
        await server.start()
        _, writer = await open_client(server.addresses[0])
        await events.started.get()
        shutdown = asyncio.ensure_future(server.shutdown(timeout=30))
        await asyncio.sleep(0)
        server.force()
        await asyncio.wait_for(shutdown, 2)
        assert not server.owner.live
        await server.shutdown()  # a second call returns once the first is done
        writer.close()

    run(main())


def test_serve_forever_returns_after_shutdown(run: Any) -> None:
    async def main() -> None:
        server = Server(echo_handlers(), "tcp:0:interface=127.0.0.1")
        serving = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        assert await echo_roundtrip(server.addresses[0]) == b"ping"
        assert not serving.done()
        await server.shutdown()
        await asyncio.wait_for(serving, 1)

    run(main())


class FailingShutdown(Echo):
    def begin_shutdown(self) -> None:
        raise RuntimeError("no goodbye")


def test_error_in_begin_shutdown_is_reported_and_the_connection_aborted(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        events = Events()
        server = Server(echo_handlers(events, cls=FailingShutdown), "tcp:0:interface=127.0.0.1")
        await server.start()
        _, writer = await open_client(server.addresses[0])
        await events.started.get()
        await asyncio.wait_for(server.shutdown(timeout=30), 2)
        assert server.statistics().errors == 1
        writer.close()

    with caplog.at_level(logging.ERROR, "portside"):
        run(main())
    assert any("begin_shutdown" in r.getMessage() for r in caplog.records)


def test_error_in_stopped_callback_does_not_stop_the_shutdown(run: Any) -> None:
    def stopped() -> None:
        raise RuntimeError("stopFactory failed")

    async def main() -> None:
        handlers = Handlers(stream=echo_handlers().stream, stopped=stopped)
        server = Server(handlers, "tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1")
        await server.start()
        await server.shutdown()
        assert server.statistics().errors == 2
        assert server._done is not None and server._done.is_set()

    run(main())


def test_a_server_cannot_restart(run: Any) -> None:
    async def main() -> None:
        server = Server(echo_handlers(), "tcp:0:interface=127.0.0.1")
        server.bind()
        await server.shutdown()
        with pytest.raises(RuntimeError, match="shut down"):
            await server.start()

    run(main())


def test_start_failure_releases_what_was_started(run: Any) -> None:
    calls: list[str] = []

    def started() -> None:
        calls.append("started")
        if len(calls) == 2:
            raise RuntimeError("second port failed to start")

    async def main() -> None:
        handlers = Handlers(
            stream=echo_handlers().stream, started=started, stopped=lambda: calls.append("stop")
        )
        server = Server(handlers, "tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1")
        with pytest.raises(RuntimeError, match="second port"):
            await server.start()
        assert calls == ["started", "started", "stop", "stop"]
        with pytest.raises(OSError):
            await open_client(server.addresses[0])

    run(main())


def test_refused_and_failing_connection_factories(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Any] = []

    def make(owner: ConnectionOwner, peer: Any) -> Connection | None:
        seen.append(peer)
        if len(seen) == 1:
            return None
        if len(seen) == 2:
            raise RuntimeError("factory broke")
        return Echo(owner, peer)

    async def main() -> None:
        async with Server(Handlers(stream=make), "tcp:0:interface=127.0.0.1") as server:
            for _ in range(2):
                reader, writer = await open_client(server.addresses[0])
                assert await reader.read() == b""
                writer.close()
            assert await echo_roundtrip(server.addresses[0]) == b"ping"
            assert server.statistics().errors == 1
            assert server.statistics().connections_total == 1

    with caplog.at_level(logging.ERROR, "portside"):
        run(main())
    assert seen[0][0] == "127.0.0.1"


def test_limits_are_validated() -> None:
    for bad in (
        {"max_connections": 0},
        {"idle_timeout": 0},
        {"idle_timeout": float("nan")},
        {"write_buffer_low": 10, "write_buffer_high": 5},
        {"write_buffer_low": -1},
        {"handshake_timeout": 0},
        {"handshake_timeout": float("nan")},
        {"shutdown_timeout": -1},
    ):
        with pytest.raises(ValueError):
            Limits(**bad)  # type: ignore[arg-type]
    assert Limits(max_connections=None, idle_timeout=None).max_connections is None


def test_a_server_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="at least one endpoint"):
        Server(echo_handlers())
