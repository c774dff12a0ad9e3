"""portside.testing.memory: the in-memory transports keep asyncio's rules, and every kind of
application the engine serves can be driven through them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portside.config import Limits
from portside.core import ConnectionOwner, Handlers
from portside.internet import protocol as twisted
from portside.testing import MemoryTransport, connect, connect_datagram


class Collect(asyncio.Protocol):
    """A plain asyncio protocol that records every callback."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.events.append(data)

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        return None

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))


def bare(protocol: asyncio.BaseProtocol) -> MemoryTransport:
    """A MemoryTransport on a bare asyncio protocol (no engine in between)."""
    transport = MemoryTransport(protocol)
    protocol.connection_made(transport)
    return transport


def test_transport_surface(run: Any) -> None:
    async def main() -> None:
        protocol = Collect()
        transport = bare(protocol)
        assert transport.get_extra_info("peername") == ("127.0.0.1", 54321)
        assert transport.get_extra_info("sockname") == ("127.0.0.1", 8000)
        assert transport.get_extra_info("socket") is None
        assert transport.get_extra_info("missing", "default") == "default"
        assert transport.get_protocol() is protocol
        assert transport.can_write_eof()
        assert transport.get_write_buffer_limits() == (16384, 65536)
        with pytest.raises(TypeError):
            transport.write("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        transport.set_write_buffer_limits(low=10)
        assert transport.get_write_buffer_limits() == (10, 40)
        transport.writelines([b"a", b"b"])
        assert transport.value() == b"ab"
        transport.write_eof()
        assert transport.eof_written
        with pytest.raises(RuntimeError):
            transport.write(b"c")
        assert transport.take() == b"ab" and transport.take() == b""

    run(main())


def test_connection_lost_comes_later_and_once(run: Any) -> None:
    async def main() -> None:
        protocol = Collect()
        transport = bare(protocol)
        transport.close()
        transport.close()
        transport.abort()
        assert protocol.events == ["made"], "connection_lost must not run inside close()"
        assert transport.is_closing() and not transport.lost
        assert await transport.wait_lost() is None
        assert protocol.events == ["made", ("lost", None)]
        transport.feed(b"ignored")
        transport.write(b"dropped")
        assert transport.take() == b""

    run(main())


def test_feed_while_reading_is_paused(run: Any) -> None:
    async def main() -> None:
        protocol = Collect()
        transport = bare(protocol)
        transport.pause_reading()
        assert not transport.is_reading()
        transport.feed(b"one")
        transport.feed_eof()
        assert protocol.events == ["made"]
        transport.resume_reading()
        assert protocol.events == ["made", b"one", "eof"]
        await transport.wait_lost()

    run(main())


def test_flow_control_follows_asyncio(run: Any) -> None:
    async def main() -> None:
        protocol = Collect()
        transport = bare(protocol)
        transport.set_write_buffer_limits(high=4, low=2)
        transport.stall()
        transport.write(b"1234")
        assert protocol.events == ["made"], "pause only above the high-water mark"
        transport.write(b"5")
        assert protocol.events[-1] == "pause"
        assert transport.drain(2) == b"12"
        assert protocol.events[-1] == "pause"
        transport.drain(1)
        assert protocol.events[-1] == "resume"
        transport.write(b"6")
        transport.close()
        assert not transport.lost
        transport.unstall()
        assert transport.take() == b"123456"
        await transport.wait_lost()

    run(main())


def test_a_protocol_error_goes_to_the_exception_handler(run: Any) -> None:
    class Broken(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            raise ValueError("bug")

    async def main() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: seen.append(context))
        transport = bare(Broken())
        transport.feed(b"x")
        assert isinstance(await transport.wait_lost(), ValueError)
        return seen

    contexts = run(main())
    assert isinstance(contexts[0]["exception"], ValueError)


# -- every kind of application through connect() ------------------------------------------


class TwistedEcho(twisted.Protocol):
    def connectionMade(self) -> None:
        self.factory.peers.append(self.transport.getPeer())

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Any = twisted.connectionDone) -> None:
        self.factory.reasons.append(reason)


class EchoFactory(twisted.Factory):
    protocol = TwistedEcho

    def __init__(self) -> None:
        self.peers: list[Any] = []
        self.reasons: list[Any] = []


def test_twisted_protocol(run: Any) -> None:
    async def main() -> None:
        factory = EchoFactory()
        transport = connect(factory, peername=("10.0.0.7", 4242))
        transport.feed(b"hello")
        assert transport.take() == b"hello"
        assert factory.peers[0].host == "10.0.0.7" and factory.peers[0].port == 4242
        transport.feed_eof()
        await transport.wait_lost()
        assert len(factory.reasons) == 1

    run(main())


def test_asyncio_protocol_factory(run: Any) -> None:
    async def main() -> None:
        made: list[Collect] = []

        def factory() -> Collect:
            made.append(Collect())
            return made[-1]

        transport = connect(factory)
        protocol = made[0]
        assert protocol.transport is transport.get_protocol()  # the engine connection
        transport.feed(b"data")
        transport.feed_eof()
        await transport.wait_lost()
        assert protocol.events == ["made", b"data", "eof", ("lost", None)]

    run(main())


def test_async_handler_with_drain(run: Any) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(line.upper() * 3)
        await writer.drain()
        writer.write(b"done\n")

    async def main() -> None:
        transport = connect(handler, limits=Limits(write_buffer_high=8, write_buffer_low=0))
        transport.stall()
        transport.feed(b"abc\n")
        await asyncio.sleep(0.01)
        assert transport.get_write_buffer_size() == 12, "drain() returned while paused"
        transport.unstall()
        await transport.wait_lost()
        assert transport.take() == b"ABC\nABC\nABC\ndone\n"

    run(main())


def test_refused_connection(run: Any) -> None:
    async def main() -> None:
        with pytest.raises(ConnectionRefusedError):
            connect(Handlers(stream=lambda owner, peer: None))
        with pytest.raises(TypeError, match="does not serve stream"):
            connect(Handlers())
        with pytest.raises(TypeError, match="not both"):
            connect(EchoFactory(), owner=ConnectionOwner(), limits=Limits())

    run(main())


class Reply(twisted.DatagramProtocol):
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(datagram[::-1], addr)


def test_datagram_protocol(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner()
        transport = connect_datagram(Reply(), owner=owner)
        transport.feed(b"abc", ("127.0.0.1", 5000))
        assert transport.take() == [(b"cba", ("127.0.0.1", 5000))]
        assert (owner.counters.datagrams_received, owner.counters.datagrams_sent) == (1, 1)
        transport.close()
        await transport.wait_lost()
        transport.feed(b"late", ("127.0.0.1", 5000))
        assert transport.take() == []

    run(main())
