"""Listeners over real sockets: IPv4, IPv6, dual-stack, Unix, UDP, inherited descriptors."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portside.core import DatagramConnection, Handlers, Server
from portside.core.endpoints import parse_endpoint
from portside.core.listeners import BoundSocket, bind
from portside.errors import BindError, EndpointError

from .support import Events, echo_handlers, echo_roundtrip, open_client


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")


def test_ipv4_ephemeral_port(run: Any) -> None:
    async def main() -> None:
        async with Server(echo_handlers(), "tcp:0:interface=127.0.0.1") as server:
            (host, port) = server.addresses[0]
            assert host == "127.0.0.1" and port != 0
            assert await echo_roundtrip((host, port)) == b"ping"

    run(main())


@needs_ipv6
def test_ipv6_loopback(run: Any) -> None:
    async def main() -> None:
        async with Server(echo_handlers(), r"tcp6:0:interface=\:\:1") as server:
            assert server.addresses[0][0] == "::1"
            assert await echo_roundtrip(server.addresses[0]) == b"ping"
            with pytest.raises(OSError):  # v6 only: no IPv4 on that port
                await open_client(("127.0.0.1", server.addresses[0][1]))

    run(main())


@needs_ipv6
def test_tcp_with_ipv6_interface(run: Any) -> None:
    async def main() -> None:
        async with Server(echo_handlers(), r"tcp:0:interface=\:\:1") as server:
            assert await echo_roundtrip(server.addresses[0]) == b"ping"

    run(main())


@needs_ipv6
def test_dual_stack_accepts_ipv4_clients(run: Any) -> None:
    async def main() -> None:
        events = Events()
        async with Server(echo_handlers(events), "tcp6:0") as server:
            port = server.addresses[0][1]
            assert await echo_roundtrip(("127.0.0.1", port), b"v4") == b"v4"
            connection = await events.started.get()
            assert connection.peer[0] == "::ffff:127.0.0.1"
            assert await echo_roundtrip(("::1", port)) == b"ping"

    run(main())


def test_unix_socket_mode_and_cleanup(run: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "echo.sock")

    async def main() -> None:
        server = Server(echo_handlers(), f"unix:{path}:mode=0600")
        async with server:
            assert server.addresses == [path]
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert await echo_roundtrip(path) == b"ping"
        assert not os.path.exists(path), "the socket file outlives the server"

    run(main())


def test_unix_stale_socket_is_replaced(run: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(path)
    leftover.close()  # the file stays, nobody listens: a crashed process's leftover
    assert stat.S_ISSOCK(os.stat(path).st_mode)

    async def main() -> None:
        async with Server(echo_handlers(), f"unix:{path}"):
            assert await echo_roundtrip(path) == b"ping"

    run(main())


def test_unix_live_socket_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "live.sock")
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(path)
        live.listen()
        with pytest.raises(BindError, match="another process is listening"):
            bind(parse_endpoint(f"unix:{path}"))
        assert os.path.exists(path), "the other process's socket was removed"


def test_unix_path_that_is_not_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("precious")
    with pytest.raises(BindError, match="not a socket"):
        bind(parse_endpoint(f"unix:{path}"))
    assert path.read_text() == "precious"


def test_unix_lockfile(tmp_path: Path) -> None:
    path = str(tmp_path / "locked.sock")
    first = bind(parse_endpoint(f"unix:{path}:lockfile=1"))
    try:
        assert os.path.exists(path + ".lock")
        with pytest.raises(BindError, match="lock is held"):
            bind(parse_endpoint(f"unix:{path}:lockfile=1"))
        assert os.path.exists(path), "a refused second server removed the first one's socket"
    finally:
        first.close()
    assert not os.path.exists(path + ".lock")
    assert not os.path.exists(path)


def test_unix_lockfile_released_when_bind_fails(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a socket")
    with pytest.raises(BindError):
        bind(parse_endpoint(f"unix:{path}:lockfile=1"))
    assert not (tmp_path / "file.lock").exists()


def test_unix_cleanup_spares_a_replacement(tmp_path: Path) -> None:
    path = str(tmp_path / "moved.sock")
    bound = bind(parse_endpoint(f"unix:{path}"))
    os.unlink(path)
    with socket.socket(socket.AF_UNIX) as successor:
        successor.bind(path)
        bound.close()
        assert os.path.exists(path), "closing removed another server's socket file"


class UDPEcho(DatagramConnection):
    def _on_datagram(self, data: bytes, addr: Any) -> None:
        self.sendto(data, addr)


class DatagramClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)


def test_udp_echo_and_statistics(run: Any) -> None:
    async def main() -> None:
        handlers = Handlers(datagram=UDPEcho, name="udp-echo")
        async with Server(handlers, "udp:0:interface=127.0.0.1") as server:
            loop = asyncio.get_running_loop()
            transport, client = await loop.create_datagram_endpoint(
                DatagramClient, remote_addr=server.addresses[0]
            )
            try:
                transport.sendto(b"hello")
                assert await client.replies.get() == b"hello"
            finally:
                transport.close()
            stats = server.statistics()
            assert (stats.datagrams_received, stats.datagrams_sent) == (1, 1)
            assert (stats.bytes_received, stats.bytes_sent) == (5, 5)

    run(main())


def test_endpoint_kind_must_match_the_handlers() -> None:
    with pytest.raises(EndpointError, match="does not speak UDP"):
        Server(echo_handlers(), "udp:0:interface=127.0.0.1").bind()
    with pytest.raises(EndpointError, match="only speaks UDP"):
        Server(Handlers(datagram=UDPEcho), "tcp:0:interface=127.0.0.1").bind()


def test_inherited_listening_socket(run: Any) -> None:
    inherited = socket.create_server(("127.0.0.1", 0))
    port = inherited.getsockname()[1]
    fd = inherited.detach()

    async def main() -> None:
        async with Server(echo_handlers(), f"fd:{fd}") as server:
            assert server.addresses == [("127.0.0.1", port)]
            assert await echo_roundtrip(("127.0.0.1", port)) == b"ping"

    run(main())
    with pytest.raises(OSError):
        os.fstat(fd)  # the server owned the descriptor and closed it


def test_inherited_socket_must_be_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(BindError, match="not listening"):
            bind(parse_endpoint(f"fd:{sock.fileno()}"))
        sock.getsockname()  # still ours, still open


def test_inherited_descriptor_that_is_not_a_socket(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "plain", os.O_CREAT | os.O_RDWR)
    try:
        with pytest.raises(BindError):
            bind(parse_endpoint(f"fd:{fd}"))
    finally:
        os.close(fd)


def test_port_in_use_names_the_endpoint() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(BindError, match=f"tcp:{port}:interface=127.0.0.1"):
            bind(parse_endpoint(f"tcp:{port}:interface=127.0.0.1"))


def test_reuse_port_lets_two_listeners_share_a_port() -> None:
    first = bind(parse_endpoint("tcp:0:interface=127.0.0.1:reusePort=1"))
    try:
        port = first.address[1]
        second = bind(parse_endpoint(f"tcp:{port}:interface=127.0.0.1:reusePort=1"))
        second.close()
    finally:
        first.close()


def test_failed_bind_releases_endpoints_already_bound(tmp_path: Path) -> None:
    path = str(tmp_path / "first.sock")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = Server(echo_handlers(), f"unix:{path}", f"tcp:{port}:interface=127.0.0.1")
        with pytest.raises(BindError):
            server.bind()
    assert server.addresses == []
    assert not os.path.exists(path)


def test_bound_socket_close_is_idempotent(tmp_path: Path) -> None:
    calls: list[int] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    bound = BoundSocket("tcp:0", sock, lambda: calls.append(1))
    address = bound.address
    bound.close()
    bound.close()
    assert calls == [1]
    assert bound.address == address


def test_addresses_survive_stop_accepting(run: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")

    async def main() -> None:
        server = Server(echo_handlers(), "tcp:0:interface=127.0.0.1", f"unix:{path}")
        await server.start()
        addresses = server.addresses
        server.stop_accepting()
        assert server.addresses == addresses
        with pytest.raises(ConnectionRefusedError):
            await open_client(addresses[0])
        await server.shutdown()
        assert server.addresses == addresses

    run(main())


SYSTEMD_CHILD = """
import asyncio, os, sys
from portside.core import Connection, Handlers, Server
from portside.core.loop import run

os.dup2(int(sys.argv[1]), 3)  # where systemd puts the first socket
os.close(int(sys.argv[1]))
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))

class EchoOnce(Connection):
    def _on_data(self, data):
        self.write(data)
        self.close()

    def _on_lost(self, exc):
        done.set()

async def main():
    global done
    done = asyncio.Event()
    async with Server(Handlers(stream=EchoOnce), "systemd:0") as server:
        print(server.addresses[0][1], flush=True)
        await done.wait()

run(main(), loop=sys.argv[2])
"""


def test_systemd_socket_activation(loop_kind: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as activated:
        port = activated.getsockname()[1]
        child = subprocess.Popen(
            [sys.executable, "-c", SYSTEMD_CHILD, str(activated.fileno()), loop_kind],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=[activated.fileno()],
        )
    with child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # the child is serving
            assert line.strip() == str(port), child.communicate(timeout=5)[1]
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(b"activated")
                assert client.recv(100) == b"activated"
            _, err = child.communicate(timeout=10)
            assert child.returncode == 0, err
        finally:
            if child.poll() is None:
                child.kill()
