"""The socket API of a green handler's ``self.request``: behaves as a blocking stdlib socket."""

from __future__ import annotations

import errno
import io
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from portside import socketserver
from portside._socketserver.fileio import SocketWriter

from .support import CLIENT_TIMEOUT, Serve, connect, read_all

Handle = Callable[[Any], Any]
Client = Callable[[socket.socket], Any]


def session(loop_kind: str, serve: Serve, handle: Handle, client: Client) -> tuple[Any, Any]:
    """Serve one connection with ``handle(handler)`` on a GreenTCPServer while ``client(sock)``
    talks to it; return (what handle returned, what client returned); re-raise either's error."""
    outcome: queue.Queue[tuple[bool, Any]] = queue.Queue()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                outcome.put((True, handle(self)))
            except BaseException as exc:
                outcome.put((False, exc))
                raise

    server = serve(socketserver.GreenTCPServer(("127.0.0.1", 0), Handler, event_loop=loop_kind))
    with connect(server.server_address) as sock:
        client_result = client(sock)
    ok, value = outcome.get(timeout=CLIENT_TIMEOUT)
    if not ok:
        raise value
    return value, client_result


def test_recv_variants(loop_kind: str, serve: Serve) -> None:
    def handle(h: Any) -> Any:
        sock = h.request
        got = [sock.recv(3, socket.MSG_PEEK), sock.recv(3)]
        buffer = bytearray(4)
        got.append((sock.recv_into(buffer), bytes(buffer)))
        got.append(sock.recvfrom(2))
        view = memoryview(bytearray(10))
        got.append(sock.recvfrom_into(view, 1))
        got.append(sock.recv(7, socket.MSG_WAITALL))
        got.append(sock.recv(100))
        got.append(sock.recv(100))
        return got

    def client(sock: socket.socket) -> None:
        sock.sendall(b"abcdefghijk")
        time.sleep(0.05)  # the WAITALL read must span two arrivals
        sock.sendall(b"lmnopq")
        sock.shutdown(socket.SHUT_WR)
        read_all(sock)

    got, _ = session(loop_kind, serve, handle, client)
    assert got == [
        b"abc",
        b"abc",
        (4, b"defg"),
        (b"hi", None),
        (1, None),
        b"klmnopq",
        b"",
        b"",
    ]


def test_timeouts_follow_the_stdlib(loop_kind: str, serve: Serve) -> None:
    def handle(h: Any) -> Any:
        sock = h.request
        seen: list[Any] = [sock.gettimeout(), sock.getblocking()]
        sock.settimeout(0.1)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="timed out"):
            sock.recv(10)
        seen.append(round(time.monotonic() - started, 1))
        sock.setblocking(False)
        seen += [sock.gettimeout(), sock.getblocking()]
        with pytest.raises(BlockingIOError) as caught:
            sock.recv(10)
        seen.append(caught.value.errno)
        with pytest.raises(BlockingIOError):
            sock.recv(10, socket.MSG_DONTWAIT)
        with pytest.raises(ValueError, match="out of range"):
            sock.settimeout(-1)
        sock.setblocking(True)
        seen.append(sock.gettimeout())
        sock.sendall(b"go\n")
        seen.append(sock.recv(10))
        return seen

    def client(sock: socket.socket) -> None:
        assert sock.recv(10) == b"go\n"
        sock.sendall(b"done")

    seen, _ = session(loop_kind, serve, handle, client)
    assert seen == [None, True, 0.1, 0.0, False, errno.EAGAIN, None, b"done"]


def test_sendall_waits_for_a_slow_reader_and_times_out_on_a_stalled_one(
    loop_kind: str, serve: Serve
) -> None:
    chunk = b"x" * 65536

    def handle(h: Any) -> Any:
        sock = h.request
        sock.settimeout(0.3)
        sent = 0
        with pytest.raises(TimeoutError):
            for _ in range(2000):  # 128 MiB: far beyond any socket buffer
                sock.sendall(chunk)
                sent += len(chunk)
        sock.settimeout(None)
        sock.sendall(b"\nend")
        return sent

    def client(sock: socket.socket) -> int:
        time.sleep(1.0)  # stall: the handler's sendall must time out, not buffer forever
        return len(read_all(sock))

    sent, received = session(loop_kind, serve, handle, client)
    assert 0 < sent < 2000 * len(chunk)
    assert received == sent + 4
    assert sent <= 64 * 1024 * 1024  # bounded by the write high-water mark and socket buffers


def test_half_close_and_close(loop_kind: str, serve: Serve) -> None:
    def handle(h: Any) -> Any:
        sock = h.request
        sock.sendall(b"bye")
        sock.shutdown(socket.SHUT_WR)
        with pytest.raises(BrokenPipeError):
            sock.sendall(b"more")
        request = sock.recv(10)  # reading still works after our half-close
        sock.close()
        with pytest.raises(OSError) as caught:
            sock.recv(1)
        return request, caught.value.errno, sock.fileno()

    def client(sock: socket.socket) -> bytes:
        reply = read_all(sock)  # EOF after "bye": the server half-closed
        sock.sendall(b"still here")
        return reply

    (request, error, fd), reply = session(loop_kind, serve, handle, client)
    assert reply == b"bye"
    assert request == b"still here"
    assert error == errno.EBADF
    assert fd == -1


def test_names_and_options(loop_kind: str, serve: Serve) -> None:
    def handle(h: Any) -> Any:
        sock = h.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return (
            sock.getpeername(),
            sock.getsockname(),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
            sock.fileno() > 2,
            sock.family,
            sock.type,
            h.client_address,
        )

    def client(sock: socket.socket) -> Any:
        return sock.getsockname(), sock.getpeername()

    (peer, local, nodelay, fd_ok, family, kind, address), (client_name, server_name) = session(
        loop_kind, serve, handle, client
    )
    assert peer == client_name == address
    assert local == server_name
    assert nodelay and fd_ok
    assert (family, kind) == (socket.AF_INET, socket.SOCK_STREAM)


def test_makefile_modes(loop_kind: str, serve: Serve) -> None:
    def handle(h: Any) -> Any:
        sock = h.request
        rb = sock.makefile("rb")
        seen = [rb.readline(), rb.read(3), rb.peek()[:2], rb.read1(2)]
        seen.append(sock.recv(2))  # the reader took nothing beyond what it returned
        seen.append(isinstance(rb, io.BufferedIOBase))
        sock.sendall(b"1\n")
        text = sock.makefile("r", encoding="utf-8")
        seen += [text.readline(), text.readline()]
        sock.sendall(b"2\n")
        raw = sock.makefile("rb", buffering=0)
        buffer = bytearray(5)
        seen.append((raw.readinto(buffer), bytes(buffer)))
        wb = sock.makefile("wb", buffering=1024)
        wb.write(b"buffered ")
        wb.write(b"reply\n")
        wb.flush()
        wt = sock.makefile("w", encoding="utf-8")
        wt.write("text reply\n")
        wt.flush()
        rwb = sock.makefile("rwb")
        rwb.write(rwb.readline().upper())
        rwb.flush()
        for f in (rb, text, raw, wb, wt, rwb):
            f.close()
        writer = SocketWriter(sock)  # a StreamRequestHandler's wfile
        writer.close()
        for closed_call in (rb.readline, lambda: writer.write(b"x")):
            with pytest.raises(ValueError, match="closed file"):
                closed_call()
        seen.append(list(sock.makefile("rb")))
        with pytest.raises(ValueError, match="invalid mode"):
            sock.makefile("rx")
        with pytest.raises(ValueError, match="must be binary"):
            sock.makefile("r", buffering=0)
        return seen

    def client(sock: socket.socket) -> list[bytes]:
        reader = sock.makefile("rb")
        sock.sendall(b"line one\nabcdefg")
        replies = [reader.readline()]
        sock.sendall("héllo\nwörld\n".encode())
        replies.append(reader.readline())
        sock.sendall(b"12345")
        replies += [reader.readline(), reader.readline()]
        sock.sendall(b"rw line\n")
        replies.append(reader.readline())
        sock.sendall(b"last 1\nlast 2\n")
        sock.shutdown(socket.SHUT_WR)
        return replies

    seen, replies = session(loop_kind, serve, handle, client)
    assert seen == [
        b"line one\n",
        b"abc",
        b"de",
        b"de",
        b"fg",
        True,
        "héllo\n",
        "wörld\n",
        (5, b"12345"),
        [b"last 1\n", b"last 2\n"],
    ]
    assert replies == [b"1\n", b"2\n", b"buffered reply\n", b"text reply\n", b"RW LINE\n"]


def test_socket_closes_when_the_last_file_closes(loop_kind: str, serve: Serve) -> None:
    def handle(h: Any) -> Any:
        sock = h.request
        reader = sock.makefile("rb")
        sock.close()  # still open: the reader uses it
        line = reader.readline()
        reader.close()  # now the connection closes
        return line

    def client(sock: socket.socket) -> bytes:
        sock.sendall(b"hello\n")
        return read_all(sock)

    line, rest = session(loop_kind, serve, handle, client)
    assert (line, rest) == (b"hello\n", b"")


def test_a_reset_peer_raises_once_then_reads_end(loop_kind: str, serve: Serve) -> None:
    def handle(h: Any) -> Any:
        sock = h.request
        assert sock.recv(10) == b"hi"
        sock.sendall(b"ok")
        errors = []
        for _ in range(2):
            try:
                errors.append(sock.recv(10))
            except ConnectionResetError as exc:
                errors.append(type(exc).__name__)
        with pytest.raises(OSError):
            sock.sendall(b"x")
        return errors

    def client(sock: socket.socket) -> None:
        sock.sendall(b"hi")
        assert sock.recv(2) == b"ok"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # linger 0: RST

    errors, _ = session(loop_kind, serve, handle, client)
    assert errors == ["ConnectionResetError", b""]


def test_run_in_thread_keeps_the_loop_serving(loop_kind: str, serve: Serve) -> None:
    order: list[str] = []
    release = threading.Event()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            if line == b"slow\n":
                # blocks a thread, not the loop: the fast connection is served meanwhile
                socketserver.run_in_thread(release.wait, CLIENT_TIMEOUT)
                order.append("slow")
            else:
                order.append("fast")
            self.wfile.write(line)

    server = serve(socketserver.GreenTCPServer(("127.0.0.1", 0), Handler, event_loop=loop_kind))
    with connect(server.server_address) as slow, connect(server.server_address) as fast:
        slow.sendall(b"slow\n")
        fast.sendall(b"fast\n")
        assert fast.recv(10) == b"fast\n"
        release.set()
        assert slow.recv(10) == b"slow\n"
    assert order == ["fast", "slow"]
    assert socketserver.run_in_thread(lambda x: x * 2, 21) == 42  # outside green: just a call


def test_blocking_on_the_loop_itself_is_refused(loop_kind: str) -> None:
    from portside._socketserver.waiting import GreenWaiter
    from portside.core.loop import new_event_loop

    loop = new_event_loop(loop_kind)
    try:
        with pytest.raises(RuntimeError, match="only green handlers"):
            GreenWaiter(loop)
    finally:
        loop.close()


def test_reads_larger_than_the_read_high_water_mark(loop_kind: str, serve: Serve) -> None:
    """read(n) and readline() past the 64 KiB pause point resume reading instead of hanging."""
    big, line = 1_000_000, 200_000

    def handle(h: Any) -> Any:
        rfile = h.request.makefile("rb")
        return len(rfile.read(big)), len(rfile.readline())

    def client(sock: socket.socket) -> None:
        sock.sendall(b"x" * big + b"y" * line + b"\n")

    assert session(loop_kind, serve, handle, client)[0] == (big, line + 1)


def test_a_handler_that_speaks_first_starts_without_client_bytes(
    loop_kind: str, serve: Serve
) -> None:
    """Handlers start on the first bytes when they come at once; a silent client still gets
    the banner (the handler starts on the loop's next turn)."""

    def handle(h: Any) -> Any:
        h.request.sendall(b"220 ready\r\n")
        return h.request.recv(100)

    def client(sock: socket.socket) -> bytes:
        banner = sock.recv(100)  # nothing sent before the banner arrives
        sock.sendall(b"QUIT\r\n")
        return banner

    got, banner = session(loop_kind, serve, handle, client)
    assert (banner, got) == (b"220 ready\r\n", b"QUIT\r\n")


def test_bytes_that_arrive_first_reach_the_handler_and_verify_request(
    loop_kind: str, serve: Serve
) -> None:
    """The client's first bytes start the request cycle: verify_request may peek at them."""
    peeked: list[bytes] = []

    class Server(socketserver.GreenTCPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            peeked.append(request.recv(4, socket.MSG_PEEK))
            return True

    class Echo(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

    server = serve(Server(("127.0.0.1", 0), Echo, event_loop=loop_kind))
    with connect(server.server_address) as sock:
        sock.sendall(b"ping\n")
        assert read_all(sock) == b"ping\n"
    assert peeked == [b"ping"]
