"""One datagram socket as the engine sees it: counts traffic, contains application errors.

Callbacks arrive in this order::

    connection_made -> _on_start -> (_on_datagram | _on_error)* -> connection_lost -> _on_lost
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from portside.core.connection import ConnectionOwner

__all__ = ["DatagramConnection"]


class DatagramConnection(asyncio.DatagramProtocol):
    """The engine's datagram endpoint: subclasses add a front door's behaviour."""

    transport: asyncio.DatagramTransport

    def __init__(self, owner: ConnectionOwner) -> None:
        self.owner = owner
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(
            asyncio.DatagramTransport, transport
        )  # uvloop's transports are not subclasses
        try:
            self._on_start()
        except Exception as exc:
            self.owner.report_error(f"{type(self).__name__}: error while starting", exc)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        counters = self.owner.counters
        counters.datagrams_received += 1
        counters.bytes_received += len(data)
        try:
            self._on_datagram(data, addr)
        except Exception as exc:
            self.owner.report_error(
                f"{type(self).__name__}: error handling a datagram from {addr}", exc
            )

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a port unreachable after our reply) say nothing about our socket's health.
        self.owner.counters.connection_errors += 1
        try:
            self._on_error(exc)
        except Exception as error:
            self.owner.report_error(f"{type(self).__name__}: error in error handler", error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        try:
            self._on_lost(exc)
        except Exception as error:
            self.owner.report_error(
                f"{type(self).__name__}: error in connection-lost handler", error
            )

    def sendto(self, data: bytes, addr: Any = None) -> None:
        """Send one datagram to ``addr``; dropped once the socket is closed."""
        if self.closed:
            return
        counters = self.owner.counters
        counters.datagrams_sent += 1
        counters.bytes_sent += len(data)
        self.transport.sendto(data, addr)

    def close(self) -> None:
        """Close the socket."""
        if not self.closed:
            self.closed = True
            self.transport.close()

    def _on_start(self) -> None:
        """The socket is ready."""

    def _on_datagram(self, data: bytes, addr: Any) -> None:
        """A datagram arrived from ``addr``."""

    def _on_error(self, exc: Exception) -> None:
        """A send or receive failed (often an ICMP error for an earlier datagram)."""

    def _on_lost(self, exc: Exception | None) -> None:
        """The socket was closed."""
