"""Unit tests of the collaborators: the worker pool, native request sockets, in-flight books."""

from __future__ import annotations

import io
import socket
import threading
import time

import pytest

from portside._socketserver.fileio import SocketWriter
from portside._socketserver.inflight import InFlight
from portside._socketserver.native import RequestSocket, ServerSocket
from portside._socketserver.pool import WorkerPool
from portside.config import Limits
from portside.core.connection import SWEEPS_PER_TIMEOUT
from portside.core.metrics import Counters

from .support import wait_until


def test_pool_runs_everything_in_order_on_at_most_max_workers_threads() -> None:
    pool = WorkerPool(2, name="t", daemon=True)
    release = threading.Event()
    started: list[int] = []
    done: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        with lock:
            started.append(n)
        release.wait(5)
        with lock:
            done.append(n)

    for n in range(5):
        pool.submit(work, n)
    wait_until(lambda: len(started) == 2)  # the two workers have taken the first two items
    assert sorted(started) == [0, 1]
    assert pool.threads == 2
    release.set()
    pool.close()
    assert pool.join(5)
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert started[2:] == [2, 3, 4]
    with pytest.raises(RuntimeError):
        pool.submit(work, 9)


def test_pool_reuses_an_idle_worker() -> None:
    pool = WorkerPool(4, name="t", daemon=True)
    for _ in range(20):
        finished = threading.Event()
        pool.submit(finished.set)
        assert finished.wait(5)
        time.sleep(0.005)  # the worker goes idle again
    assert pool.threads == 1
    pool.close()
    assert pool.join(5)


def _pair() -> tuple[RequestSocket, socket.socket]:
    listener = ServerSocket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname(), timeout=5)
    server, _ = listener.accept()
    listener.close()
    assert isinstance(server, RequestSocket)
    server.settimeout(5)
    return server, client


def test_request_sockets_count_bytes_and_drain_at_exchange_boundaries() -> None:
    server, client = _pair()
    with server, client:
        client.sendall(b"request")
        assert server.recv(100) == b"request"
        server.begin_drain()
        server.sendall(b"answer")  # mid-exchange: the answer still goes out
        assert client.recv(100) == b"answer"
        client.sendall(b"next")
        assert server.recv(100) == b""  # at the boundary: end-of-file
        assert (server.bytes_received, server.bytes_sent) == (7, 6)


def test_a_drain_wakes_a_handler_blocked_between_exchanges() -> None:
    server, client = _pair()
    got: list[bytes] = []
    with server, client:
        reader = threading.Thread(target=lambda: got.append(server.recv(100)))
        reader.start()
        time.sleep(0.1)  # the reader is blocked in recv
        server.begin_drain()
        reader.join(5)
        assert got == [b""]


def test_request_files_count_bytes_and_drain_as_the_socket_does() -> None:
    server, client = _pair()
    with server, client:
        rfile = server.makefile("rb")
        wfile = SocketWriter(server)
        assert isinstance(rfile, io.BufferedReader)
        client.sendall(b"one\ntwo\n")
        assert rfile.readline() == b"one\n"
        assert wfile.write(memoryview(b"abc").cast("B", (3,))) == 3
        assert wfile.write(b"defg") == 4
        assert rfile.readline() == b"two\n"  # from rfile's buffer
        assert client.recv(100) == b"abcdefg"
        assert (server.bytes_received, server.bytes_sent) == (8, 7)
        server.begin_drain()
        client.sendall(b"three\n")
        assert rfile.readline() == b""  # at an exchange boundary: end-of-file
        wfile.close()
        with pytest.raises(ValueError):
            wfile.write(b"late")
        rfile.close()
        with pytest.raises(ValueError):
            rfile.readline()


def test_a_request_file_after_a_timeout_is_unusable_as_the_stdlibs() -> None:
    server, client = _pair()
    with server, client:
        server.settimeout(0.05)
        rfile = server.makefile("rb")
        with pytest.raises(TimeoutError):
            rfile.readline()
        client.sendall(b"late\n")
        with pytest.raises(OSError, match="cannot read from timed out object"):
            rfile.readline()
        server.setblocking(False)
        fresh = server.makefile("rb")
        assert fresh.readline() == b"late\n"
        assert (fresh.read1(10), fresh.readline()) == (b"", b"")  # nothing there: no wait
        fresh.close()
        rfile.close()


def test_inflight_capacity_sweep_and_totals() -> None:
    counters = Counters()
    inflight = InFlight(Limits(max_connections=2), counters)
    a, a_client = _pair()
    b, b_client = _pair()
    with a, a_client, b, b_client:
        inflight.add(a)
        inflight.add(b)
        assert inflight.full
        b_client.sendall(b"x")
        assert b.recv(1) == b"x"  # b has traffic since it was added, a has none
        for _ in range(SWEEPS_PER_TIMEOUT):
            inflight.sweep()
        assert counters.timeouts == 1  # a: shut down; b: idle for fewer sweeps
        assert a.recv(1) == b""
        inflight.done(a)
        assert not inflight.full
        assert inflight.byte_totals() == (1, 0)
        inflight.done(a)  # twice is harmless
        assert counters.connections_total == 2
