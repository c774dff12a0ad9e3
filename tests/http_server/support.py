"""Helpers for the http.server tests: run a server in a thread, talk raw HTTP to it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from portside.http import server as ps_server

CLIENT_TIMEOUT = 5.0
JOIN_TIMEOUT = 10.0

# The portside server classes by request mode.
MODES: dict[str, type[ps_server.HTTPServer]] = {
    "plain": ps_server.HTTPServer,
    "thread": ps_server.ThreadingHTTPServer,
    "green": ps_server.GreenHTTPServer,
}


class Quiet:
    """Mix in first to keep a handler's access log out of the test output."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(server: Any) -> Iterator[tuple[str, int]]:
    """Run ``server.serve_forever`` in a thread; yield its address; shut it down after."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        thread.join(JOIN_TIMEOUT)
        server.server_close()
        assert not thread.is_alive(), "serve_forever did not return after shutdown()"


def exchange(address: tuple[str, int], data: bytes) -> bytes:
    """Send ``data`` on a new connection, half-close, and read until the server closes."""
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def without_date(response: bytes) -> bytes:
    """The response with its ``Date`` header lines removed (they differ between runs)."""
    return b"".join(
        line for line in response.splitlines(keepends=True) if not line.startswith(b"Date: ")
    )
