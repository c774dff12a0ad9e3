"""Limits over real sockets: connection cap, accept back-off, idle timeout, write-buffer marks."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from typing import Any

import pytest

from portside.config import Limits
from portside.core import Connection, ConnectionOwner, Handlers, Server
from portside.core.listeners import ACCEPT_BACKOFF, BoundSocket, StreamListener

from .support import Echo, Events, echo_handlers, echo_roundtrip, eventually, open_client


def test_cap_stops_accepting_and_resumes_below_it(run: Any) -> None:
    async def main() -> None:
        limits = Limits(max_connections=3)
        async with Server(echo_handlers(), "tcp:0:interface=127.0.0.1", limits=limits) as s:
            clients = [await open_client(s.addresses[0]) for _ in range(5)]  # all connect (backlog)
            for _, writer in clients:
                writer.write(b"x")
            reads = [asyncio.ensure_future(reader.readexactly(1)) for reader, _ in clients]
            closed: set[int] = set()

            async def served_count_becomes(count: int) -> None:
                while sum(t.done() for t in reads) < count:
                    waiting = [t for t in reads if not t.done()]
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                waiting = [t for t in reads if not t.done()]
                if waiting:
                    done, _ = await asyncio.wait(waiting, timeout=0.1)
                    assert not done, "a client beyond the cap was served"
                assert sum(t.done() for t in reads) == count
                assert all(t.result() == b"x" for t in reads if t.done())
                assert len(s.owner.live) == min(count - len(closed), 3)

            await served_count_becomes(3)
            assert s.statistics().accept_pauses >= 1
            for count in (4, 5):
                index = next(i for i, t in enumerate(reads) if t.done() and i not in closed)
                clients[index][1].close()
                closed.add(index)
                await served_count_becomes(count)
            for _, writer in clients:
                writer.close()
            assert s.statistics().connections_total == 5

    run(main())


class FlakySocket(socket.socket):
    """A listening socket whose next accept() calls fail with the given errnos."""

    failures: list[int]

    def accept(self) -> tuple[socket.socket, Any]:
        if self.failures:
            code = self.failures.pop(0)
            raise OSError(code, os.strerror(code))
        return super().accept()


def flaky_listener(owner: ConnectionOwner, failures: list[int]) -> StreamListener:
    sock = FlakySocket(socket.AF_INET, socket.SOCK_STREAM)
    sock.failures = failures
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    return StreamListener(BoundSocket("tcp:flaky", sock), owner, lambda peer: Echo(owner, peer))


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
def test_accept_backs_off_when_out_of_resources(
    run: Any, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        owner = ConnectionOwner()
        listener = flaky_listener(owner, [code, code])
        loop = asyncio.get_running_loop()
        listener.start(loop)
        try:
            started = loop.time()
            assert await echo_roundtrip(listener.bound.address) == b"ping"
            assert loop.time() - started >= 2 * ACCEPT_BACKOFF * 0.9
            assert owner.counters.accept_pauses == 2
            assert owner.counters.errors == 0
        finally:
            listener.close()

    with caplog.at_level(logging.WARNING, "portside"):
        run(main())
    warnings = [r for r in caplog.records if "accept failed" in r.getMessage()]
    assert len(warnings) == 2 and warnings[0].levelno == logging.WARNING


def test_unexpected_accept_error_is_reported_and_backed_off(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        owner = ConnectionOwner()
        listener = flaky_listener(owner, [errno.EINVAL])
        listener.start(asyncio.get_running_loop())
        try:
            assert await echo_roundtrip(listener.bound.address) == b"ping"
            assert (owner.counters.errors, owner.counters.accept_pauses) == (1, 1)
        finally:
            listener.close()

    with caplog.at_level(logging.ERROR, "portside"):
        run(main())
    assert any("accept failed" in r.getMessage() for r in caplog.records)


def test_peer_gone_before_accept_is_skipped(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner()
        listener = flaky_listener(owner, [errno.ECONNABORTED])
        listener.start(asyncio.get_running_loop())
        try:
            assert await echo_roundtrip(listener.bound.address) == b"ping"
            assert owner.counters.accept_pauses == 0
        finally:
            listener.close()

    run(main())


def test_listener_close_cancels_backoff_and_leaves_the_owner(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner()
        listener = flaky_listener(owner, [errno.EMFILE])
        listener.start(asyncio.get_running_loop())
        with socket.create_connection(listener.bound.address):
            await eventually(lambda: owner.counters.accept_pauses == 1)
            listener.close()
            listener.close()
            assert owner._capacity_waiters == []
            await asyncio.sleep(ACCEPT_BACKOFF * 1.5)  # the cancelled back-off must not fire
            assert not owner.live and not owner.pending

    run(main())


def test_idle_connections_are_closed(run: Any) -> None:
    timeout = 0.2

    async def main() -> None:
        events = Events()
        limits = Limits(idle_timeout=timeout)
        async with Server(echo_handlers(events), "tcp:0:interface=127.0.0.1", limits=limits) as s:
            loop = asyncio.get_running_loop()
            silent_reader, silent = await open_client(s.addresses[0])
            await events.started.get()
            started = loop.time()
            chatty_reader, chatty = await open_client(s.addresses[0])
            await events.started.get()
            while loop.time() - started < 2 * timeout:
                chatty.write(b"!")
                assert await chatty_reader.readexactly(1) == b"!"
                await asyncio.sleep(timeout / 5)
            assert await silent_reader.read() == b""
            _, exc = await events.lost.get()
            assert exc is None
            assert timeout <= loop.time() - started
            chatty.write(b"?")
            assert await chatty_reader.readexactly(1) == b"?", "a busy connection timed out"
            assert s.statistics().timeouts == 1
            silent.close()
            chatty.close()

    run(main())


def test_idle_close_happens_between_one_and_one_and_a_quarter_timeouts(run: Any) -> None:
    timeout = 0.4

    async def main() -> None:
        events = Events()
        limits = Limits(idle_timeout=timeout)
        async with Server(echo_handlers(events), "tcp:0:interface=127.0.0.1", limits=limits) as s:
            loop = asyncio.get_running_loop()
            reader, writer = await open_client(s.addresses[0])
            await events.started.get()
            await asyncio.sleep(timeout / 3)  # traffic in the middle of a sweep interval
            writer.write(b"x")
            await reader.readexactly(1)
            last = loop.time()
            assert await reader.read() == b""
            idle = loop.time() - last
            assert timeout * 0.95 <= idle <= timeout * 1.25 + 0.1
            writer.close()

    run(main())


def test_idle_sweep_stops_with_the_last_connection_and_restarts(run: Any) -> None:
    async def main() -> None:
        events = Events()
        limits = Limits(idle_timeout=0.2)
        async with Server(echo_handlers(events), "tcp:0:interface=127.0.0.1", limits=limits) as s:
            assert s.owner._sweep is None
            assert await echo_roundtrip(s.addresses[0]) == b"ping"
            await events.lost.get()
            await eventually(lambda: s.owner._sweep is None)
            reader, writer = await open_client(s.addresses[0])
            await events.started.get()
            assert s.owner._sweep is not None
            assert await reader.read() == b""  # and it still times out
            assert s.statistics().timeouts == 1
            writer.close()

    run(main())


class Flood(Connection):
    """Writes CHUNK after CHUNK while the transport lets it; stops when paused."""

    CHUNK = 16 * 1024
    TOTAL = 16 * 1024 * 1024

    def __init__(self, owner: ConnectionOwner, peer: Any) -> None:
        super().__init__(owner, peer)
        self.queued = 0
        self.largest_buffer = 0
        self.paused: asyncio.Future[None] | None = None

    def _on_start(self) -> None:
        self.paused = self.loop.create_future()
        self._produce()

    def _produce(self) -> None:
        chunk = b"x" * self.CHUNK
        while not self.writing_paused and self.queued < self.TOTAL:
            self.write(chunk)
            self.queued += len(chunk)
            self.largest_buffer = max(self.largest_buffer, self.write_buffer_size())
        if self.queued >= self.TOTAL:
            self.close()

    def _on_pause_writing(self) -> None:
        assert self.paused is not None
        if not self.paused.done():
            self.paused.set_result(None)

    def _on_resume_writing(self) -> None:
        self._produce()


def test_write_buffer_is_bounded_for_a_client_that_never_reads(run: Any) -> None:
    async def main() -> None:
        events = Events()
        handlers = echo_handlers(events, cls=Flood)
        async with Server(handlers, "tcp:0:interface=127.0.0.1") as server:
            high = server.limits.write_buffer_high
            reader, writer = await open_client(server.addresses[0])
            flood = await events.started.get()
            assert isinstance(flood, Flood) and flood.paused is not None
            await flood.paused
            queued = flood.queued
            assert queued < Flood.TOTAL
            assert flood.transport.get_write_buffer_size() <= high + Flood.CHUNK
            await asyncio.sleep(0.05)
            assert flood.queued == queued, "the producer kept writing while paused"
            assert server.statistics().write_pauses == 1
            received = 0
            while chunk := await reader.read(1 << 20):
                received += len(chunk)
            assert received == Flood.TOTAL
            assert flood.largest_buffer <= high + Flood.CHUNK
            assert server.statistics().write_pauses > 1
            writer.close()

    run(main())


def test_idle_timeout_aborts_a_connection_whose_peer_stopped_reading(run: Any) -> None:
    async def main() -> None:
        events = Events()
        handlers = Handlers(stream=echo_handlers(events, cls=Flood).stream)
        limits = Limits(idle_timeout=0.2)
        async with Server(handlers, "tcp:0:interface=127.0.0.1", limits=limits) as server:
            _, writer = await open_client(server.addresses[0])
            flood = await events.started.get()
            assert isinstance(flood, Flood) and flood.paused is not None
            await flood.paused
            await events.lost.get()
            assert flood.transport.get_write_buffer_size() == 0
            assert server.statistics().timeouts == 1
            writer.close()

    run(main())


def test_a_start_up_cancelled_before_it_ran_releases_its_socket_and_slot(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(Limits(max_connections=1))
        loop = asyncio.get_running_loop()
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setblocking(False)
        made: list[Echo] = []

        def make(peer: Any) -> Echo:
            if not made:  # cancel the first start-up before its task takes its first step
                loop.call_soon(listener.cancel_handshakes)
            made.append(Echo(owner, peer))
            return made[-1]

        listener = StreamListener(BoundSocket("tcp:test", sock), owner, make)
        listener.start(loop)
        try:
            reader, writer = await open_client(listener.bound.address)
            assert await reader.read() == b"", "the cancelled connection was not closed"
            writer.close()
            await listener.wait_handshakes()
            assert not owner.pending and not owner.at_capacity
            assert await echo_roundtrip(listener.bound.address) == b"ping"
        finally:
            listener.close()

    run(main())
