"""Outgoing connections: the ``Connector`` that ``reactor.connectTCP`` and friends return.

A connector runs one connection attempt at a time with the loop's own ``create_connection``
(or ``create_unix_connection``), under a timeout. Its factory hears, in this order::

    doStart (first attempt) -> startedConnecting -> buildProtocol(addr)
        -> [protocol: makeConnection -> connectionMade -> dataReceived* -> connectionLost]
        -> clientConnectionLost(connector, reason)
    or  -> clientConnectionFailed(connector, reason)        (refused, timed out, stopConnecting)
    -> doStop (unless the callback called connector.connect() again)

``reason`` is a Failure wrapping a ``portside.internet.error`` exception: ConnectionRefusedError,
TimeoutError, DNSLookupError, UserError (stopConnecting) or ConnectError when connecting
fails; ConnectionDone or ConnectionLost when an established connection ends.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from portside.core.connection import ConnectionOwner
from portside.internet import error
from portside.internet.address import IPv4Address, IPv6Address, UNIXAddress
from portside.internet.protocol import Protocol
from portside.internet.tcp import StreamTransport
from portside.python.failure import Failure

__all__ = ["ClientTransport", "Connector", "Opener"]

Opener = Callable[[asyncio.AbstractEventLoop, Callable[[], asyncio.Protocol]], Awaitable[Any]]
"""Opens the connection on a loop for a protocol factory (``loop.create_connection``-like)."""

State = Literal["disconnected", "connecting", "connected"]


class ClientTransport(StreamTransport):
    """An outgoing connection; its protocol is built by the connector once the peer is known."""

    def __init__(self, owner: ConnectionOwner, connector: Connector) -> None:
        super().__init__(owner, None, None)
        self._connector = connector

    def _on_start(self) -> None:
        connector = self._connector
        connector.transport = self
        self.on_lost = connector.connectionLost
        try:
            protocol = connector.buildProtocol(self.getPeer())
        except Exception:
            self.attach(Protocol())
            raise
        self.attach(Protocol() if protocol is None else protocol)
        super()._on_start()
        if protocol is None:  # the factory declined: close, as for a refused connection
            self.loseConnection()


class Connector:
    """One destination and a factory: ``connect``, ``disconnect``, ``stopConnecting``.

    ``state`` is ``"disconnected"``, ``"connecting"`` or ``"connected"``. Calling
    :meth:`connect` again from ``clientConnectionLost``/``clientConnectionFailed`` reconnects.
    """

    def __init__(
        self,
        factory: Any,
        destination: IPv4Address | IPv6Address | UNIXAddress,
        timeout: float,
        opener: Opener,
        owner: ConnectionOwner,
        with_loop: Callable[[Callable[[asyncio.AbstractEventLoop], object]], None],
    ) -> None:
        self.factory = factory
        self.timeout = timeout
        self.state: State = "disconnected"
        self.transport: ClientTransport | None = None
        self.factoryStarted = 0
        self._destination = destination
        self._opener = opener
        self._owner = owner
        self._with_loop = with_loop
        self._attempt = 0
        self._task: asyncio.Task[None] | None = None

    def getDestination(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """Where this connector connects to (the host as given, not resolved)."""
        return self._destination

    def connect(self) -> None:
        """Start a connection attempt (the reactor's connect* methods already did once)."""
        if self.state != "disconnected":
            raise RuntimeError(f"cannot connect while {self.state}")
        self.state = "connecting"
        if not self.factoryStarted:
            self.factory.doStart()
            self.factoryStarted = 1
        self._attempt += 1
        attempt = self._attempt
        self._with_loop(lambda loop: self._begin(loop, attempt))
        self._notify(self.factory.startedConnecting, self)

    def stopConnecting(self) -> None:
        """Abandon the attempt in progress; the factory hears clientConnectionFailed(UserError)."""
        if self.state != "connecting":
            raise error.NotConnectingError()
        self._attempt += 1
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        self.connectionFailed(Failure(error.UserError()))

    def disconnect(self) -> None:
        """Stop connecting, or close the connection (after its pending writes)."""
        if self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected" and self.transport is not None:
            self.transport.loseConnection()

    def buildProtocol(self, addr: Any) -> Any:
        """The connection is up: ask the factory for its protocol."""
        self.state = "connected"
        return self.factory.buildProtocol(addr)

    def connectionFailed(self, reason: Failure) -> None:
        """The attempt failed: tell the factory, and stop it unless it reconnected."""
        self.state = "disconnected"
        self.transport = None
        self._notify(self.factory.clientConnectionFailed, self, reason)
        self._maybe_stop_factory()

    def connectionLost(self, reason: Failure) -> None:
        """The connection ended: tell the factory, and stop it unless it reconnected."""
        self.state = "disconnected"
        self.transport = None
        self._notify(self.factory.clientConnectionLost, self, reason)
        self._maybe_stop_factory()

    def _maybe_stop_factory(self) -> None:
        if self.state == "disconnected" and self.factoryStarted:
            self.factoryStarted = 0
            self._notify(self.factory.doStop)

    def _notify(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            callback(*args)
        except Exception as exc:
            self._owner.report_error(f"{type(self.factory).__name__}: error in {callback!r}", exc)

    def _begin(self, loop: asyncio.AbstractEventLoop, attempt: int) -> None:
        if attempt == self._attempt and self.state == "connecting":
            self._task = loop.create_task(self._run(loop, attempt))

    async def _run(self, loop: asyncio.AbstractEventLoop, attempt: int) -> None:
        try:
            opening = self._opener(loop, lambda: ClientTransport(self._owner, self))
            await asyncio.wait_for(opening, self.timeout)
        except Exception as exc:
            if attempt == self._attempt and self.state == "connecting":
                self._task = None
                self.connectionFailed(Failure(connect_error(exc, self._destination)))
        else:
            if attempt == self._attempt:
                self._task = None

    def __repr__(self) -> str:
        return f"<Connector to {self._destination} ({self.state})>"


def connect_error(exc: Exception, destination: Any) -> error.ConnectError:
    """The Twisted error that says why connecting to ``destination`` failed with ``exc``."""
    if isinstance(exc, TimeoutError) and exc.errno is None:  # our timeout, not ETIMEDOUT
        return error.TimeoutError()
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return error.ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    if isinstance(exc, socket.gaierror):
        host = getattr(destination, "host", destination)
        return error.DNSLookupError(string=f"address {host!r} not found: {exc}")
    if isinstance(exc, ssl.SSLError):
        return error.ConnectError(string=f"TLS handshake failed: {exc}")
    if isinstance(exc, OSError):
        return error.ConnectError(exc.errno, exc.strerror or str(exc))
    return error.ConnectError(string=str(exc))
