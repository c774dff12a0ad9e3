"""Clients and constants shared by the socketserver tests (every client socket has a timeout)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from portside import socketserver

# the stream servers, one per way of running handlers
STREAM_SERVERS: dict[str, type[socketserver.TCPServer]] = {
    "plain": socketserver.TCPServer,
    "threading": socketserver.ThreadingTCPServer,
    "pool": socketserver.ThreadPoolTCPServer,
    "green": socketserver.GreenTCPServer,
}


class Upper(socketserver.StreamRequestHandler):
    """Answers each line upper-cased."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())


CLIENT_TIMEOUT = 5.0
JOIN_TIMEOUT = 10.0

Serve = Callable[[Any], Any]


def wait_until(predicate: Callable[[], bool], timeout: float = CLIENT_TIMEOUT) -> None:
    """Poll ``predicate`` (state another thread changes) until it holds; fail at ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def connect(address: Any, family: int = socket.AF_INET) -> socket.socket:
    """A client stream socket connected to ``address``, with a timeout."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(CLIENT_TIMEOUT)
    sock.connect(address)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
