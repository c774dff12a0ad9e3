"""The same handler code under the stdlib and under portside puts the same bytes on the wire.

Each behaviour is a handler body written once; it is mixed into the stdlib's and portside's
request handler classes, served by each implementation's servers, and driven by the same
client script. Everything the client receives, up to the server's close, must be identical.
"""

from __future__ import annotations

import socket
import socketserver as stdlib
import threading
from collections.abc import Callable
from typing import Any

import pytest

from portside import socketserver as ours

from .support import CLIENT_TIMEOUT, JOIN_TIMEOUT, read_all

POLL = 0.01  # the stdlib polls for shutdown(); keep its servers quick to stop


class UpperLines:
    """Answers each line upper-cased."""

    def handle(self: Any) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())


class BannerFirst:
    """Speaks first, then answers one request with a multi-part reply and closes."""

    def handle(self: Any) -> None:
        self.wfile.write(b"220 ready\r\n")
        request = self.rfile.readline()
        self.wfile.write(b"250-" + request)
        self.wfile.write(b"250 done\r\n")


class BufferedWriter:
    """Writes through a buffered wfile (``wbufsize``) and flushes at the end."""

    wbufsize = 8192

    def handle(self: Any) -> None:
        data = self.rfile.read(5)
        for _ in range(3):
            self.wfile.write(data)


class BigReply:
    """Streams 2 MiB back after a short request (exercises write back-pressure)."""

    def handle(self: Any) -> None:
        self.rfile.readline()
        block = bytes(range(256)) * 256
        for _ in range(32):
            self.request.sendall(block)


class RawRecv:
    """The documentation's BaseRequestHandler style: one recv, one sendall."""

    def handle(self: Any) -> None:
        data = self.request.recv(1024).strip()
        self.request.sendall(data.upper())


class FailsHalfway:
    """Writes, then raises: the client sees what was written, then the close."""

    def handle(self: Any) -> None:
        self.wfile.write(self.rfile.readline())
        raise RuntimeError("failing on purpose")


class HalfCloseReader:
    """Reads until the client half-closes, then answers with a summary."""

    def handle(self: Any) -> None:
        data = self.rfile.read()
        self.wfile.write(b"%d bytes, %d lines\n" % (len(data), data.count(b"\n")))


BEHAVIOURS: dict[str, tuple[type, Callable[[socket.socket], None]]] = {
    "upper-lines": (UpperLines, lambda s: (s.sendall(b"one\ntwo\r\nthree"), _half_close(s))),
    "banner-first": (BannerFirst, lambda s: s.sendall(b"HELO client\r\n")),
    "buffered-writer": (BufferedWriter, lambda s: s.sendall(b"abcdefgh")),
    "big-reply": (BigReply, lambda s: s.sendall(b"send it\n")),
    "raw-recv": (RawRecv, lambda s: s.sendall(b"hello world with TCP\n")),
    "fails-halfway": (FailsHalfway, lambda s: s.sendall(b"echo me\nand more\n")),
    "half-close": (HalfCloseReader, lambda s: (s.sendall(b"a\nbb\nccc"), _half_close(s))),
}

PAIRS = {
    "plain": (stdlib.TCPServer, ours.TCPServer),
    "threading": (stdlib.ThreadingTCPServer, ours.ThreadingTCPServer),
    "pool": (stdlib.ThreadingTCPServer, ours.ThreadPoolTCPServer),
    "green": (stdlib.ThreadingTCPServer, ours.GreenTCPServer),
}


def _half_close(sock: socket.socket) -> None:
    sock.shutdown(socket.SHUT_WR)


def _conversation(
    server_class: type,
    base: type,
    behaviour: type,
    client: Callable[[socket.socket], None],
    **options: Any,
) -> bytes:
    handler = type("Handler", (behaviour, base), {})
    server = server_class(("127.0.0.1", 0), handler, **options)
    server.handle_error = lambda request, address: None  # quiet: the traceback is not compared
    thread = threading.Thread(target=server.serve_forever, args=(POLL,))
    thread.start()
    try:
        with socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT) as sock:
            client(sock)
            return read_all(sock)
    finally:
        server.shutdown()
        thread.join(JOIN_TIMEOUT)
        server.server_close()


@pytest.mark.parametrize("mode", list(PAIRS))
@pytest.mark.parametrize("name", list(BEHAVIOURS))
def test_same_bytes_as_the_stdlib(name: str, mode: str, loop_kind: str) -> None:
    behaviour, client = BEHAVIOURS[name]
    stdlib_class, our_class = PAIRS[mode]
    expected = _conversation(stdlib_class, stdlib.StreamRequestHandler, behaviour, client)
    got = _conversation(
        our_class, ours.StreamRequestHandler, behaviour, client, event_loop=loop_kind
    )
    assert got == expected
    assert expected  # every behaviour sends something


@pytest.mark.parametrize("mode", ["plain", "threading", "green"])
def test_same_datagrams_as_the_stdlib(mode: str, loop_kind: str) -> None:
    classes = {
        "plain": (stdlib.UDPServer, ours.UDPServer),
        "threading": (stdlib.ThreadingUDPServer, ours.ThreadingUDPServer),
        "green": (stdlib.ThreadingUDPServer, ours.GreenUDPServer),
    }[mode]

    class Reply:
        def handle(self: Any) -> None:
            data = self.rfile.read()
            if data != b"silent":
                self.wfile.write(data[::-1])

    replies = []
    for server_class, base, options in (
        (classes[0], stdlib.DatagramRequestHandler, {}),
        (classes[1], ours.DatagramRequestHandler, {"event_loop": loop_kind}),
    ):
        server = server_class(("127.0.0.1", 0), type("H", (Reply, base), {}), **options)
        thread = threading.Thread(target=server.serve_forever, args=(POLL,))
        thread.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(CLIENT_TIMEOUT)
                got = []
                for payload in (b"abc", b"silent", b"x" * 4000):
                    sock.sendto(payload, server.server_address)
                    got.append(sock.recv(65536))
                replies.append(got)
        finally:
            server.shutdown()
            thread.join(JOIN_TIMEOUT)
            server.server_close()
    assert replies[0] == replies[1] == [b"cba", b"", b"x" * 4000]
