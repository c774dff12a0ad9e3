"""Endpoints: serverFromString / clientFromString round trips, endpoint classes, failures."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest

from portside.errors import EndpointError
from portside.internet import endpoints, error, protocol
from portside.internet._ports import ListeningPort
from portside.internet.address import IPv4Address, UNIXAddress
from portside.internet.reactor import Reactor

from .conftest import Echo, ipv6_available


class Asker(protocol.Protocol):
    """Sends a question once connected; ``answer`` resolves with the first reply."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connectionMade(self) -> None:
        self.transport.write(b"ping")

    def dataReceived(self, data: bytes) -> None:
        if not self.answer.done():
            self.answer.set_result(data)


async def round_trip(reactor: Reactor, server: str, client: str) -> Any:
    """Listen on ``server``, connect with ``client`` (``{port}`` filled in), check the echo."""
    port = await endpoints.serverFromString(reactor, server).listen(
        protocol.Factory.forProtocol(Echo)
    )
    try:
        assert isinstance(port, ListeningPort)
        where = client.format(port=getattr(port.getHost(), "port", None))
        pending = endpoints.clientFromString(reactor, where).connect(
            protocol.Factory.forProtocol(Asker)
        )
        asker = await pending
        assert isinstance(asker, Asker) and pending.protocol is asker
        assert await asker.answer == b"ping"
        asker.transport.loseConnection()
        return port.getHost()
    finally:
        port.stopListening()
        await port.server.shutdown(timeout=2)


def test_tcp_round_trip(run: Any) -> None:
    async def main() -> None:
        reactor = Reactor()
        host = await round_trip(
            reactor, "tcp:0:interface=127.0.0.1", "tcp:host=127.0.0.1:port={port}"
        )
        assert isinstance(host, IPv4Address)
        await round_trip(reactor, "tcp:0:interface=127.0.0.1", "tcp:127.0.0.1:{port}:timeout=5")

    run(main())


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")
def test_tcp6_round_trip(run: Any) -> None:
    async def main() -> None:
        client = endpoints.clientFromString(None, "tcp:\\:\\:1:80")
        assert isinstance(client, endpoints.TCP6ClientEndpoint)
        await round_trip(Reactor(), "tcp6:0:interface=\\:\\:1", "tcp:host=\\:\\:1:port={port}")

    run(main())


def test_unix_round_trip(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "e.sock"

    async def main() -> None:
        host = await round_trip(Reactor(), f"unix:{path}:mode=600", f"unix:{path}")
        assert host == UNIXAddress(str(path))

    run(main())


def test_ssl_round_trip(run: Any, tls_files: Any) -> None:
    async def main() -> None:
        client = f"ssl:host=127.0.0.1:port={{port}}:trustRoots={tls_files.ca_cert}"
        await round_trip(Reactor(), tls_files.endpoint(0), client)

    run(main())


def test_endpoint_classes(run: Any, tmp_path: Path, tls_files: Any) -> None:
    async def main() -> None:
        reactor = Reactor()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_files.cert, tls_files.key)
        path = str(tmp_path / "c.sock")
        pairs = [
            (
                endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"),
                lambda port: endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port),
            ),
            (
                endpoints.UNIXServerEndpoint(reactor, path),
                lambda port: endpoints.UNIXClientEndpoint(reactor, path),
            ),
            (
                endpoints.SSL4ServerEndpoint(reactor, 0, context, interface="127.0.0.1"),
                lambda port: endpoints.SSL4ClientEndpoint(
                    reactor, "127.0.0.1", port, tls_files.client_context()
                ),
            ),
        ]
        for server, client in pairs:
            port = server.listen(protocol.Factory.forProtocol(Echo))
            asker = Asker()
            pending = endpoints.connectProtocol(client(getattr(port.getHost(), "port", 0)), asker)
            assert await pending is asker
            assert await asker.answer == b"ping"
            asker.transport.loseConnection()
            port.stopListening()
            await port.server.shutdown(timeout=2)

    run(main())


def test_failed_connect_raises_when_awaited(run: Any) -> None:
    async def main() -> None:
        reactor = Reactor()
        port = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
        number = port.getHost().port
        port.stopListening()
        pending = endpoints.clientFromString(reactor, f"tcp:127.0.0.1:{number}").connect(
            protocol.Factory.forProtocol(Asker)
        )
        with pytest.raises(error.ConnectionRefusedError):
            await pending
        assert isinstance(pending.failure, error.ConnectionRefusedError)
        with pytest.raises(error.ConnectionRefusedError):  # awaiting again gives the same
            await pending

    run(main())


def test_cancel_a_pending_connection(run: Any) -> None:
    async def main() -> None:
        reactor = Reactor()
        pending = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", 9).connect(
            protocol.Factory.forProtocol(Asker)
        )
        pending.cancel()
        with pytest.raises(error.UserError):
            await pending

    run(main())


def test_bad_strings_name_the_field() -> None:
    with pytest.raises(EndpointError, match="port"):
        endpoints.serverFromString(None, "tcp:eighty")
    with pytest.raises(EndpointError, match="type"):
        endpoints.serverFromString(None, "carrier-pigeon:1")
    with pytest.raises(EndpointError, match="port"):
        endpoints.clientFromString(None, "tcp:host=example.com")


def test_server_from_string_keeps_engine_options(run: Any) -> None:
    async def main() -> None:
        reactor = Reactor()
        factory = protocol.Factory.forProtocol(Echo)
        first = endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1:reusePort=1")
        port = first.listen(factory)
        number = port.getHost().port
        shared = f"tcp:{number}:interface=127.0.0.1:reusePort=1"
        second = endpoints.serverFromString(reactor, shared).listen(factory)
        with pytest.raises(error.CannotListenError):
            reactor.listenTCP(number, factory, interface="127.0.0.1")
        assert factory.numPorts == 2
        for each in (port, second):
            each.stopListening()
            await each.server.shutdown()

    run(main())
