"""Producers and consumers: the write buffer's water marks pause and resume the producer."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from portside.config import Limits
from portside.internet import error
from portside.internet.reactor import Reactor

from .conftest import Recorder, Recording, client_address, listening

CHUNK = 16 * 1024
TOTAL = 2 * 1024 * 1024
LIMITS = Limits(write_buffer_high=64 * 1024, write_buffer_low=16 * 1024)
BOUND = LIMITS.write_buffer_high + CHUNK


async def slow_reader(address: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client with a small receive buffer, so a peer that keeps writing fills its own buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, address)
    return await asyncio.open_connection(sock=sock, limit=CHUNK)


def small_send_buffer(transport: Any) -> None:
    transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


class Streamer(Recorder):
    """A push producer: writes while not paused, until TOTAL bytes are out, then closes."""

    def connectionMade(self) -> None:
        super().connectionMade()
        small_send_buffer(self.transport)
        self.paused = False
        self.sent = 0
        self.pauses = 0
        self.resumes = 0
        self.max_buffer = 0
        self.first_pause: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport.registerProducer(self, True)
        self.produce()

    def produce(self) -> None:
        while not self.paused and self.sent < TOTAL:
            self.transport.write(b"p" * CHUNK)
            self.sent += CHUNK
            self.max_buffer = max(self.max_buffer, self.transport.write_buffer_size())
        if self.sent >= TOTAL:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1
        if not self.first_pause.done():
            self.first_pause.set_result(None)

    def resumeProducing(self) -> None:
        self.paused = False
        self.resumes += 1
        self.transport.loop.call_soon(self.produce)

    def stopProducing(self) -> None:
        self.paused = True


def test_push_producer_is_paused_at_high_water_while_the_client_does_not_read(run: Any) -> None:
    async def main() -> None:
        factory = Recording.forProtocol(Streamer)
        async with listening(Reactor(limits=LIMITS), factory) as port:
            reader, writer = await slow_reader(client_address(port))
            server = await factory.built.get()
            await server.first_pause
            for _ in range(20):  # give a misbehaving transport every chance to grow the buffer
                await asyncio.sleep(0)
            assert server.paused and server.sent < TOTAL
            assert server.transport.write_buffer_size() <= BOUND
            received = len(await reader.read())  # now read everything
            assert received == TOTAL
            assert server.max_buffer <= BOUND
            assert server.resumes >= 1 and server.pauses >= server.resumes
            assert (await server.lost).check(error.ConnectionDone)
            writer.close()

    run(main())


class Puller(Recorder):
    """A pull producer: one chunk per resumeProducing call, until TOTAL bytes are out."""

    def connectionMade(self) -> None:
        super().connectionMade()
        small_send_buffer(self.transport)
        self.sent = 0
        self.calls = 0
        self.max_buffer = 0
        self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        self.calls += 1
        self.max_buffer = max(self.max_buffer, self.transport.write_buffer_size())
        if self.sent >= TOTAL:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            return
        self.transport.write(b"q" * CHUNK)
        self.sent += CHUNK

    def stopProducing(self) -> None:
        pass


def test_pull_producer_is_asked_for_each_chunk_only_while_the_buffer_has_room(run: Any) -> None:
    async def main() -> None:
        factory = Recording.forProtocol(Puller)
        async with listening(Reactor(limits=LIMITS), factory) as port:
            reader, writer = await slow_reader(client_address(port))
            server = await factory.built.get()
            assert len(await reader.read()) == TOTAL
            assert server.calls == TOTAL // CHUNK + 1
            assert server.max_buffer <= LIMITS.write_buffer_high
            assert server.transport.owner.counters.write_pauses >= 1
            writer.close()

    run(main())


class Idle:
    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class Lingering(Recorder):
    """Registers a producer, sends "before", and asks to close; finishes when told "go"."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.registerProducer(Idle(), True)
        with pytest.raises(RuntimeError, match="never unregistered"):
            self.transport.registerProducer(Idle(), True)
        self.transport.write(b"before|")
        self.transport.loseConnection()
        self.still_open = not self.transport.closing

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        self.transport.write(b"after")
        self.transport.unregisterProducer()


def test_lose_connection_waits_for_unregister_producer(run: Any) -> None:
    async def main() -> None:
        factory = Recording.forProtocol(Lingering)
        async with listening(Reactor(), factory) as port:
            reader, writer = await asyncio.open_connection(*client_address(port))
            server = await factory.built.get()
            assert await reader.readexactly(7) == b"before|"
            assert server.still_open and server.transport.disconnecting
            assert not server.lost.done()
            writer.write(b"go")
            assert await reader.read() == b"after"
            assert (await server.lost).check(error.ConnectionDone)
            writer.close()

    run(main())


class Registering(Recorder):
    """Registers a producer on a connection that is already closing: it is stopped at once."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.stopped: list[str] = []
        self.transport.abortConnection()
        producer = Idle()
        producer.stopProducing = lambda: self.stopped.append("stop")  # type: ignore[method-assign]
        self.transport.registerProducer(producer, True)


def test_register_producer_on_a_closing_connection_stops_it(run: Any) -> None:
    async def main() -> None:
        factory = Recording.forProtocol(Registering)
        async with listening(Reactor(), factory) as port:
            _reader, writer = await asyncio.open_connection(*client_address(port))
            server = await factory.built.get()
            assert (await server.lost).check(error.ConnectionAborted)
            assert server.stopped == ["stop"]
            writer.close()

    run(main())
