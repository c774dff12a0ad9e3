"""DatagramProtocol over real UDP on loopback, through reactor.listenUDP."""

from __future__ import annotations

import asyncio
from typing import Any

from portside.internet import protocol
from portside.internet.address import IPv4Address
from portside.internet.reactor import Reactor


class UDPEcho(protocol.DatagramProtocol):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def startProtocol(self) -> None:
        self.events.append("start")

    def stopProtocol(self) -> None:
        self.events.append("stop")
        self.stopped.set_result(None)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.events.append("datagram")
        self.transport.write(datagram.upper(), addr)


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)


def test_datagram_echo(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reactor = Reactor()
        echo = UDPEcho()
        port = reactor.listenUDP(0, echo, interface="127.0.0.1")
        host = port.getHost()
        assert isinstance(host, IPv4Address) and host.type == "UDP" and host.port > 0
        transport, client = await loop.create_datagram_endpoint(
            Collect, remote_addr=("127.0.0.1", host.port)
        )
        try:
            for word in (b"one", b"two", b"x" * 8000):
                transport.sendto(word)
                assert await asyncio.wait_for(client.replies.get(), 2) == word.upper()
            assert echo.transport.getHost() == host
        finally:
            transport.close()
        assert echo.events == ["start", "datagram", "datagram", "datagram"]
        port.stopListening()
        await port.server.shutdown()
        await echo.stopped
        assert echo.events[-1] == "stop" and echo.transport is None
        stats = port.server.statistics()
        assert (stats.datagrams_received, stats.datagrams_sent) == (3, 3)

    run(main())
