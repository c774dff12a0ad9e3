"""reactor.listen* and connect* on real loopback sockets: TCP, Unix, TLS, and connectors."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.config import Limits
from portside.internet import error, protocol
from portside.internet.address import IPv4Address, IPv6Address, UNIXAddress
from portside.internet.reactor import Reactor
from portside.python.failure import Failure

from .conftest import (
    Echo,
    MakeReactor,
    Recorder,
    Recording,
    client_address,
    open_client,
    run_bounded,
)


class Greeter(protocol.Protocol):
    """Client side: sends a greeting, keeps what comes back, closes after ``expect`` bytes."""

    def __init__(self, expect: int = 5) -> None:
        self.expect = expect
        self.received = b""

    def connectionMade(self) -> None:
        self.transport.write(b"hello")

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= self.expect:
            self.transport.loseConnection()


class Client(protocol.ClientFactory):
    """Records every callback a ClientFactory gets; stops ``reactor`` when the story ends."""

    def __init__(self, reactor: Reactor | None = None, reconnects: int = 0) -> None:
        self.reactor = reactor
        self.reconnects = reconnects
        self.events: list[Any] = []
        self.built: list[Greeter] = []
        self.reasons: list[Failure] = []
        self.stopped = asyncio.Event()

    def doStart(self) -> None:
        self.events.append("doStart")
        super().doStart()

    def doStop(self) -> None:
        self.events.append("doStop")
        super().doStop()
        self.stopped.set()
        if self.reactor is not None and self.reactor.running:
            self.reactor.stop()

    def startedConnecting(self, connector: Any) -> None:
        self.events.append(("startedConnecting", connector.state))

    def buildProtocol(self, addr: Any) -> Greeter:
        self.events.append(("buildProtocol", type(addr).__name__))
        self.built.append(Greeter())
        return self.built[-1]

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.events.append(("failed", reason.type.__name__, connector.state))
        self.reasons.append(reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.events.append(("lost", reason.type.__name__, connector.state))
        self.reasons.append(reason)
        if self.reconnects:
            self.reconnects -= 1
            connector.connect()


ECHO_STORY = [
    "doStart",
    ("startedConnecting", "connecting"),
    ("buildProtocol", "IPv4Address"),
    ("lost", "ConnectionDone", "disconnected"),
    "doStop",
]


def test_listen_tcp_and_connect_tcp_under_run(make_reactor: MakeReactor) -> None:
    reactor = make_reactor()
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    host = port.getHost()  # bound before run(), with the real port number
    assert isinstance(host, IPv4Address) and host.port > 0
    client = Client(reactor)
    connector = reactor.connectTCP("127.0.0.1", host.port, client)
    assert connector.getDestination() == IPv4Address("TCP", "127.0.0.1", host.port)
    assert connector.state == "connecting"
    run_bounded(reactor)
    assert client.events == ECHO_STORY
    assert client.built[0].received == b"hello"


def test_connector_reconnects_from_client_connection_lost(make_reactor: MakeReactor) -> None:
    reactor = make_reactor()
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    client = Client(reactor, reconnects=2)
    reactor.connectTCP("127.0.0.1", port.getHost().port, client)
    run_bounded(reactor)
    assert [e for e in client.events if e in ("doStart", "doStop")] == ["doStart", "doStop"]
    assert [e[0] for e in client.events if isinstance(e, tuple)].count("lost") == 3
    assert [g.received for g in client.built] == [b"hello"] * 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_refused_connection(make_reactor: MakeReactor) -> None:
    reactor = make_reactor()
    client = Client(reactor)
    reactor.connectTCP("127.0.0.1", free_port(), client)
    run_bounded(reactor)
    assert client.events == [
        "doStart",
        ("startedConnecting", "connecting"),
        ("failed", "ConnectionRefusedError", "disconnected"),
        "doStop",
    ]
    assert "refused" in client.reasons[0].getErrorMessage()


class Silent(protocol.Protocol):
    """Never says anything, so a TLS client waits for a handshake that never comes."""


def test_connect_timeout(run: Any) -> None:
    async def main() -> None:
        reactor = Reactor()
        silent = reactor.listenTCP(0, protocol.Factory.forProtocol(Silent), interface="127.0.0.1")
        client = Client()
        reactor.connectSSL(
            "127.0.0.1", silent.getHost().port, client, ssl.create_default_context(), timeout=0.1
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(client.stopped.wait(), 3)
        assert 0.09 <= loop.time() - started < 2
        assert client.reasons[0].check(error.TimeoutError)
        silent.stopListening()
        await silent.server.shutdown()

    run(main())


def test_stop_connecting_and_disconnect(run: Any) -> None:
    async def main() -> None:
        reactor = Reactor()
        client = Client()
        connector = reactor.connectTCP("127.0.0.1", free_port(), client)
        connector.stopConnecting()
        assert client.events[-2:] == [("failed", "UserError", "disconnected"), "doStop"]
        with pytest.raises(error.NotConnectingError):
            connector.stopConnecting()
        again = reactor.connectTCP("127.0.0.1", free_port(), client)
        again.disconnect()  # while connecting, disconnect is stopConnecting
        assert client.events[-2:] == [("failed", "UserError", "disconnected"), "doStop"]
        await asyncio.sleep(0.05)  # the cancelled attempts must not report anything more
        assert len(client.reasons) == 2

    run(main())


def test_disconnect_closes_an_established_connection(run: Any) -> None:
    async def main() -> None:
        reactor = Reactor()
        factory = Recording()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        client = Client()
        connector = reactor.connectTCP("127.0.0.1", port.getHost().port, client)
        server = await factory.built.get()
        await server.chunk.get()
        assert connector.state == "connected" and connector.transport is not None
        connector.disconnect()
        assert (await server.lost).check(error.ConnectionDone)
        port.stopListening()
        await port.server.shutdown()

    run(main())


def test_cannot_listen_on_a_taken_port_raises_at_once() -> None:
    reactor = Reactor()
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    try:
        with pytest.raises(error.CannotListenError) as caught:
            reactor.listenTCP(port.getHost().port, protocol.Factory(), interface="127.0.0.1")
        assert caught.value.port == port.getHost().port
        assert "127.0.0.1" in str(caught.value)
    finally:
        port.stopListening()


def test_interface_names_resolve_to_ipv4_as_in_twisted() -> None:
    port = Reactor().listenTCP(0, protocol.Factory(), interface="localhost")
    try:
        assert port.getHost().host == "127.0.0.1"  # type: ignore[union-attr]
    finally:
        port.stopListening()
    with pytest.raises(error.CannotListenError):
        Reactor().listenTCP(0, protocol.Factory(), interface="no-such-host.invalid")


def test_stop_listening_keeps_open_connections(run: Any) -> None:
    async def main() -> None:
        reactor = Reactor()
        factory = Recording.forProtocol(type("EchoRecorder", (Recorder,), {}))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        address = client_address(port)
        reader, writer = await open_client(address)
        server = await factory.built.get()
        await server.made
        assert port.stopListening() is None
        with pytest.raises(OSError):
            await open_client(address)
        writer.write(b"still here")
        assert await server.chunk.get() == b"still here"
        server.transport.write(b"and answering")
        assert await reader.readexactly(13) == b"and answering"
        writer.close()
        await server.lost
        await port.server.shutdown()

    run(main())


def test_unix_listen_and_connect(make_reactor: MakeReactor, tmp_path: Path) -> None:
    reactor = make_reactor()
    path = str(tmp_path / "echo.sock")
    port = reactor.listenUNIX(path, protocol.Factory.forProtocol(Echo), mode=0o600, wantPID=1)
    assert port.getHost() == UNIXAddress(path)
    assert (tmp_path / "echo.sock").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "echo.sock.lock").exists()
    client = Client(reactor)
    connector = reactor.connectUNIX(path, client)
    assert connector.getDestination() == UNIXAddress(path)
    run_bounded(reactor)
    assert client.built[0].received == b"hello"
    assert ("buildProtocol", "UNIXAddress") in client.events
    assert not (tmp_path / "echo.sock").exists(), "stopping the reactor removes the socket"


class ContextHolder:
    """A Twisted-style context factory: ``getContext()`` returns the context."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def getContext(self) -> ssl.SSLContext:
        return self.context


def test_ssl_listen_and_connect(make_reactor: MakeReactor, tls_files: Any) -> None:
    reactor = make_reactor()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tls_files.cert, tls_files.key)
    port = reactor.listenSSL(
        0, protocol.Factory.forProtocol(Echo), ContextHolder(server_context), interface="127.0.0.1"
    )
    client = Client(reactor)
    reactor.connectSSL("127.0.0.1", port.getHost().port, client, tls_files.client_context())
    run_bounded(reactor)
    assert client.events == ECHO_STORY
    assert client.built[0].received == b"hello"


def test_ssl_verification_failure_is_a_connect_error(
    make_reactor: MakeReactor, tls_files: Any
) -> None:
    reactor = make_reactor()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tls_files.cert, tls_files.key)
    port = reactor.listenSSL(
        0, protocol.Factory.forProtocol(Echo), server_context, interface="127.0.0.1"
    )
    client = Client(reactor)
    reactor.connectSSL("127.0.0.1", port.getHost().port, client, ssl.create_default_context())
    run_bounded(reactor)
    assert client.reasons[0].check(error.ConnectError)
    assert "TLS" in client.reasons[0].getErrorMessage()


def test_listen_ssl_rejects_what_is_not_an_ssl_context() -> None:
    with pytest.raises(TypeError, match="SSLContext"):
        Reactor().listenSSL(0, protocol.Factory(), object())


def test_ipv6_listen_and_connect(make_reactor: MakeReactor) -> None:
    from .conftest import ipv6_available

    if not ipv6_available():
        pytest.skip("no IPv6 loopback")
    reactor = make_reactor()
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="::1")
    assert isinstance(port.getHost(), IPv6Address)
    client = Client(reactor)
    connector = reactor.connectTCP("::1", port.getHost().port, client)
    assert isinstance(connector.getDestination(), IPv6Address)
    run_bounded(reactor)
    assert ("buildProtocol", "IPv6Address") in client.events


class Holder(Recorder):
    """Keeps the connection until shutdown asks it to close."""


def test_stop_shuts_down_connections_before_the_during_phase(make_reactor: MakeReactor) -> None:
    reactor = make_reactor(limits=Limits(shutdown_timeout=5))
    order: list[str] = []

    class Server(protocol.Factory):
        def buildProtocol(self, addr: Any) -> Any:
            built = Holder()
            built.connectionLost = lambda reason: order.append(  # type: ignore[method-assign]
                f"server lost: {reason.type.__name__}"
            )
            return built

    class Lingering(Client):
        def buildProtocol(self, addr: Any) -> Any:
            built = super().buildProtocol(addr)
            built.expect = 10**9  # never closes by itself
            reactor.callLater(0.01, reactor.stop)
            return built

        def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
            order.append(f"client lost: {reason.type.__name__}")

    port = reactor.listenTCP(0, Server(), interface="127.0.0.1")
    reactor.connectTCP("127.0.0.1", port.getHost().port, Lingering())
    reactor.addSystemEventTrigger("during", "shutdown", order.append, "during shutdown")
    run_bounded(reactor)
    assert order[-1] == "during shutdown"
    assert sorted(order[:-1]) == ["client lost: ConnectionDone", "server lost: ConnectionDone"]
    assert not port.listening


class Flood(protocol.Protocol):
    """Writes more than a client that never reads can take, so closing gracefully cannot end."""

    def connectionMade(self) -> None:
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        self.transport.write(b"x" * (8 * 1024 * 1024))
        self.factory.connected.append(self)


@pytest.fixture
def caught_signals() -> Iterator[list[int]]:
    """Handlers that record SIGINT/SIGTERM if the reactor failed to take them over."""
    leaked: list[int] = []
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, lambda signum, frame: leaked.append(signum))
    yield leaked
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_first_signal_stops_gracefully_and_a_second_forces(
    make_reactor: MakeReactor, caught_signals: list[int]
) -> None:
    reactor = make_reactor(limits=Limits(shutdown_timeout=30))
    factory = protocol.Factory.forProtocol(Flood)
    factory.connected = []  # type: ignore[attr-defined]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(client_address(port))  # accepted once the reactor runs; never read
    phases: list[str] = []

    def graceful_started() -> None:
        phases.append("before shutdown")
        reactor.callLater(0.05, signal.raise_signal, signal.SIGINT)

    reactor.addSystemEventTrigger("before", "shutdown", graceful_started)
    reactor.addSystemEventTrigger("after", "shutdown", phases.append, "after shutdown")
    reactor.callLater(0.05, signal.raise_signal, signal.SIGTERM)
    ours = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    try:
        run_bounded(reactor, signals=True)
    finally:
        stuck.close()
    assert time.monotonic() - started < 3, "the second signal must not wait for the deadline"
    assert phases == ["before shutdown", "after shutdown"]
    assert len(factory.connected) == 1  # type: ignore[attr-defined]
    assert caught_signals == []
    assert signal.getsignal(signal.SIGTERM) is ours, "the previous handler is put back"
