"""Protocol and Factory over real loopback sockets: callback order, close reasons, transports."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from portside.internet import error, protocol
from portside.internet.address import IPv4Address, IPv6Address, UNIXAddress
from portside.internet.reactor import Reactor

from .conftest import (
    Echo,
    Recorder,
    Recording,
    client_address,
    ipv6_available,
    listening,
    open_client,
)

LIFECYCLE = ["makeConnection", "connectionMade", "dataReceived", "connectionLost"]


def test_clean_close_gives_connection_done(run: Any) -> None:
    async def main() -> None:
        factory = Recording()
        async with listening(Reactor(), factory) as port:
            _reader, writer = await open_client(client_address(port))
            writer.write(b"hello")
            server = await factory.built.get()
            await server.made
            assert await server.chunk.get() == b"hello"
            writer.close()
            reason = await server.lost
            assert reason.check(error.ConnectionDone)
            assert not reason.check(error.ConnectionLost)
            assert server.events == LIFECYCLE
            assert bytes(server.received) == b"hello"
            assert server.transport.connected == 0

    run(main())


def test_reset_gives_connection_lost(run: Any) -> None:
    async def main() -> None:
        factory = Recording()
        async with listening(Reactor(), factory) as port:
            sock = socket.create_connection(client_address(port))
            server = await factory.built.get()
            await server.made
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # linger 0: the kernel sends RST
            reason = await server.lost
            assert reason.check(error.ConnectionLost)
            assert not reason.check(error.ConnectionAborted)

    run(main())


class Aborter(Recorder):
    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        self.transport.write(b"x" * 100_000)
        self.transport.abortConnection()
        self.transport.write(b"ignored")


def test_abort_connection_gives_connection_aborted(run: Any) -> None:
    async def main() -> None:
        factory = Recording.forProtocol(Aborter)
        async with listening(Reactor(), factory) as port:
            _reader, writer = await open_client(client_address(port))
            writer.write(b"go")
            server = await factory.built.get()
            reason = await server.lost
            assert reason.check(error.ConnectionAborted)
            assert server.events == LIFECYCLE
            assert server.transport.disconnecting
            writer.close()

    run(main())


def test_for_protocol_builds_the_class_and_passes_arguments() -> None:
    class Named(protocol.Factory):
        def __init__(self, name: str) -> None:
            self.name = name

    factory = Named.forProtocol(Echo, "echo")
    assert isinstance(factory, Named) and factory.name == "echo"
    built = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    assert isinstance(built, Echo) and built.factory is factory


class Refusing(protocol.Factory):
    def buildProtocol(self, addr: Any) -> None:
        return None


def test_build_protocol_returning_none_refuses(run: Any) -> None:
    async def main() -> None:
        async with listening(Reactor(), Refusing()) as port:
            reader, writer = await open_client(client_address(port))
            try:
                assert await reader.read() == b""
            except ConnectionResetError:
                pass
            writer.close()
            assert port.server.statistics().connections_total == 0

    run(main())


class Counting(protocol.Factory):
    protocol = Echo

    def __init__(self) -> None:
        self.calls: list[str] = []

    def startFactory(self) -> None:
        self.calls.append("start")

    def stopFactory(self) -> None:
        self.calls.append("stop")


def test_do_start_and_do_stop_count_ports() -> None:
    reactor = Reactor()
    factory = Counting()
    first = reactor.listenTCP(0, factory, interface="127.0.0.1")
    assert (factory.numPorts, factory.calls) == (1, ["start"])
    second = reactor.listenTCP(0, factory, interface="127.0.0.1")
    assert (factory.numPorts, factory.calls) == (2, ["start"])
    first.stopListening()
    first.stopListening()  # a second stop is a no-op
    assert (factory.numPorts, factory.calls) == (1, ["start"])
    second.stopListening()
    assert (factory.numPorts, factory.calls) == (0, ["start", "stop"])


class Writer(Recorder):
    """Answers the first chunk with a large reply, in pieces, then closes cleanly."""

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        self.transport.write(b"a" * 500_000)
        self.transport.writeSequence([b"b" * 250_000, b"c" * 250_000])
        self.transport.loseConnection()
        self.transport.write(b"dropped after loseConnection")


def test_lose_connection_flushes_what_was_written(run: Any) -> None:
    async def main() -> None:
        factory = Recording.forProtocol(Writer)
        async with listening(Reactor(), factory) as port:
            reader, writer = await open_client(client_address(port))
            writer.write(b"go")
            reply = await reader.read()
            assert reply == b"a" * 500_000 + b"b" * 250_000 + b"c" * 250_000
            server = await factory.built.get()
            assert (await server.lost).check(error.ConnectionDone)
            writer.close()

    run(main())


def families() -> list[Any]:
    six = pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")
    return ["tcp4", pytest.param("tcp6", marks=six), "unix"]


@pytest.mark.parametrize("kind", families())
def test_get_peer_and_get_host(run: Any, kind: str, tmp_path: Path) -> None:
    async def main() -> None:
        factory = Recording()
        async with listening(Reactor(), factory, kind, tmp_path) as port:
            _reader, writer = await open_client(client_address(port))
            server = await factory.built.get()
            await server.made
            host, peer = server.transport.getHost(), server.transport.getPeer()
            here = writer.get_extra_info("sockname")
            if kind == "unix":
                assert host == port.getHost() == UNIXAddress(str(tmp_path / "s.sock"))
                assert peer == UNIXAddress(None)
            else:
                cls = IPv4Address if kind == "tcp4" else IPv6Address
                loopback = "127.0.0.1" if kind == "tcp4" else "::1"
                assert isinstance(host, cls) and isinstance(peer, cls)
                assert (host.type, host.host, host.port) == ("TCP", loopback, port.getHost().port)
                assert (peer.type, peer.host, peer.port) == ("TCP", loopback, here[1])
                assert server.addr == peer  # buildProtocol saw the same address
            writer.close()
            await server.lost

    run(main())


def test_tcp_socket_options(run: Any) -> None:
    async def main() -> None:
        factory = Recording()
        async with listening(Reactor(), factory) as port:
            _reader, writer = await open_client(client_address(port))
            server = await factory.built.get()
            await server.made
            transport = server.transport
            assert transport.getTcpNoDelay()  # the engine turns Nagle off for TCP
            transport.setTcpNoDelay(False)
            assert not transport.getTcpNoDelay()
            transport.setTcpKeepAlive(True)
            assert transport.getTcpKeepAlive()
            assert transport.getHandle().fileno() >= 0
            writer.close()
            await server.lost

    run(main())


def test_echo_over_tcp_round_trip(run: Any) -> None:
    async def main() -> None:
        async with listening(Reactor(), protocol.Factory.forProtocol(Echo)) as port:
            reader, writer = await open_client(client_address(port))
            for size in (1, 1000, 100_000):
                payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
                writer.write(payload)
                assert await reader.readexactly(len(payload)) == payload
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 2)

    run(main())
