"""TLS listeners: serving, handshake timeout, handshakes under the cap and at shutdown."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from portside.config import Limits
from portside.core import Server
from portside.errors import EndpointError

from .support import Events, echo_handlers, echo_roundtrip, eventually, open_client, raw_socket


async def read_until_closed(sock: socket.socket) -> bytes:
    """Read a raw socket until the server closes it (EOF or reset)."""
    loop = asyncio.get_running_loop()
    data = b""
    while True:
        try:
            chunk = await loop.sock_recv(sock, 4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def test_tls_echo(run: Any, tls_files: Any) -> None:
    async def main() -> None:
        events = Events()
        async with Server(echo_handlers(events), tls_files.endpoint()) as server:
            context = tls_files.client_context()
            reply = await echo_roundtrip(
                server.addresses[0], b"secret", ssl=context, server_hostname="127.0.0.1"
            )
            assert reply == b"secret"
            connection = await events.started.get()
            assert connection.transport.get_extra_info("ssl_object") is not None
            assert server.statistics().bytes_received == 6

    run(main())


def test_silent_client_is_dropped_after_the_handshake_timeout(run: Any, tls_files: Any) -> None:
    async def main() -> None:
        limits = Limits(handshake_timeout=0.2)
        async with Server(echo_handlers(), tls_files.endpoint(), limits=limits) as server:
            loop = asyncio.get_running_loop()
            with raw_socket(server.addresses[0]) as silent:
                started = loop.time()
                assert await read_until_closed(silent) == b""
                assert 0.15 <= loop.time() - started < 3
            await eventually(lambda: not server.owner.pending)
            stats = server.statistics()
            assert stats.connection_errors == 1
            assert (stats.connections_open, stats.connections_total, stats.errors) == (0, 0, 0)

    run(main())


def test_plain_text_on_a_tls_port_is_dropped_quietly(run: Any, tls_files: Any) -> None:
    async def main() -> None:
        async with Server(echo_handlers(), tls_files.endpoint()) as server:
            with raw_socket(server.addresses[0]) as client:
                await asyncio.get_running_loop().sock_sendall(client, b"GET / HTTP/1.0\r\n\r\n")
                await read_until_closed(client)
            await eventually(lambda: not server.owner.pending)
            assert server.statistics().connection_errors == 1
            assert server.statistics().errors == 0
            assert await echo_roundtrip(
                server.addresses[0],
                b"still serving",
                ssl=tls_files.client_context(),
                server_hostname="127.0.0.1",
            ) == (b"still serving")

    run(main())


def test_handshakes_count_against_the_cap_and_are_cancelled_at_shutdown(
    run: Any, tls_files: Any
) -> None:
    async def main() -> None:
        limits = Limits(max_connections=1, handshake_timeout=30)
        server = Server(echo_handlers(), tls_files.endpoint(), limits=limits)
        await server.start()
        with raw_socket(server.addresses[0]) as silent:
            await eventually(lambda: bool(server.owner.pending))
            assert server.owner.at_capacity
            # A real TLS client is queued behind the silent one: no handshake happens.
            context = tls_files.client_context()
            queued = asyncio.ensure_future(
                open_client(server.addresses[0], ssl=context, server_hostname="127.0.0.1")
            )
            done, _ = await asyncio.wait([queued], timeout=0.2)
            assert not done
            loop = asyncio.get_running_loop()
            started = loop.time()
            await server.shutdown(timeout=5)
            assert loop.time() - started < 1, "shutdown waited for a handshake"
            assert not server.owner.pending and not server.owner.live
            assert await read_until_closed(silent) == b""
            with pytest.raises((OSError, asyncio.IncompleteReadError)):
                await queued

    run(main())


def test_missing_certificate_names_cert_key(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    server = Server(echo_handlers(), f"ssl:0:interface=127.0.0.1:privateKey={missing}")
    with pytest.raises(EndpointError, match="no such file") as info:
        server.bind()
    assert info.value.field == "certKey"
    assert str(missing) in str(info.value)
    assert server.addresses == []


def test_missing_private_key_names_private_key(tmp_path: Path, tls_files: Any) -> None:
    missing = tmp_path / "missing.key"
    endpoint = f"ssl:0:interface=127.0.0.1:certKey={tls_files.cert}:privateKey={missing}"
    with pytest.raises(EndpointError, match="no such file") as info:
        Server(echo_handlers(), endpoint).bind()
    assert info.value.field == "privateKey"


def test_unusable_certificate_is_an_endpoint_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(EndpointError, match="cannot load") as info:
        Server(echo_handlers(), f"ssl:0:privateKey={junk}").bind()
    assert info.value.field == "certKey"


def test_tls_error_leaves_no_port_bound(tmp_path: Path) -> None:
    server = Server(
        echo_handlers(),
        "tcp:0:interface=127.0.0.1",
        f"ssl:0:interface=127.0.0.1:privateKey={tmp_path / 'none.pem'}",
    )
    with pytest.raises(EndpointError):
        server.bind()  # before any port is taken, not later in start()
    assert server.addresses == []
