"""The Twisted datagram transport: ``self.transport`` inside a ``DatagramProtocol``."""

from __future__ import annotations

import errno
from typing import Any

from portside.core.connection import ConnectionOwner
from portside.core.datagram import DatagramConnection
from portside.internet.address import IPv4Address, IPv6Address, UNIXAddress, from_sockaddr

__all__ = ["DatagramTransport"]


class DatagramTransport(DatagramConnection):
    """A UDP socket serving one Twisted ``DatagramProtocol``."""

    def __init__(self, owner: ConnectionOwner, protocol: Any) -> None:
        super().__init__(owner)
        self.protocol = protocol
        self._connected_to: tuple[str, int] | None = None
        self.on_lost: Any = None

    def _on_start(self) -> None:
        self.protocol.makeConnection(self)

    def _on_datagram(self, data: bytes, addr: Any) -> None:
        self.protocol.datagramReceived(data, addr)

    def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
            refused = getattr(self.protocol, "connectionRefused", None)
            if refused is not None:
                refused()

    def _on_lost(self, exc: Exception | None) -> None:
        self.protocol.doStop()
        if self.on_lost is not None:
            self.on_lost()

    def write(self, datagram: bytes, addr: Any = None) -> None:
        """Send ``datagram`` to ``addr`` (or to the connected peer)."""
        self.sendto(datagram, None if self._connected_to is not None else addr)

    def writeSequence(self, seq: Any, addr: Any = None) -> None:
        """Send the joined chunks as one datagram."""
        self.write(b"".join(seq), addr)

    def connect(self, host: str, port: int) -> None:
        """Talk to one peer only; later ``write`` calls need no address."""
        sock = self.transport.get_extra_info("socket")
        sock.connect((host, port))
        self._connected_to = (host, port)

    def getHost(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """The local address."""
        return from_sockaddr(self.transport.get_extra_info("sockname"), "UDP")

    def getPeer(self) -> IPv4Address | IPv6Address | UNIXAddress | None:
        """The connected peer, if ``connect`` was called."""
        if self._connected_to is None:
            return None
        return from_sockaddr(self._connected_to, "UDP")

    def stopListening(self) -> None:
        """Close the socket."""
        self.close()

    loseConnection = stopListening

    def getHandle(self) -> Any:
        """The underlying socket."""
        return self.transport.get_extra_info("socket")
