"""Fixtures for the Twisted door: reactors on both loops, recording protocols, loopback ports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from portside.core.loop import new_event_loop
from portside.internet import protocol
from portside.internet._ports import ListeningPort
from portside.internet.reactor import Reactor
from portside.python.failure import Failure

MakeReactor = Callable[..., Reactor]


@pytest.fixture
def make_reactor(loop_kind: str) -> Iterator[MakeReactor]:
    """``make_reactor(**kw)``: a fresh Reactor whose ``run()`` uses a ``loop_kind`` loop.

    Any call of that loop's exception handler fails the test, as with the ``run`` fixture.
    """
    errors: list[dict[str, Any]] = []

    def loop() -> asyncio.AbstractEventLoop:
        made = new_event_loop(loop_kind)
        made.set_exception_handler(lambda _loop, context: errors.append(context))
        return made

    yield lambda **kw: Reactor(loop=loop, **kw)
    assert not errors, f"the loop's exception handler was called: {errors}"


def run_bounded(reactor: Reactor, timeout: float = 5.0, signals: bool = False) -> None:
    """``reactor.run()``, failing the test if it was not stopped within ``timeout`` seconds."""
    guard = reactor.callLater(timeout, reactor.stop)
    reactor.run(installSignalHandlers=signals)
    assert not guard.called, f"the reactor was still running after {timeout}s"


class Recorder(protocol.Protocol):
    """A protocol that records its callbacks; ``made`` and ``lost`` can be awaited."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.received = bytearray()
        loop = asyncio.get_running_loop()
        self.made: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[Failure] = loop.create_future()
        self.chunk: asyncio.Queue[bytes] = asyncio.Queue()

    def makeConnection(self, transport: Any) -> None:
        self.events.append("makeConnection")
        super().makeConnection(transport)

    def connectionMade(self) -> None:
        self.events.append("connectionMade")
        self.made.set_result(None)

    def dataReceived(self, data: bytes) -> None:
        if self.events[-1] != "dataReceived":
            self.events.append("dataReceived")
        self.received += data
        self.chunk.put_nowait(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.events.append("connectionLost")
        self.lost.set_result(reason)


class Recording(protocol.Factory):
    """Builds ``protocol`` instances (Recorder by default) and queues each one it built."""

    protocol = Recorder

    def __init__(self) -> None:
        self.built: asyncio.Queue[Any] = asyncio.Queue()

    def buildProtocol(self, addr: Any) -> Any:
        built = super().buildProtocol(addr)
        built.addr = addr
        self.built.put_nowait(built)
        return built


class Echo(protocol.Protocol):
    """Writes back whatever arrives."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


def client_address(port: ListeningPort) -> Any:
    """What a stdlib client connects to for ``port``: ``(host, port)`` or a Unix path."""
    host = port.getHost()
    name = getattr(host, "name", None)
    return name if name is not None else (host.host, host.port)  # type: ignore[union-attr]


async def open_client(address: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stdlib asyncio client to ``(host, port)`` or a Unix path."""
    if isinstance(address, str):
        return await asyncio.open_unix_connection(address)
    return await asyncio.open_connection(address[0], address[1])


@asynccontextmanager
async def listening(
    reactor: Reactor, factory: Any, kind: str = "tcp4", tmp_path: Path | None = None
) -> AsyncIterator[ListeningPort]:
    """Listen with ``factory`` on loopback (``tcp4``, ``tcp6`` or ``unix``) for the block.

    Afterwards the port stops and its connections are shut down, so nothing outlives the loop.
    """
    if kind == "tcp4":
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    elif kind == "tcp6":
        port = reactor.listenTCP(0, factory, interface="::1")
    else:
        assert tmp_path is not None
        port = reactor.listenUNIX(str(tmp_path / "s.sock"), factory)
    try:
        await asyncio.sleep(0)  # let the port start accepting
        yield port
    finally:
        port.stopListening()
        await port.server.shutdown(timeout=2)


def ipv6_available() -> bool:
    """True when ::1 can be bound here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True
