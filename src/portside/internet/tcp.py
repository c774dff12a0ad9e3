"""The Twisted stream transport: what ``self.transport`` is inside a ``Protocol``.

It is the engine's :class:`~portside.core.connection.Connection` itself, so a protocol's
``transport.write`` goes straight to the loop's transport. Producers (push and pull) are
driven by the engine's write-buffer water marks.
"""

from __future__ import annotations

import socket
from typing import Any

from portside.core.connection import Connection, ConnectionOwner
from portside.internet import error
from portside.internet.address import IPv4Address, IPv6Address, UNIXAddress, from_sockaddr
from portside.python.failure import Failure

__all__ = ["StreamTransport"]


class StreamTransport(Connection):
    """A TCP, TLS or Unix connection serving one Twisted ``Protocol``.

    ``protocol`` may be None for an outgoing connection, whose protocol is built only once the
    peer's address is known; :meth:`attach` must then be called before the connection starts.
    """

    # Slots keep an idle connection small (10,000 idle clients are a benchmark target).
    __slots__ = (
        "__weakref__",
        "_aborted",
        "_lose_after_producer",
        "_pull_scheduled",
        "connected",
        "disconnecting",
        "on_lost",
        "producer",
        "protocol",
        "streamingProducer",
    )

    def __init__(self, owner: ConnectionOwner, peer: Any, protocol: Any) -> None:
        super().__init__(owner, peer)
        self.connected = 0
        self.disconnecting = False
        self.producer: Any = None
        self.streamingProducer = False
        self._aborted = False
        self._lose_after_producer = False
        self._pull_scheduled = False
        self.on_lost: Any = None
        self.protocol: Any = None
        if protocol is not None:
            self.attach(protocol)

    def attach(self, protocol: Any) -> None:
        """Serve ``protocol``: received bytes go straight to its ``dataReceived``."""
        self.protocol = protocol

    def data_received(self, data: bytes) -> None:
        # The engine's data_received with the protocol's method called in place of _on_data:
        # one call less per chunk, and no bound method kept per connection.
        self.bytes_received += len(data)
        try:
            self.protocol.dataReceived(data)
        except Exception as exc:
            self._failed("handling received data", exc)

    # -- engine hooks ----------------------------------------------------------------------

    def _on_start(self) -> None:
        self.connected = 1
        self.protocol.makeConnection(self)

    def _on_eof(self) -> bool | None:
        return None

    def _on_lost(self, exc: Exception | None) -> None:
        self.connected = 0
        self.disconnecting = True
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.stopProducing()
        if self._aborted:
            reason = Failure(error.ConnectionAborted())
        elif exc is None:
            reason = Failure(error.ConnectionDone())
        else:
            reason = Failure(error.ConnectionLost(exc))
        try:
            self.protocol.connectionLost(reason)
        finally:
            if self.on_lost is not None:
                self.on_lost(reason)

    def _on_pause_writing(self) -> None:
        if self.producer is not None and self.streamingProducer:
            self.producer.pauseProducing()

    def _on_resume_writing(self) -> None:
        if self.producer is None:
            return
        if self.streamingProducer:
            self.producer.resumeProducing()
        else:
            self._schedule_pull()

    def begin_shutdown(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.stopProducing()
        self.loseConnection()

    # -- ITransport ------------------------------------------------------------------------

    def writeSequence(self, data: Any) -> None:
        """Write several byte strings in one go."""
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close after everything written has been sent (and any producer unregistered)."""
        if self.closing:
            return
        self.disconnecting = True
        if self.producer is not None:
            self._lose_after_producer = True
            return
        self.close()

    def abortConnection(self) -> None:
        """Close now, discarding unsent data."""
        if not self.closing:
            self._aborted = True
        self.disconnecting = True
        self.abort()

    def getPeer(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """The remote address."""
        return from_sockaddr(self.peer, family=self._family())

    def getHost(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """The local address."""
        return from_sockaddr(self.transport.get_extra_info("sockname"), family=self._family())

    def _family(self) -> int | None:
        sock = self.transport.get_extra_info("socket")
        return None if sock is None else int(sock.family)

    def getHandle(self) -> Any:
        """The underlying socket (a read-only view)."""
        return self.transport.get_extra_info("socket")

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Turn Nagle's algorithm off (True) or on."""
        self._setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, enabled)

    def getTcpNoDelay(self) -> bool:
        """True when Nagle's algorithm is off."""
        return bool(self._getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Turn TCP keep-alive probes on or off."""
        self._setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, enabled)

    def getTcpKeepAlive(self) -> bool:
        """True when TCP keep-alive probes are on."""
        return bool(self._getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    def _setsockopt(self, level: int, option: int, enabled: bool) -> None:
        sock = self.getHandle()
        if sock is not None:
            sock.setsockopt(level, option, int(enabled))

    def _getsockopt(self, level: int, option: int) -> int:
        sock = self.getHandle()
        return 0 if sock is None else int(sock.getsockopt(level, option))

    # -- IProducer / IPushProducer: the transport's own reading ------------------------------

    def pauseProducing(self) -> None:
        """Stop reading from the peer."""
        if not self.closing:
            self.transport.pause_reading()

    def resumeProducing(self) -> None:
        """Read from the peer again."""
        if not self.closing:
            self.transport.resume_reading()

    def stopProducing(self) -> None:
        """Stop for good: close the connection."""
        self.loseConnection()

    # -- IConsumer -------------------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` feed this transport; it is paused while the write buffer is full.

        A streaming (push) producer is told ``pauseProducing``/``resumeProducing``; a pull
        producer's ``resumeProducing`` is called each time it may write another chunk.
        """
        if self.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}, because producer "
                f"{self.producer!r} was never unregistered."
            )
        if self.closing:
            producer.stopProducing()
            return
        self.producer = producer
        self.streamingProducer = bool(streaming)
        if streaming:
            if self.writing_paused:
                producer.pauseProducing()
        else:
            self._schedule_pull()

    def unregisterProducer(self) -> None:
        """Stop feeding from the registered producer; a pending loseConnection now proceeds."""
        self.producer = None
        if self._lose_after_producer:
            self._lose_after_producer = False
            self.close()

    def _schedule_pull(self) -> None:
        if not self._pull_scheduled:
            self._pull_scheduled = True
            self.loop.call_soon(self._pull)

    def _pull(self) -> None:
        self._pull_scheduled = False
        producer = self.producer
        if producer is None or self.streamingProducer or self.closing or self.writing_paused:
            return
        before = self.bytes_sent
        try:
            producer.resumeProducing()
        except Exception as exc:
            self._failed("running a pull producer", exc)
            return
        if self.bytes_sent != before:
            self._schedule_pull()
