"""Serving a socketserver server through ``portside.serve`` / ``portside.Server``.

The engine then owns the listening sockets (the endpoints given to ``serve``), the limits and
the shutdown; the server object contributes its request cycle and handlers. Each connection
becomes a loop-backed socket and the cycle (``verify_request`` -> ``process_request``) runs for
it on a greenlet once it is up, so whatever ``process_request`` does -- start a thread, a
greenlet, or handle the request there and then (a plain ``TCPServer``) -- never blocks the
shared loop. ``get_request``, ``server_bind`` and ``server_activate`` are not used: build the
server with ``bind_and_activate=False``. Forking servers cannot share a loop and are refused.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from portside._socketserver.channel import StreamChannel, transport_socket
from portside._socketserver.greensock import ChannelSocket
from portside._socketserver.mixins import ForkingMixIn
from portside._socketserver.waiting import greenlet_module, spawn
from portside.core.connection import Connection, ConnectionOwner
from portside.core.datagram import DatagramConnection
from portside.core.server import Handlers

__all__ = ["DatagramReply", "handlers_for"]


def handlers_for(server: Any) -> Handlers:
    """The engine handlers that run ``server``'s request cycle for every connection/datagram."""
    if isinstance(server, ForkingMixIn):
        raise TypeError(
            f"{type(server).__name__} forks per request and cannot share an event loop; "
            "run it with serve_forever()"
        )
    greenlet_module()
    name = type(server).__name__
    home = _LoopThread()

    if server.socket_type == socket.SOCK_STREAM:

        def stream(owner: ConnectionOwner, peer: Any) -> Connection:
            channel = StreamChannel(owner, peer)
            home.loop_thread = threading.get_ident()  # the engine calls this in its loop
            request = ChannelSocket(channel, home, server.address_family)

            def started() -> None:
                request.family = transport_socket(channel).family
                spawn(asyncio.get_running_loop(), server._portside_cycle, request, peer)

            channel.on_start = started
            return channel

        return Handlers(stream=stream, name=name)

    def datagram(owner: ConnectionOwner) -> DatagramConnection:
        return _DatagramChannel(owner, server)

    return Handlers(datagram=datagram, name=name)


class _LoopThread:
    """Which thread runs the engine's loop (noted each time a connection is made)."""

    def __init__(self) -> None:
        self.loop_thread = threading.get_ident()


class _DatagramChannel(DatagramConnection):
    """A datagram socket whose every datagram runs the server's request cycle."""

    def __init__(self, owner: ConnectionOwner, server: Any) -> None:
        super().__init__(owner)
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()

    def _on_datagram(self, data: bytes, addr: Any) -> None:
        request = (data, DatagramReply(self))
        spawn(asyncio.get_running_loop(), self.server._portside_cycle, request, addr)


class DatagramReply:
    """``self.request[1]`` of a datagram served by the engine: replies go through the loop."""

    type = socket.SOCK_DGRAM

    def __init__(self, channel: _DatagramChannel) -> None:
        self._channel = channel

    @property
    def family(self) -> int:
        """The address family of the datagram socket."""
        return int(self._channel.transport.get_extra_info("socket").family)

    def sendto(self, data: Any, address: Any) -> int:
        """Send one datagram to ``address`` (queued on the loop; never blocks)."""
        payload = bytes(data)
        channel = self._channel
        if threading.get_ident() == channel.loop_thread:
            channel.sendto(payload, address)
        else:
            channel.loop.call_soon_threadsafe(channel.sendto, payload, address)
        return len(payload)

    def getsockname(self) -> Any:
        """The datagram socket's own address."""
        return self._channel.transport.get_extra_info("sockname")

    def fileno(self) -> int:
        """The datagram socket's descriptor (do not read it directly)."""
        return int(self._channel.transport.get_extra_info("socket").fileno())
