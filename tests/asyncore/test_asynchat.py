"""portside.asynchat: terminators, producers, and hostile peers, over real sockets."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from portside import asynchat, asyncore

from .conftest import Engine


class Recorder(asynchat.async_chat):
    """Records what it collects and the terminators it meets; a script may switch modes."""

    def __init__(self, sock: socket.socket, terminator: Any, script: list[Any] | None = None):
        super().__init__(sock)
        self.events: list[Any] = []
        self.script = list(script or [])
        self.set_terminator(terminator)

    def collect_incoming_data(self, data: bytes) -> None:
        self.events.append(data)

    def found_terminator(self) -> None:
        self.events.append(("T", self.get_terminator()))
        if self.script:
            self.set_terminator(self.script.pop(0))


def feed(chunks: list[bytes], terminator: Any, script: list[Any] | None = None) -> list[Any]:
    """Feed ``chunks`` one read at a time straight into handle_read."""
    a, b = socket.socketpair()
    chat = Recorder(a, terminator, script)
    try:
        for chunk in chunks:
            b.sendall(chunk)
            chat.handle_read()
        return chat.events
    finally:
        chat.close()
        b.close()
        asyncore.close_all()


def test_bytes_terminator_across_reads() -> None:
    assert feed([b"hel", b"lo\r", b"\nwor", b"ld\r\n\r\n"], b"\r\n") == [
        b"hel",
        b"lo",
        ("T", b"\r\n"),
        b"wor",
        b"ld",
        ("T", b"\r\n"),
        ("T", b"\r\n"),
    ]


def test_count_terminator_counts_down_and_none_collects_all() -> None:
    events = feed([b"LEN\n", b"abc", b"defgh", b"rest"], b"\n", [5, None])
    assert events == [b"LEN", ("T", b"\n"), b"abc", b"de", ("T", 0), b"fgh", b"rest"]


def test_set_terminator_rules() -> None:
    a, b = socket.socketpair()
    chat = Recorder(a, b"\n")
    with pytest.raises(ValueError):
        chat.set_terminator(-1)
    chat.use_encoding = 1
    chat.set_terminator("\r\n")
    assert chat.get_terminator() == b"\r\n"
    chat.close()
    b.close()
    asyncore.close_all()


def test_find_prefix_at_end() -> None:
    assert asynchat.find_prefix_at_end(b"qwerty\r", b"\r\n") == 1
    assert asynchat.find_prefix_at_end(b"qwertydkjf", b"\r\n") == 0
    assert asynchat.find_prefix_at_end(b"ab\r\n.", b"\r\n.\r\n") == 3


def test_push_splits_and_producers(engine: Engine) -> None:
    a, b = socket.socketpair()
    chat = Recorder(a, b"\n")
    chat.ac_out_buffer_size = 4
    chat.push(b"0123456789")
    assert list(chat.producer_fifo) == [b"4567", b"89"]  # one send per initiate_send
    with pytest.raises(TypeError):
        chat.push("text")  # type: ignore[arg-type]
    chat.push_with_producer(asynchat.simple_producer(b"abcdefgh", buffer_size=3))
    chat.close_when_done()

    def read_all() -> bytes:
        data = b""
        b.settimeout(5)
        while chunk := b.recv(100):
            data += chunk
        return data

    received = engine.serve(read_all)
    assert received == b"0123456789abcdefgh"
    assert a.fileno() == -1
    b.close()


def test_discard_buffers() -> None:
    a, b = socket.socketpair()
    chat = Recorder(a, b"\n")
    b.sendall(b"partial")
    chat.handle_read()
    chat.producer_fifo.append(b"queued")
    chat.discard_buffers()
    assert chat.ac_in_buffer == b"" and chat.incoming == [] and not chat.producer_fifo
    chat.close()
    b.close()
    asyncore.close_all()


class LineEcho(asynchat.async_chat):
    def __init__(self, sock: socket.socket, map: dict[int, Any] | None = None) -> None:
        super().__init__(sock, map=map)
        self.set_terminator(b"\n")
        self.collected = 0

    def collect_incoming_data(self, data: bytes) -> None:
        self.collected += len(data)
        self._collect_incoming_data(data)

    def found_terminator(self) -> None:
        self.push(self._get_data() + b"\n")


def test_terminator_never_arrives_keeps_the_buffer_bounded(engine: Engine) -> None:
    """A peer sending 8 MiB without a newline: ac_in_buffer never holds more than a read."""
    a, b = socket.socketpair()
    peak = 0

    class Watcher(LineEcho):
        def collect_incoming_data(self, data: bytes) -> None:
            nonlocal peak
            peak = max(peak, len(self.ac_in_buffer))
            self.collected += len(data)  # and keep nothing: the application's policy

    chat = Watcher(a)
    total = 8 * 1024 * 1024

    def flood() -> None:
        block = b"x" * 65536
        for _ in range(total // len(block)):
            b.sendall(block)
        b.sendall(b"\n")
        b.settimeout(5)
        assert b.recv(10) == b"\n"
        b.close()

    engine.serve(flood)
    assert chat.collected == total
    assert peak <= chat.ac_in_buffer_size + 1


def test_peer_closes_mid_push(engine: Engine) -> None:
    """The peer goes away while a large push is in flight: the channel closes, no error."""
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    errors: list[str] = []

    class Pusher(LineEcho):
        def handle_error(self) -> None:
            errors.append("error")
            super().handle_error()

    chat = Pusher(a)
    chat.push(b"y" * 4_000_000)

    def read_some_then_close() -> None:
        b.settimeout(5)
        assert b.recv(1000)
        b.close()

    engine.serve(read_some_then_close)
    asyncore.loop(timeout=0.05, count=20)
    assert a.fileno() == -1 and chat.socket.fileno() == -1
    assert errors == []


def test_line_echo_with_pipelined_lines(engine: Engine) -> None:
    class Server(asyncore.dispatcher):
        def handle_accepted(self, sock: socket.socket, addr: Any) -> None:
            LineEcho(sock)

    server = Server()
    server.create_socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    address = server.socket.getsockname()
    lines = b"".join(b"line %d\n" % i for i in range(1000))

    def client() -> bytes:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(lines)
            got = b""
            while len(got) < len(lines):
                got += sock.recv(65536)
            return got

    assert engine.serve(client) == lines
