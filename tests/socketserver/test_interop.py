"""A socketserver server served by ``portside.Server`` on one loop with other portside servers."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

import portside
from portside import socketserver

from .support import STREAM_SERVERS as SERVERS
from .support import Upper


async def _native_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
    writer.close()


async def _lines(address: Any, lines: list[bytes]) -> list[bytes]:
    if isinstance(address, str):
        reader, writer = await asyncio.open_unix_connection(address)
    else:
        reader, writer = await asyncio.open_connection(address[0], address[1])
    replies = []
    for line in lines:
        writer.write(line)
        replies.append(await reader.readline())
    writer.close()
    await writer.wait_closed()
    return replies


@pytest.mark.parametrize("mode", list(SERVERS))
def test_served_next_to_a_native_server(run: Any, mode: str, tmp_path: Path) -> None:
    legacy = SERVERS[mode](None, Upper, bind_and_activate=False)  # its own socket stays unused
    path = str(tmp_path / "legacy.sock")

    async def main() -> None:
        async with (
            portside.Server(legacy, "tcp:0:interface=127.0.0.1", f"unix:{path}") as old,
            portside.Server(_native_echo, "tcp:0:interface=127.0.0.1") as new,
        ):
            tcp, unix = old.addresses
            results = await asyncio.gather(
                _lines(tcp, [b"a\n", b"b\n"]),
                _lines(unix, [b"c\n"]),
                _lines(new.addresses[0], [b"native\n"]),
                _lines(tcp, [b"d\n"]),
            )
            assert results == [[b"A\n", b"B\n"], [b"C\n"], [b"native\n"], [b"D\n"]]
            stats = old.statistics()
            assert stats.connections_total == 3
            assert stats.errors == 0

    with legacy:
        run(main())


@pytest.mark.parametrize("mode", ["threading", "green"])
def test_graceful_shutdown_of_the_engine_ends_idle_handlers(run: Any, mode: str) -> None:
    legacy = SERVERS[mode](None, Upper, bind_and_activate=False)

    async def main() -> None:
        server = portside.Server(legacy, "tcp:0:interface=127.0.0.1")
        await server.start()
        host, port = server.addresses[0][:2]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"x\n")
        assert await reader.readline() == b"X\n"
        await asyncio.wait_for(server.shutdown(2.0), 5.0)  # the idle handler sees end-of-file
        assert await reader.read() == b""
        writer.close()

    with legacy:
        run(main())


def test_datagram_server(run: Any) -> None:
    class Reverse(socketserver.DatagramRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.read()[::-1])

    for cls in (socketserver.UDPServer, socketserver.ThreadingUDPServer):
        legacy = cls(None, Reverse, bind_and_activate=False)

        async def main(legacy: Any = legacy) -> None:
            async with portside.Server(legacy, "udp:0:interface=127.0.0.1") as server:
                address = server.addresses[0]

                def exchange() -> bytes:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                        client.settimeout(5.0)
                        client.sendto(b"abc", address)
                        return client.recv(100)

                data = await asyncio.to_thread(exchange)
            assert data == b"cba"

        with legacy:
            run(main())


def test_forking_servers_are_refused() -> None:
    with (
        socketserver.ForkingTCPServer(None, Upper, bind_and_activate=False) as legacy,
        pytest.raises(TypeError, match="cannot share an event loop"),
    ):
        portside.Server(legacy, "tcp:0")
