"""Hostile and awkward cases: raising handlers, silent and resetting clients, overload, and
shutting down from a handler or with requests in flight."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from portside import Limits, socketserver

from .support import CLIENT_TIMEOUT, JOIN_TIMEOUT, Serve, connect, read_all, wait_until
from .support import STREAM_SERVERS as SERVERS

CONCURRENT = ["threading", "pool", "green"]
LINGER_ZERO = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {on, 0 s}: close sends RST


class Echo(socketserver.StreamRequestHandler):
    """Echoes lines; ``boom`` raises, ``stop`` shuts the server down from the handler."""

    def handle(self) -> None:
        for line in self.rfile:
            if line == b"boom\n":
                raise ValueError("the handler failed on purpose")
            if line == b"stop\n":
                self.server.shutdown()
            self.wfile.write(line)


def _roundtrip(server: Any, line: bytes = b"hello\n") -> bytes:
    with connect(server.server_address) as client:
        client.sendall(line)
        client.shutdown(socket.SHUT_WR)
        return read_all(client)


@pytest.mark.parametrize("mode", list(SERVERS))
def test_a_raising_handler_is_reported_and_the_server_goes_on(
    mode: str, loop_kind: str, serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(SERVERS[mode](("127.0.0.1", 0), Echo, event_loop=loop_kind))
    assert _roundtrip(server, b"boom\n") == b""  # the connection is closed after the error
    assert _roundtrip(server) == b"hello\n"
    server.shutdown()
    server.server_close()
    err = capsys.readouterr().err
    assert "Exception occurred during processing of request from ('127.0.0.1'," in err
    assert "ValueError: the handler failed on purpose" in err
    assert server.statistics().errors == 1


@pytest.mark.parametrize("mode", list(SERVERS))
def test_a_silent_client_times_out_with_the_handler_timeout(
    mode: str, loop_kind: str, serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    class Patient(Echo):
        timeout = 0.2

    server = serve(SERVERS[mode](("127.0.0.1", 0), Patient, event_loop=loop_kind))
    with connect(server.server_address) as client:
        started = time.monotonic()
        assert read_all(client) == b""  # closed by the server, having sent nothing
        assert 0.15 < time.monotonic() - started < 2.0
    server.shutdown()
    server.server_close()
    assert "TimeoutError" in capsys.readouterr().err  # as the stdlib: handle_error reports it


@pytest.mark.parametrize("mode", list(SERVERS))
def test_a_silent_client_is_closed_at_the_idle_timeout_quietly(
    mode: str, loop_kind: str, serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    limits = Limits(idle_timeout=0.2)
    server = serve(SERVERS[mode](("127.0.0.1", 0), Echo, limits=limits, event_loop=loop_kind))
    with connect(server.server_address) as client:
        client.sendall(b"one\n")
        assert client.recv(10) == b"one\n"
        started = time.monotonic()
        assert read_all(client) == b""
        assert 0.15 < time.monotonic() - started < 2.0
    if mode != "plain":  # the plain server is busy with that connection until then
        assert _roundtrip(server) == b"hello\n"
    server.shutdown()
    server.server_close()
    assert server.statistics().timeouts == 1
    assert server.statistics().errors == 0
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("mode", list(SERVERS))
def test_a_resetting_client_does_not_hurt_the_server(
    mode: str, loop_kind: str, serve: Serve
) -> None:
    class Slow(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())
            self.wfile.write(self.rfile.readline())

    server = serve(SERVERS[mode](("127.0.0.1", 0), Slow, event_loop=loop_kind))
    client = connect(server.server_address)
    client.sendall(b"first\n")
    assert client.recv(10) == b"first\n"
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    client.close()
    with connect(server.server_address) as other:
        other.sendall(b"a\nb\n")
        other.shutdown(socket.SHUT_WR)
        assert read_all(other) == b"a\nb\n"


def test_twice_max_workers_clients_wait_their_turn(loop_kind: str, serve: Serve) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    class Counted(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                self.wfile.write(self.rfile.readline())
            finally:
                with lock:
                    running -= 1

    class Pool(socketserver.ThreadPoolTCPServer):
        max_workers = 2

    server = serve(Pool(("127.0.0.1", 0), Counted, event_loop=loop_kind))
    clients = [connect(server.server_address) for _ in range(4)]
    # the server accepts all four: two run, two wait for a worker
    wait_until(lambda: server.statistics().connections_open == 4)
    for n, client in enumerate(clients):
        client.sendall(f"{n}\n".encode())
    for n, client in enumerate(clients):
        assert client.recv(10) == f"{n}\n".encode()
        client.close()
    assert peak == 2
    assert server._portside.pool.threads <= 2


@pytest.mark.parametrize("mode", list(SERVERS))
def test_shutdown_from_inside_a_handler_does_not_deadlock(
    mode: str, loop_kind: str, serve: Serve
) -> None:
    server = SERVERS[mode](("127.0.0.1", 0), Echo, event_loop=loop_kind)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        assert _roundtrip(server, b"stop\n") == b"stop\n"
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", CONCURRENT)
def test_shutdown_lets_requests_in_flight_finish_and_closes_idle_ones(
    mode: str, loop_kind: str
) -> None:
    got_request = threading.Event()
    release = threading.Event()

    class Working(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                if line == b"work\n":
                    got_request.set()
                    socketserver.run_in_thread(release.wait, CLIENT_TIMEOUT)
                self.wfile.write(line)

    server = SERVERS[mode](("127.0.0.1", 0), Working, event_loop=loop_kind)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        idle = connect(server.server_address)
        idle.sendall(b"ping\n")
        assert idle.recv(10) == b"ping\n"
        busy = connect(server.server_address)
        busy.sendall(b"work\n")
        assert got_request.wait(CLIENT_TIMEOUT)
        stopper = threading.Thread(target=server.shutdown)
        stopper.start()
        assert read_all(idle) == b""  # between exchanges: closed at once
        release.set()
        assert read_all(busy) == b"work\n"  # in flight: answered, then closed
        stopper.join(JOIN_TIMEOUT)
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive() and not stopper.is_alive()
        idle.close()
        busy.close()
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", CONCURRENT)
def test_shutdown_aborts_what_outlives_the_deadline(mode: str, loop_kind: str) -> None:
    class Stuck(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            self.wfile.write(b"partial answer")
            self.rfile.read(1_000_000)  # mid-exchange, waiting for a body that never comes

    limits = Limits(shutdown_timeout=0.3)
    server = SERVERS[mode](("127.0.0.1", 0), Stuck, limits=limits, event_loop=loop_kind)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    client = connect(server.server_address)
    try:
        client.sendall(b"request\nbody starts")
        assert client.recv(100) == b"partial answer"
        started = time.monotonic()
        server.shutdown()
        server.server_close()  # thread modes wait for their request threads here
        assert time.monotonic() - started < 3.0
        assert read_all(client) == b""
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
    finally:
        client.close()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", CONCURRENT)
def test_max_connections_holds_newcomers_in_the_backlog(
    mode: str, loop_kind: str, serve: Serve
) -> None:
    limits = Limits(max_connections=2)
    server = serve(SERVERS[mode](("127.0.0.1", 0), Echo, limits=limits, event_loop=loop_kind))
    first, second = connect(server.server_address), connect(server.server_address)
    for client in (first, second):
        client.sendall(b"x\n")
        assert client.recv(10) == b"x\n"
    third = connect(server.server_address)  # queued by the kernel, not accepted yet
    third.sendall(b"third\n")
    third.settimeout(0.3)
    with pytest.raises(TimeoutError):
        third.recv(10)
    first.close()
    third.settimeout(CLIENT_TIMEOUT)
    assert third.recv(10) == b"third\n"
    assert server.statistics().accept_pauses >= 1
    second.close()
    third.close()
