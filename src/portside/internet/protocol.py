"""Twisted's protocol model: ``Protocol``, ``Factory`` and friends (``twisted.internet.protocol``).

A factory is served by the engine as it is: ``portside.serve(factory, "tcp:8080")``, or through
the reactor (``reactor.listenTCP(8080, factory)``) and endpoints
(``serverFromString(reactor, "tcp:8080").listen(factory)``). Each accepted connection gets
``factory.buildProtocol(addr)``; its callbacks arrive in Twisted's order::

    makeConnection -> connectionMade -> dataReceived* -> connectionLost(reason)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from portside.core.connection import ConnectionOwner
from portside.core.server import Handlers
from portside.internet import error
from portside.internet.address import from_sockaddr
from portside.python.failure import Failure

if TYPE_CHECKING:
    from portside.core.connection import Connection
    from portside.core.datagram import DatagramConnection

__all__ = [
    "AbstractDatagramProtocol",
    "BaseProtocol",
    "ClientFactory",
    "ConnectedDatagramProtocol",
    "DatagramProtocol",
    "Factory",
    "Protocol",
    "ServerFactory",
    "connectionDone",
]

log = logging.getLogger("portside.internet")

connectionDone = Failure(error.ConnectionDone())
"""The reason passed to ``connectionLost`` after a clean close."""


class BaseProtocol:
    """What every stream protocol has: a transport and a ``connectionMade`` moment."""

    connected = 0
    transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport`` and call :meth:`connectionMade`."""
        self.connected = 1
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        """The connection is up; ``self.transport`` is ready for writing."""


class Protocol(BaseProtocol):
    """A stream protocol: override ``dataReceived`` and friends."""

    factory: Any = None

    def logPrefix(self) -> str:
        """The prefix for this protocol's log lines."""
        return type(self).__name__

    def dataReceived(self, data: bytes) -> None:
        """Bytes arrived, in chunks of any size (never assume message boundaries)."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The connection is gone; ``reason`` wraps ConnectionDone or ConnectionLost."""


class Factory:
    """Makes one protocol instance per connection; ``protocol`` is the class to build."""

    protocol: Any = None
    numPorts = 0
    noisy = True

    @classmethod
    def forProtocol(cls, protocol: Any, *args: Any, **kwargs: Any) -> Any:
        """A factory of this class building ``protocol``."""
        factory = cls(*args, **kwargs)
        factory.protocol = protocol
        return factory

    def logPrefix(self) -> str:
        """The prefix for this factory's log lines."""
        return type(self).__name__

    def doStart(self) -> None:
        """Called when a port starts using this factory; the first call runs startFactory."""
        if not self.numPorts:
            if self.noisy:
                log.debug("Starting factory %r", self)
            self.startFactory()
        self.numPorts += 1

    def doStop(self) -> None:
        """Called when a port stops using this factory; the last call runs stopFactory."""
        if self.numPorts == 0:
            return
        self.numPorts -= 1
        if not self.numPorts:
            if self.noisy:
                log.debug("Stopping factory %r", self)
            self.stopFactory()

    def startFactory(self) -> None:
        """Set-up before the first connection (open files, databases)."""

    def stopFactory(self) -> None:
        """Tear-down after the last port stopped."""

    def buildProtocol(self, addr: Any) -> Any:
        """A new protocol for a connection from ``addr``; None refuses the connection."""
        protocol = self.protocol()
        protocol.factory = self
        return protocol

    def __portside_handlers__(self) -> Handlers:
        """How the engine serves this factory (one StreamTransport per connection)."""
        from portside.internet.tcp import StreamTransport

        def make(owner: ConnectionOwner, peer: Any) -> Connection | None:
            protocol = self.buildProtocol(from_sockaddr(peer))
            return None if protocol is None else StreamTransport(owner, peer, protocol)

        return Handlers(
            stream=make, name=type(self).__name__, started=self.doStart, stopped=self.doStop
        )


class ServerFactory(Factory):
    """A factory for servers (no client callbacks)."""


class ClientFactory(Factory):
    """A factory for outgoing connections, told when connecting fails or the link drops."""

    def startedConnecting(self, connector: Any) -> None:
        """A connection attempt began."""

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """The connection attempt failed."""

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        """An established connection was lost."""


class AbstractDatagramProtocol:
    """What every datagram protocol has: a transport and start/stop moments."""

    transport: Any = None
    numPorts = 0
    noisy = True

    def logPrefix(self) -> str:
        """The prefix for this protocol's log lines."""
        return type(self).__name__

    def doStart(self) -> None:
        """Called when the port starts; the first call runs startProtocol."""
        if not self.numPorts:
            self.startProtocol()
        self.numPorts += 1

    def doStop(self) -> None:
        """Called when the port stops; the last call runs stopProtocol."""
        if self.numPorts == 0:
            return
        self.numPorts -= 1
        self.transport = None
        if not self.numPorts:
            self.stopProtocol()

    def startProtocol(self) -> None:
        """The socket is listening."""

    def stopProtocol(self) -> None:
        """The socket stopped listening."""

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport`` and start."""
        self.transport = transport
        self.doStart()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """A datagram arrived from ``addr`` (a ``(host, port)`` tuple)."""

    def __portside_handlers__(self) -> Handlers:
        """How the engine serves this protocol (one DatagramTransport per socket)."""
        from portside.internet.udp import DatagramTransport

        def make(owner: ConnectionOwner) -> DatagramConnection:
            return DatagramTransport(owner, self)

        return Handlers(datagram=make, name=type(self).__name__)


class DatagramProtocol(AbstractDatagramProtocol):
    """A UDP protocol: override ``datagramReceived``; reply with ``transport.write(data, addr)``."""

    def connectionRefused(self) -> None:
        """A datagram we sent on a connected socket was refused (ICMP port unreachable)."""


class ConnectedDatagramProtocol(DatagramProtocol):
    """A datagram protocol for a connected socket."""
