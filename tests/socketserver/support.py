"""Clients and constants shared by the socketserver tests (every client socket has a timeout)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

CLIENT_TIMEOUT = 5.0
JOIN_TIMEOUT = 10.0

Serve = Callable[[Any], Any]


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
