"""Loopback clients for the service tests: whole TCP exchanges and UDP request/answer."""

from __future__ import annotations

import asyncio
from typing import Any

from portside.core.connection import Connection
from portside.core.server import Server
from tests.core.support import eventually

TCP = "tcp:0:interface=127.0.0.1"
UDP = "udp:0:interface=127.0.0.1"


async def read_until_closed(address: Any, payload: bytes | None = None) -> bytes:
    """Connect, send ``payload`` and end our side (if given), then read until the server closes.

    Services that answer and close get no payload: data they never read would make the
    server's close a reset.
    """
    reader, writer = await asyncio.open_connection(address[0], address[1])
    try:
        if payload is not None:
            writer.write(payload)
            writer.write_eof()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


class _Answers(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answers.put_nowait(data)


async def udp_ask(address: Any, *requests: bytes) -> list[bytes]:
    """Send each request datagram in turn and wait for one answer to each."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _Answers, remote_addr=(address[0], address[1])
    )
    try:
        answers = []
        for request in requests:
            transport.sendto(request)
            answers.append(await protocol.answers.get())
        return answers
    finally:
        transport.close()


async def udp_send(address: Any, *datagrams: bytes) -> None:
    """Send datagrams that expect no answer."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=(address[0], address[1])
    )
    for datagram in datagrams:
        transport.sendto(datagram)
    transport.close()


async def server_side(server: Server) -> Connection:
    """The server's one live stream connection (waits for it to be accepted)."""
    await eventually(lambda: len(server.owner.live) == 1)
    return next(iter(server.owner.live))
