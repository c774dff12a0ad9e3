"""Endpoints (``twisted.internet.endpoints``): where to listen or connect, as an object or string.

Endpoint strings share the engine's parser (:mod:`portside.core.endpoints`), so the strings a
``portside`` command line takes work here too::

    serverFromString(reactor, "tcp:8080:interface=127.0.0.1").listen(EchoFactory())
    clientFromString(reactor, "tcp:host=example.com:port=80").connect(ClientFactory())

Twisted's ``listen`` and ``connect`` return Deferreds. Until ``portside.internet.defer``
exists, ``listen`` returns the listening port itself (bound already) and ``connect`` a
:class:`PendingConnection`. Both are awaitable — a port gives itself, a pending connection its
protocol — so ``port = await endpoint.listen(f)`` and ``proto = await endpoint.connect(f)``
keep working when they return Deferreds.
"""

from __future__ import annotations

import abc
import asyncio
import ipaddress
import os
from collections.abc import Generator
from typing import Any

from portside.core.endpoints import Endpoint, TCPClientEndpoint, parse_client_endpoint
from portside.core.endpoints import parse_endpoint as _parse_endpoint
from portside.core.tls import client_context
from portside.internet import error
from portside.internet._ports import ListeningPort
from portside.internet.connector import Connector
from portside.internet.protocol import ClientFactory, Factory
from portside.python.failure import Failure

__all__ = [
    "EngineServerEndpoint",
    "PendingConnection",
    "SSL4ClientEndpoint",
    "SSL4ServerEndpoint",
    "TCP4ClientEndpoint",
    "TCP4ServerEndpoint",
    "TCP6ClientEndpoint",
    "TCP6ServerEndpoint",
    "UNIXClientEndpoint",
    "UNIXServerEndpoint",
    "clientFromString",
    "connectProtocol",
    "serverFromString",
]


# -- servers ---------------------------------------------------------------------------------


class TCP4ServerEndpoint:
    """Listen on a TCP port (``interface`` "" means every IPv4 address)."""

    def __init__(self, reactor: Any, port: int, backlog: int = 50, interface: str = "") -> None:
        self._reactor = reactor
        self._port = port
        self._backlog = backlog
        self._interface = interface

    def listen(self, protocolFactory: Any) -> ListeningPort:
        """Listen with ``protocolFactory``; returns the (awaitable) listening port."""
        return self._reactor.listenTCP(  # type: ignore[no-any-return]
            self._port, protocolFactory, backlog=self._backlog, interface=self._interface
        )


class TCP6ServerEndpoint(TCP4ServerEndpoint):
    """Listen on an IPv6 TCP port (``interface`` "::" means every address, IPv4 included)."""

    def __init__(self, reactor: Any, port: int, backlog: int = 50, interface: str = "::") -> None:
        super().__init__(reactor, port, backlog, interface)


class SSL4ServerEndpoint:
    """Listen for TLS on a TCP port; ``sslContextFactory`` is an ``ssl.SSLContext``."""

    def __init__(
        self,
        reactor: Any,
        port: int,
        sslContextFactory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> None:
        self._reactor = reactor
        self._port = port
        self._context = sslContextFactory
        self._backlog = backlog
        self._interface = interface

    def listen(self, protocolFactory: Any) -> ListeningPort:
        """Listen with ``protocolFactory``; returns the (awaitable) listening port."""
        return self._reactor.listenSSL(  # type: ignore[no-any-return]
            self._port,
            protocolFactory,
            self._context,
            backlog=self._backlog,
            interface=self._interface,
        )


class UNIXServerEndpoint:
    """Listen on a Unix socket path."""

    def __init__(
        self,
        reactor: Any,
        address: str | os.PathLike[str],
        backlog: int = 50,
        mode: int = 0o666,
        wantPID: int = 0,
    ) -> None:
        self._reactor = reactor
        self._address = address
        self._backlog = backlog
        self._mode = mode
        self._want_pid = wantPID

    def listen(self, protocolFactory: Any) -> ListeningPort:
        """Listen with ``protocolFactory``; returns the (awaitable) listening port."""
        return self._reactor.listenUNIX(  # type: ignore[no-any-return]
            self._address,
            protocolFactory,
            backlog=self._backlog,
            mode=self._mode,
            wantPID=self._want_pid,
        )


class EngineServerEndpoint:
    """Any engine endpoint (what :func:`serverFromString` returns): tcp, tcp6, ssl, unix, udp,
    fd, systemd, with every option the engine's grammar has (``reusePort``, ``lockfile``...).

    ``listen`` goes through the portside reactor's ``listen_endpoint``.
    """

    def __init__(self, reactor: Any, endpoint: Endpoint) -> None:
        self._reactor = reactor
        self.endpoint = endpoint

    def listen(self, protocolFactory: Any) -> ListeningPort:
        """Listen with ``protocolFactory``; returns the (awaitable) listening port."""
        return self._reactor.listen_endpoint(  # type: ignore[no-any-return]
            self.endpoint, protocolFactory
        )

    def __repr__(self) -> str:
        return f"<EngineServerEndpoint {self.endpoint.description!r}>"


def serverFromString(reactor: Any, description: str) -> EngineServerEndpoint:
    """The server endpoint ``description`` names, e.g. ``"tcp:8080"`` or ``"unix:/run/x"``.

    A bad string raises ``portside.EndpointError`` (a ValueError) naming the field.
    """
    return EngineServerEndpoint(reactor, _parse_endpoint(description))


# -- clients ---------------------------------------------------------------------------------


class PendingConnection:
    """An outgoing connection on its way: await it for the connected protocol.

    Awaiting raises the ``portside.internet.error`` exception (ConnectionRefusedError,
    TimeoutError, ...) when connecting fails. ``connector`` is the reactor's Connector;
    :meth:`cancel` abandons the attempt.
    """

    def __init__(self) -> None:
        self.connector: Connector | None = None
        self.protocol: Any = None
        """The protocol, once connected."""
        self.failure: BaseException | None = None
        """The reason connecting failed, once it has."""
        self._done = False
        self._waiters: list[asyncio.Future[Any]] = []

    def __await__(self) -> Generator[Any, None, Any]:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._done:
            self._settle(waiter)
        else:
            self._waiters.append(waiter)
        return waiter.__await__()

    def cancel(self) -> None:
        """Stop connecting (awaiting then raises UserError); no effect once connected."""
        if self.connector is not None and self.connector.state == "connecting":
            self.connector.stopConnecting()

    def _finish(self, protocol: Any = None, failure: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        self.protocol, self.failure = protocol, failure
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            self._settle(waiter)

    def _settle(self, waiter: asyncio.Future[Any]) -> None:
        if waiter.done():
            return
        if self.failure is not None:
            waiter.set_exception(self.failure)
        else:
            waiter.set_result(self.protocol)


class _WrappingFactory(ClientFactory):
    """Runs a plain protocol factory through a connector and reports to a PendingConnection."""

    def __init__(self, wrapped: Any, pending: PendingConnection) -> None:
        self._wrapped = wrapped
        self._pending = pending
        self.noisy = False

    def doStart(self) -> None:
        self._wrapped.doStart()
        super().doStart()

    def doStop(self) -> None:
        self._wrapped.doStop()
        super().doStop()

    def buildProtocol(self, addr: Any) -> Any:
        try:
            protocol = self._wrapped.buildProtocol(addr)
        except Exception as exc:
            self._pending._finish(failure=exc)
            raise
        if protocol is None:
            self._pending._finish(failure=error.ConnectError(string="buildProtocol returned None"))
        else:
            self._pending._finish(protocol)
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self._pending._finish(failure=reason.value)


class _ClientEndpoint(abc.ABC):
    """Shared by the client endpoints: wrap the factory, start the connector."""

    def connect(self, protocolFactory: Any) -> PendingConnection:
        """Connect, building the protocol with ``protocolFactory.buildProtocol(addr)``."""
        pending = PendingConnection()
        pending.connector = self._start(_WrappingFactory(protocolFactory, pending))
        return pending

    @abc.abstractmethod
    def _start(self, factory: ClientFactory) -> Connector:
        """Ask the reactor to connect with ``factory``."""


class TCP4ClientEndpoint(_ClientEndpoint):
    """Connect over TCP to ``host:port`` (a name or an address)."""

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._timeout = timeout
        self._bind = bindAddress

    def _start(self, factory: ClientFactory) -> Connector:
        return self._reactor.connectTCP(  # type: ignore[no-any-return]
            self._host, self._port, factory, timeout=self._timeout, bindAddress=self._bind
        )


class TCP6ClientEndpoint(TCP4ClientEndpoint):
    """Connect over TCP to an IPv6 ``host:port``."""


class SSL4ClientEndpoint(_ClientEndpoint):
    """Connect over TLS; ``sslContextFactory`` is an ``ssl.SSLContext`` (it does verification)."""

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        sslContextFactory: Any,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._context = sslContextFactory
        self._timeout = timeout
        self._bind = bindAddress

    def _start(self, factory: ClientFactory) -> Connector:
        return self._reactor.connectSSL(  # type: ignore[no-any-return]
            self._host,
            self._port,
            factory,
            self._context,
            timeout=self._timeout,
            bindAddress=self._bind,
        )


class UNIXClientEndpoint(_ClientEndpoint):
    """Connect to a Unix socket path."""

    def __init__(
        self, reactor: Any, path: str | os.PathLike[str], timeout: float = 30, checkPID: int = 0
    ) -> None:
        self._reactor = reactor
        self._path = path
        self._timeout = timeout
        self._check_pid = checkPID

    def _start(self, factory: ClientFactory) -> Connector:
        return self._reactor.connectUNIX(  # type: ignore[no-any-return]
            self._path, factory, timeout=self._timeout, checkPID=self._check_pid
        )


def clientFromString(
    reactor: Any, description: str
) -> TCP4ClientEndpoint | SSL4ClientEndpoint | UNIXClientEndpoint:
    """The client endpoint ``description`` names, e.g. ``"tcp:example.com:80"``.

    Also ``tcp:host=H:port=P``, ``ssl:H:P:trustRoots=ca.pem`` (system CAs without it) and
    ``unix:/run/x.sock``; ``timeout=S`` and ``bindAddress=ADDR`` where Twisted has them.
    """
    parsed = parse_client_endpoint(description)
    if not isinstance(parsed, TCPClientEndpoint):
        return UNIXClientEndpoint(reactor, parsed.path, timeout=parsed.timeout)
    bind = None if parsed.bind_address is None else (parsed.bind_address, 0)
    if parsed.tls:
        return SSL4ClientEndpoint(
            reactor,
            parsed.host,
            parsed.port,
            client_context(parsed),
            timeout=parsed.timeout,
            bindAddress=bind,
        )
    kind = TCP6ClientEndpoint if _is_ipv6(parsed.host) else TCP4ClientEndpoint
    return kind(reactor, parsed.host, parsed.port, timeout=parsed.timeout, bindAddress=bind)


def connectProtocol(endpoint: Any, protocol: Any) -> PendingConnection:
    """Connect ``endpoint`` with this one ``protocol`` instance (no factory needed)."""
    return endpoint.connect(Factory.forProtocol(lambda: protocol))  # type: ignore[no-any-return]


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).version == 6
    except ValueError:
        return False
