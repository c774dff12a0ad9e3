"""portside.asyncore over real loopback sockets, on asyncio and uvloop."""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import Any

import pytest

from portside import asyncore
from portside._asyncore import shared

from .conftest import Engine


class EchoHandler(asyncore.dispatcher_with_send):
    def handle_read(self) -> None:
        data = self.recv(8192)
        if data:
            self.send(data)


class EchoServer(asyncore.dispatcher):
    def __init__(self, map: dict[int, Any] | None = None, backlog: int = 128) -> None:
        super().__init__(map=map)
        self.create_socket()
        self.set_reuse_addr()
        self.bind(("127.0.0.1", 0))
        self.listen(backlog)
        self.port = self.socket.getsockname()[1]

    def handle_accepted(self, sock: socket.socket, addr: Any) -> None:
        EchoHandler(sock, map=self._map)


def exchange(sock: socket.socket, payload: bytes) -> bytes:
    """Send ``payload`` on a connected socket and receive as many bytes back."""
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "server closed early"
        got += chunk
    return got


def echo_once(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return exchange(sock, payload)


@pytest.mark.parametrize("count", [False, True], ids=["forever", "count"])
def test_echo_server(engine: Engine, count: bool) -> None:
    server = EchoServer()
    payload = os.urandom(200_000)
    assert engine.serve(lambda: echo_once(server.port, payload), count=count) == payload


def test_private_map_and_repr(engine: Engine) -> None:
    private = engine.map()
    server = EchoServer(map=private)
    assert private == {server.socket.fileno(): server}
    assert not asyncore.socket_map
    assert repr(server).startswith("<tests.asyncore.test_asyncore.EchoServer listening 127.0.0.1:")
    assert engine.serve(lambda: echo_once(server.port, b"hi"), map=private) == b"hi"


def test_flags_read_per_event_live_on_the_instance() -> None:
    """``connected`` and ``accepting`` are not class attributes: with one of the same name on
    the class, CPython 3.12+ reads the instance's the slow, generic way on every event."""
    assert "connected" not in vars(asyncore.dispatcher)
    assert "accepting" not in vars(asyncore.dispatcher)
    unconnected = asyncore.dispatcher(map={})
    assert (unconnected.connected, unconnected.accepting) == (False, False)
    listener = EchoServer(map={})
    assert (listener.connected, listener.accepting) == (False, True)
    listener.close()
    assert (listener.connected, listener.accepting) == (False, False)


def test_loop_count_runs_that_many_iterations(engine: Engine) -> None:
    calls = []

    class Ticker(asyncore.dispatcher):
        def readable(self) -> bool:
            return False

        def writable(self) -> bool:
            return True

        def handle_write(self) -> None:
            calls.append(1)

    a, b = socket.socketpair()
    try:
        Ticker(a)
        asyncore.loop(timeout=1, count=3)
        assert len(calls) == 3
        asyncore.loop(timeout=1, count=2, use_poll=True)
        assert len(calls) == 5
        asyncore.poll(0.1)
        asyncore.poll2(0.1)
        assert len(calls) == 7
    finally:
        b.close()


def test_loop_with_nothing_to_watch_sleeps_timeout(engine: Engine) -> None:
    class Idle(asyncore.dispatcher):
        def readable(self) -> bool:
            return False

        def writable(self) -> bool:
            return False

    a, b = socket.socketpair()
    try:
        Idle(a)
        start = time.monotonic()
        asyncore.loop(timeout=0.05, count=2)
        assert 0.09 <= time.monotonic() - start < 2
    finally:
        b.close()


@pytest.mark.parametrize(
    ("preempted", "timeout"),
    [(False, 0.05), (True, 0.05), (False, 0.001)],
    ids=["on-cpu", "sweeps-off-cpu", "quick-iterations"],
)
def test_readable_false_holds_events_back_until_it_turns_true(
    engine: Engine, preempted: bool, timeout: float
) -> None:
    """The gate's change by plain assignment is seen at the next iteration, either way.

    With ``preempted`` each sweep spends 50 ms off the CPU (a predicate that sleeps, as a busy
    machine's scheduler would leave it): sweeps are spaced by their CPU time, so that must not
    put the next one off. With quick iterations (``loop(count=1)`` calls 1 ms apart) every one
    still asks the predicates, as asyncore does.
    """
    got: list[bytes] = []

    class Gated(asyncore.dispatcher):
        open_gate = False

        def readable(self) -> bool:
            if preempted and not self.open_gate:
                time.sleep(0.05)
            return self.open_gate

        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            got.append(self.recv(100))

    a, b = socket.socketpair()
    try:
        gated = Gated(a)
        b.sendall(b"data")
        asyncore.loop(timeout=timeout, count=3)
        assert got == []
        gated.open_gate = True  # an attribute assignment: re-checked before the next wait
        asyncore.loop(timeout=timeout, count=1)
        assert got == [b"data"]
        gated.open_gate = False
        b.sendall(b"more")
        asyncore.loop(timeout=timeout, count=1)
        assert got == [b"data"]
    finally:
        b.close()


def test_a_hang_up_nobody_reads_is_no_event(engine: Engine) -> None:
    """The read end of a pipe whose writer left, watched for writing only, as select() sees it:
    nothing is delivered and each iteration waits its timeout (no early return, no spin)."""
    calls: list[Any] = []

    class Reader(asyncore.file_dispatcher):
        want_read = False

        def readable(self) -> bool:
            return self.want_read

        def writable(self) -> bool:
            return True

        def handle_write(self) -> None:
            calls.append("write")

        def handle_read(self) -> None:
            calls.append(self.recv(10))

        def handle_close(self) -> None:
            calls.append("close")
            self.close()

    r, w = os.pipe()
    reader = Reader(r)
    os.close(r)
    os.write(w, b"x")
    os.close(w)
    started = time.monotonic()
    asyncore.loop(timeout=0.02, count=5)
    assert calls == []
    assert time.monotonic() - started >= 0.09  # five timeouts waited out
    reader.want_read = True
    asyncore.loop(timeout=0.02, count=2)
    assert calls == [b"x", "close", b""]


def test_predicate_on_shared_state_is_seen_by_the_sweep(engine: Engine) -> None:
    """A predicate reading state held elsewhere (mutated in place) is picked up by a sweep."""
    shared: list[bytes] = []
    sent: list[bytes] = []

    class Follower(asyncore.dispatcher):
        def readable(self) -> bool:
            return False

        def writable(self) -> bool:
            return bool(shared)

        def handle_write(self) -> None:
            sent.append(shared.pop())
            self.send(sent[-1])

    a, b = socket.socketpair()
    try:
        Follower(a)
        asyncore.loop(timeout=0.05, count=2)
        shared.append(b"late")  # in place: no dispatcher attribute changes
        deadline = time.monotonic() + 5
        while not sent and time.monotonic() < deadline:
            asyncore.loop(timeout=0.05, count=1)
        assert sent == [b"late"]
        assert b.recv(10) == b"late"
    finally:
        b.close()


def test_cross_dispatcher_change_is_seen_at_once(engine: Engine) -> None:
    """A handler of one dispatcher fills another's buffer: the other writes in the same run."""
    a1, b1 = socket.socketpair()
    a2, b2 = socket.socketpair()

    class Sink(asyncore.dispatcher):
        buffer = b""

        def readable(self) -> bool:
            return False

        def writable(self) -> bool:
            return bool(self.buffer)

        def handle_write(self) -> None:
            self.buffer = self.buffer[self.send(self.buffer) :]

    class Source(asyncore.dispatcher):
        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            sink.buffer += self.recv(100)

    sink = Sink(a2)
    Source(a1)
    try:
        b1.sendall(b"relay")
        b2.settimeout(5)
        engine.serve(lambda: b2.recv(10) == b"relay" or pytest.fail("nothing relayed"))
    finally:
        b1.close()
        b2.close()


def test_client_connect_and_refused(engine: Engine) -> None:
    events: list[str] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    class Client(asyncore.dispatcher):
        def __init__(self, port: int) -> None:
            super().__init__()
            self.create_socket()
            self.connect(("127.0.0.1", port))

        def handle_connect(self) -> None:
            events.append("connect")

        def handle_write(self) -> None:
            self.send(b"x")
            self.close()

    Client(port)
    asyncore.loop(timeout=5)
    assert events == ["connect"]
    listener.close()
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()

    class Refused(Client):
        def handle_error(self) -> None:
            events.append("error")
            super().handle_error()

    Refused(closed_port)
    asyncore.loop(timeout=5)
    assert events == ["connect", "error"]


def test_handle_error_logs_and_closes(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    class Broken(asyncore.dispatcher):
        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            raise ZeroDivisionError("boom")

    a, b = socket.socketpair()
    try:
        broken = Broken(a)
        b.sendall(b"x")
        asyncore.loop(timeout=5)
        assert broken.socket.fileno() == -1
        out = capsys.readouterr().out
        assert "error: uncaptured python exception, closing channel <" in out
        assert "(<class 'ZeroDivisionError'>:boom [" in out
        assert "|handle_read|" in out
    finally:
        b.close()


def test_exceptions_that_leave_the_loop(engine: Engine) -> None:
    class Exiting(asyncore.dispatcher):
        exc: BaseException = asyncore.ExitNow("bye")

        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            raise self.exc

    class BadPredicate(asyncore.dispatcher):
        def readable(self) -> bool:
            raise ValueError("predicate")

    class BadHandleError(Exiting):
        exc = RuntimeError("first")

        def handle_error(self) -> None:
            raise KeyError("second")

    for cls, expected in ((Exiting, asyncore.ExitNow), (BadHandleError, KeyError)):
        a, b = socket.socketpair()
        b.sendall(b"x")
        d = cls(a)
        with pytest.raises(expected):
            asyncore.loop(timeout=5)
        d.close()
        b.close()
    a, b = socket.socketpair()
    d = BadPredicate(a)
    with pytest.raises(ValueError, match="predicate"):
        asyncore.loop(timeout=5)
    d.close()
    b.close()


def test_dispatcher_send_recv_errors(engine: Engine) -> None:
    closed: list[str] = []

    class D(asyncore.dispatcher):
        def handle_close(self) -> None:
            closed.append("closed")
            self.close()

    a, b = socket.socketpair()
    d = D(a)
    b.close()
    assert d.recv(10) == b""
    assert closed == ["closed"]
    a, b = socket.socketpair()
    d = D(a)
    b.close()
    assert d.send(b"x" * 1_000_000) == 0  # EPIPE: the peer is gone
    assert closed == ["closed", "closed"]
    d.close()


def test_dispatcher_with_send_to_a_peer_that_left(engine: Engine) -> None:
    """Its send keeps what the socket refused and closes, as dispatcher.send does."""
    closed: list[int] = []

    class D(asyncore.dispatcher_with_send):
        def handle_close(self) -> None:
            closed.append(len(self.out_buffer))
            self.close()

    a, b = socket.socketpair()
    d = D(a)
    b.close()
    d.send(b"x" * 100_000)
    assert closed == [100_000] and d.out_buffer == b"x" * 100_000
    blocked, peer = socket.socketpair()
    d = D(blocked)
    d.send(b"y" * 10_000_000)  # more than the socket takes: the rest waits, no error
    for _ in range(1000):  # until the socket would block (EWOULDBLOCK: 0 sent)
        before = len(d.out_buffer)
        d.initiate_send()
        if len(d.out_buffer) == before:
            break
    assert closed == [100_000] and 0 < len(d.out_buffer) == before < 10_000_000
    d.close()
    peer.close()


def test_file_dispatcher_reads_a_pipe(engine: Engine) -> None:
    got: list[bytes] = []
    read_end, write_end = os.pipe()

    class PipeReader(asyncore.file_dispatcher):
        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            data = self.recv(100)
            got.append(data)
            if data.endswith(b"!"):
                self.close()

    PipeReader(read_end)
    os.close(read_end)
    os.write(write_end, b"hello!")
    asyncore.loop(timeout=5)
    os.close(write_end)
    assert got == [b"hello!"]
    wrapper = asyncore.file_wrapper(0)
    assert wrapper.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    with pytest.raises(NotImplementedError):
        wrapper.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    wrapper.close()
    wrapper.close()


def test_compact_traceback_and_close_all(engine: Engine) -> None:
    with pytest.raises(AssertionError):
        asyncore.compact_traceback()
    try:
        raise OSError("x")
    except OSError:
        (_file, function, line), kind, _value, info = asyncore.compact_traceback()
    assert function == "test_compact_traceback_and_close_all" and kind is OSError
    assert info.startswith("[") and line.isdigit()
    pairs = [socket.socketpair() for _ in range(3)]
    for a, _ in pairs:
        asyncore.dispatcher(a)
    assert len(asyncore.socket_map) == 3
    asyncore.close_all()
    assert asyncore.socket_map == {}
    assert all(a.fileno() == -1 for a, _ in pairs)
    for _, b in pairs:
        b.close()


def test_loop_calls_an_overridden_handle_read_event(engine: Engine) -> None:
    """The driver calls ``handle_read`` itself only for asyncore's own handle_read_event."""
    seen: list[bytes] = []

    class Custom(asyncore.dispatcher):
        def writable(self) -> bool:
            return False

        def handle_read_event(self) -> None:
            seen.append(self.recv(10))
            raise asyncore.ExitNow("read")

        def handle_read(self) -> None:
            raise AssertionError("handle_read_event was bypassed")

    a, b = socket.socketpair()
    try:
        Custom(a)
        b.sendall(b"x")
        with pytest.raises(asyncore.ExitNow):
            asyncore.loop(timeout=0.1, count=50)
        assert seen == [b"x"]
    finally:
        b.close()


def test_predicates_assigned_on_the_instance_are_asked(engine: Engine) -> None:
    """``d.readable = ...`` on a dispatcher whose class keeps asyncore's own is honoured (the
    driver takes a class's known predicates as read only while the instance has none)."""
    seen: list[str] = []
    a, b = socket.socketpair()
    try:
        d = EchoHandler(a)
        d.readable = lambda: False  # type: ignore[method-assign]
        b.sendall(b"held")
        asyncore.loop(timeout=0.01, count=3)
        b.setblocking(False)
        with pytest.raises(BlockingIOError):  # not read, so not echoed
            b.recv(10)
        b.setblocking(True)
        d.readable = lambda: True  # type: ignore[method-assign]
        asyncore.loop(timeout=0.01, count=3)
        assert b.recv(10) == b"held"
        d.writable = lambda: True  # type: ignore[method-assign]
        d.handle_write = lambda: seen.append("write")  # type: ignore[method-assign]
        asyncore.loop(timeout=0.01, count=1)
        assert seen == ["write"]
    finally:
        b.close()


def test_readwrite_flags(engine: Engine) -> None:
    seen: list[str] = []

    class Recorder(asyncore.dispatcher):
        connected = True

        def handle_read_event(self) -> None:
            seen.append("read")

        def handle_write_event(self) -> None:
            seen.append("write")

        def handle_expt_event(self) -> None:
            seen.append("expt")

        def handle_close(self) -> None:
            seen.append("close")

    r = Recorder()
    asyncore.readwrite(r, 0x001 | 0x004 | 0x002 | 0x010)
    assert seen == ["read", "write", "expt", "close"]
    asyncore.read(r)
    asyncore.write(r)
    assert seen[-2:] == ["read", "write"]


def test_many_concurrent_dispatchers(engine: Engine) -> None:
    """5,000 connections at once: beyond select()'s 1,024-descriptor limit."""
    resource = pytest.importorskip("resource")
    wanted = 5_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * wanted + 200
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    server = EchoServer(backlog=4096)

    def clients() -> int:
        socks = []
        try:
            socks.extend(
                socket.create_connection(("127.0.0.1", server.port), timeout=10)
                for _ in range(wanted)
            )
            for i, sock in enumerate(socks):
                sock.sendall(b"%05d" % i)
            served = 0
            for i, sock in enumerate(socks):
                data = b""
                while len(data) < 5:
                    chunk = sock.recv(5 - len(data))
                    assert chunk
                    data += chunk
                served += data == b"%05d" % i
            return served
        finally:
            for sock in socks:
                sock.close()

    assert engine.serve(clients, timeout=60) == wanted
    assert len(asyncore.socket_map) <= wanted + 1


def test_driver_drops_stale_registrations_on_fd_reuse(engine: Engine) -> None:
    """A dispatcher closed and its descriptor number reused at once: the new one is watched."""
    got: list[bytes] = []

    class Reader(asyncore.dispatcher):
        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            got.append(self.recv(10))
            self.close()

    a, b = socket.socketpair()
    first = Reader(a)
    asyncore.loop(timeout=0.01, count=1)
    fd = first.socket.fileno()
    first.close()
    c, d = socket.socketpair()
    assert fd in (c.fileno(), d.fileno())
    second = Reader(c if c.fileno() == fd else d)
    (d if c.fileno() == fd else c).sendall(b"again")
    asyncore.loop(timeout=5)
    assert got == [b"again"]
    for sock in (b, c, d):
        sock.close()
    assert second.socket.fileno() == -1
    assert not shared.DRIVERS


def test_set_reuse_addr_and_errno_names(engine: Engine) -> None:
    d = asyncore.dispatcher()
    d.create_socket()
    d.set_reuse_addr()
    assert d.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    assert asyncore.EWOULDBLOCK == errno.EWOULDBLOCK
    d.close()


def test_loop_refuses_to_nest_in_a_running_loop(engine: Engine, run: Any) -> None:
    a, b = socket.socketpair()
    asyncore.dispatcher(a)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="loop_async"):
            asyncore.loop(count=1)

    run(main())
    b.close()


@pytest.mark.parametrize("count", [False, True], ids=["forever", "count"])
def test_maps_of_one_thread_share_its_loop(engine: Engine, count: bool) -> None:
    """A map that was run on this thread and is not empty is served while another map's
    loop() runs (both are on the thread's engine loop)."""
    first, second = engine.map(), engine.map()
    server_a, server_b = EchoServer(map=first), EchoServer(map=second)
    asyncore.loop(timeout=0.01, map=first, count=1)

    def client() -> tuple[bytes, bytes]:
        return echo_once(server_a.port, b"first"), echo_once(server_b.port, b"second")

    assert engine.serve(client, map=second, count=count) == (b"first", b"second")


def test_loop_refuses_to_nest_in_a_handler(engine: Engine) -> None:
    private = engine.map()
    errors: list[BaseException] = []

    class Nester(asyncore.dispatcher):
        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            self.recv(10)
            try:
                asyncore.loop(timeout=0.01, map=private, count=1)
            except RuntimeError as exc:
                errors.append(exc)
            raise asyncore.ExitNow("done")

    a, b = socket.socketpair()
    Nester(a, map=private)
    b.sendall(b"x")
    with pytest.raises(asyncore.ExitNow):
        asyncore.loop(timeout=1.0, map=private)
    b.close()
    assert len(errors) == 1 and "nested" in str(errors[0])
