"""Every server class over real sockets (TCP on 127.0.0.1 and ::1, UDP, Unix), on both loops."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from portside import socketserver

from .support import CLIENT_TIMEOUT, Serve, connect

FORK_WARNING = "ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning"

STREAM_SERVERS = {
    "plain": (socketserver.TCPServer, socketserver.UnixStreamServer),
    "threading": (socketserver.ThreadingTCPServer, socketserver.ThreadingUnixStreamServer),
    "pool": (socketserver.ThreadPoolTCPServer, socketserver.ThreadPoolUnixStreamServer),
    "green": (socketserver.GreenTCPServer, socketserver.GreenUnixStreamServer),
    "forking": (socketserver.ForkingTCPServer, socketserver.ForkingUnixStreamServer),
}
DATAGRAM_SERVERS = {
    "plain": (socketserver.UDPServer, socketserver.UnixDatagramServer),
    "threading": (socketserver.ThreadingUDPServer, socketserver.ThreadingUnixDatagramServer),
    "pool": (socketserver.ThreadPoolUDPServer, socketserver.ThreadPoolUnixDatagramServer),
    "green": (socketserver.GreenUDPServer, socketserver.GreenUnixDatagramServer),
    "forking": (socketserver.ForkingUDPServer, socketserver.ForkingUnixDatagramServer),
}
MODES = list(STREAM_SERVERS)


class UpperLines(socketserver.StreamRequestHandler):
    """Answers every line with the line upper-cased, until the client closes."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())


class UpperDatagram(socketserver.DatagramRequestHandler):
    """Answers a datagram with it upper-cased."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


def _stream_address(family: str, tmp_path: Path) -> tuple[Any, int]:
    if family == "unix":
        return str(tmp_path / "s.sock"), socket.AF_UNIX
    if family == "ipv6":
        return ("::1", 0), socket.AF_INET6
    return ("127.0.0.1", 0), socket.AF_INET


def _make(cls: type, address: Any, family: int, handler: type, loop_kind: str) -> Any:
    if family == socket.AF_INET6:
        cls = type(cls.__name__ + "6", (cls,), {"address_family": socket.AF_INET6})
    return cls(address, handler, event_loop=loop_kind)


def _exchange(address: Any, family: int, tag: str) -> list[bytes]:
    # half-close after the request: the end reaches the handler even when a forked child
    # holds a copy of this (in-process) client socket
    with connect(address, family) as client:
        client.sendall(f"first {tag}\n".encode())
        reader = client.makefile("rb")
        replies = [reader.readline()]
        client.sendall(f"second {tag}\n".encode())
        client.shutdown(socket.SHUT_WR)
        replies.append(reader.read())
        reader.close()
    return replies


@pytest.mark.filterwarnings(FORK_WARNING)
@pytest.mark.parametrize("family", ["ipv4", "ipv6", "unix"])
@pytest.mark.parametrize("mode", MODES)
def test_stream_server(
    mode: str, family: str, loop_kind: str, serve: Serve, tmp_path: Path
) -> None:
    cls = STREAM_SERVERS[mode][family == "unix"]
    address, af = _stream_address(family, tmp_path)
    server = serve(_make(cls, address, af, UpperLines, loop_kind))
    concurrent = mode != "plain"
    results: dict[int, list[bytes]] = {}

    def client(n: int) -> None:
        results[n] = _exchange(server.server_address, af, str(n))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
        if not concurrent:
            thread.join(CLIENT_TIMEOUT)
    for thread in threads:
        thread.join(CLIENT_TIMEOUT)
    assert results == {n: [f"FIRST {n}\n".encode(), f"SECOND {n}\n".encode()] for n in range(3)}
    server.shutdown()
    server.server_close()  # waits for the requests (threads, children) to end
    stats = server.statistics()
    assert stats.connections_open == 0
    assert stats.connections_total == 3
    if mode != "forking":  # children count their own traffic
        assert (
            stats.bytes_received
            == stats.bytes_sent
            == sum(len(f"first {n}\nsecond {n}\n") for n in range(3))
        )


@pytest.mark.filterwarnings(FORK_WARNING)
@pytest.mark.parametrize("family", ["ipv4", "unix"])
@pytest.mark.parametrize("mode", MODES)
def test_datagram_server(
    mode: str, family: str, loop_kind: str, serve: Serve, tmp_path: Path
) -> None:
    cls = DATAGRAM_SERVERS[mode][family == "unix"]
    if family == "unix":
        address, af = str(tmp_path / "d.sock"), socket.AF_UNIX
    else:
        address, af = ("127.0.0.1", 0), socket.AF_INET
    server = serve(cls(address, UpperDatagram, event_loop=loop_kind))
    with socket.socket(af, socket.SOCK_DGRAM) as client:
        if family == "unix":
            client.bind(str(tmp_path / "client.sock"))
        client.settimeout(CLIENT_TIMEOUT)
        for word in (b"one", b"two", b"three"):
            client.sendto(word, server.server_address)
            assert client.recv(100) == word.upper()
    server.shutdown()
    server.server_close()
    stats = server.statistics()
    assert stats.datagrams_received == 3
    if mode != "forking":
        assert stats.datagrams_sent == 3


def test_all_names_of_the_stdlib_module_exist() -> None:
    import socketserver as stdlib

    for name in stdlib.__all__:
        assert hasattr(socketserver, name), name
        assert name in socketserver.__all__
    for name in socketserver.__all__:
        assert getattr(socketserver, name).__module__ == "portside.socketserver"


def test_class_attributes_match_the_stdlib() -> None:
    import socketserver as stdlib

    for cls, attrs in {
        "BaseServer": ["timeout"],
        "TCPServer": ["address_family", "socket_type", "allow_reuse_address", "allow_reuse_port"],
        "UDPServer": ["socket_type", "max_packet_size", "allow_reuse_address"],
        "ThreadingMixIn": ["daemon_threads", "block_on_close"],
        "ForkingMixIn": ["timeout", "max_children", "block_on_close", "active_children"],
        "StreamRequestHandler": ["rbufsize", "wbufsize", "timeout", "disable_nagle_algorithm"],
        "UnixStreamServer": ["address_family"],
        "UnixDatagramServer": ["address_family"],
    }.items():
        for attr in attrs:
            assert getattr(getattr(socketserver, cls), attr) == getattr(
                getattr(stdlib, cls), attr
            ), (cls, attr)
    # deliberately larger: the stdlib's 5 drops connections in bursts (see docs)
    assert socketserver.TCPServer.request_queue_size == 128
