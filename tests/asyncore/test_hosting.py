"""Dispatchers sharing one loop with asyncio code and portside servers, and over TLS."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any

import pytest

import portside
from portside import asynchat, asyncore

from .conftest import Engine
from .test_asyncore import EchoServer, exchange


async def echo_client(port: int, payload: bytes, context: ssl.SSLContext | None = None) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost" if context else None
    )
    writer.write(payload)
    data = await reader.readexactly(len(payload))
    writer.close()
    await writer.wait_closed()
    return data


async def echo_attached(map: dict[int, Any], port: int, payload: bytes, context: Any) -> None:
    """Attach ``map`` to the running loop, echo ``payload`` through it (TLS with ``context``)."""
    attachment = asyncore.attach(map)
    got = await echo_client(port, payload, context)
    assert got == payload
    attachment.detach()


def tls_server_context(tls_files: Any) -> ssl.SSLContext:
    """A server context with the test certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.cert, tls_files.key)
    return context


def test_dispatchers_and_a_portside_server_on_one_loop(engine: Engine, run: Any) -> None:
    private = engine.map()
    dispatcher_server = EchoServer(map=private)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"native:" + await reader.readline())
        await writer.drain()
        writer.close()

    async def main() -> None:
        attachment = asyncore.attach(private)
        async with portside.Server(handler, "tcp:0:interface=127.0.0.1") as server:
            port = server.addresses[0][1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hi\n")
            payload = os.urandom(100_000)
            native, echoed = await asyncio.gather(
                reader.read(), echo_client(dispatcher_server.port, payload)
            )
            writer.close()
            assert native == b"native:hi\n" and echoed == payload
        dispatcher_server.close()
        await asyncio.wait_for(attachment.wait(), 5)  # the map emptied
        attachment.detach()

    run(main())


def test_loop_async_raises_what_loop_would(engine: Engine, run: Any) -> None:
    private = engine.map()

    class Quitter(asyncore.dispatcher):
        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            raise asyncore.ExitNow("done")

    a, b = socket.socketpair()
    Quitter(a, map=private)

    async def main() -> None:
        task = asyncio.ensure_future(asyncore.loop_async(map=private))
        await asyncio.sleep(0)
        b.sendall(b"x")
        with pytest.raises(asyncore.ExitNow):
            await asyncio.wait_for(task, 5)

    run(main())
    b.close()


def test_attach_refuses_a_second_attachment_and_blocking_loop(engine: Engine, run: Any) -> None:
    private = engine.map()
    a, b = socket.socketpair()
    asyncore.dispatcher(a, map=private)

    async def main() -> None:
        attachment = asyncore.attach(private)
        with pytest.raises(RuntimeError):
            asyncore.attach(private)
        attachment.detach()

    run(main())
    b.close()


class TLSEcho(asynchat.async_chat):
    """Echoes lines over TLS; the engine does the handshake."""

    def __init__(self, sock: ssl.SSLSocket, map: dict[int, Any]) -> None:
        super().__init__(sock, map=map)
        self.set_terminator(b"\n")
        self.lines: list[bytes] = []

    def collect_incoming_data(self, data: bytes) -> None:
        self.lines.append(data)

    def found_terminator(self) -> None:
        self.push(b"".join(self.lines) + b"\n")
        self.lines = []


class TLSServer(EchoServer):
    def __init__(self, map: dict[int, Any], context: ssl.SSLContext) -> None:
        super().__init__(map=map)
        self.context = context

    def handle_accepted(self, sock: socket.socket, addr: Any) -> None:
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        TLSEcho(wrapped, self._map)


def test_tls_dispatcher_with_big_lines(engine: Engine, run: Any, tls_files: Any) -> None:
    private = engine.map()
    server_context = tls_server_context(tls_files)
    server = TLSServer(private, server_context)
    payload = b"".join(os.urandom(3000).hex().encode() + b"\n" for _ in range(300))
    run(echo_attached(private, server.port, payload, tls_files.client_context()), timeout=20)


def test_tls_client_dispatcher(engine: Engine, tls_files: Any) -> None:
    """A client dispatcher over TLS (want-read/want-write in its handshake), blocking loop."""
    private = engine.map()
    server_context = tls_server_context(tls_files)
    server = TLSServer(private, server_context)
    client_context = tls_files.client_context()
    received: list[bytes] = []
    message = b"z" * 200_000 + b"\n"

    class Client(asynchat.async_chat):
        def __init__(self) -> None:
            super().__init__(map=private)
            sock = socket.socket()
            sock.setblocking(False)
            self.set_socket(
                client_context.wrap_socket(
                    sock, server_hostname="localhost", do_handshake_on_connect=False
                )
            )
            self.set_terminator(b"\n")
            self.connect(("127.0.0.1", server.port))
            self.push(message)

        def handle_connect(self) -> None:
            pass

        def collect_incoming_data(self, data: bytes) -> None:
            received.append(data)

        def found_terminator(self) -> None:
            self.close()
            server.close()

    Client()
    asyncore.loop(timeout=5, map=private)
    assert b"".join(received) + b"\n" == message


class TinyReadTLSServer(TLSServer):
    """TLS line echo reading 7 bytes at a time: OpenSSL keeps the rest of each record."""

    def handle_accepted(self, sock: socket.socket, addr: Any) -> None:
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        TLSEcho(wrapped, self._map).ac_in_buffer_size = 7


def test_tls_plaintext_held_by_openssl_is_delivered(
    engine: Engine, run: Any, tls_files: Any
) -> None:
    """Bytes OpenSSL decrypted but recv() did not take are delivered without socket activity,
    by the blocking loop (polling the map's epoll itself) and by an attached map."""
    private = engine.map()
    server_context = tls_server_context(tls_files)
    server = TinyReadTLSServer(private, server_context)
    payload = b"".join(os.urandom(250).hex().encode() + b"\n" for _ in range(20))

    def blocking_client() -> bytes:
        context = tls_files.client_context()
        address = ("127.0.0.1", server.port)
        with (
            socket.create_connection(address, timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            return exchange(sock, payload)

    assert engine.serve(blocking_client, map=private) == payload
    run(echo_attached(private, server.port, payload, tls_files.client_context()), timeout=20)
