"""The map poller: epoll, and the poll() twin that a blocking loop waits on while it is small."""

from __future__ import annotations

import select
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from portside import asyncore
from portside._asyncore import driver as driver_module
from portside._asyncore import shared
from portside._asyncore.poller import EPOLLIN, EPOLLOUT, POLLNVAL, new_poller, watch

from .conftest import Engine

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="the twin is Linux's")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_poll_all_sees_what_epoll_sees(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    p = new_poller()
    assert p.poll_all is not None
    watch(p, a.fileno(), 0, EPOLLIN)
    assert p.poll_all(0) == p.poll(0, 16) == []
    b.send(b"x")
    assert p.poll_all(0) == p.poll(0, 16) == [(a.fileno(), EPOLLIN)]
    watch(p, a.fileno(), EPOLLIN, EPOLLIN | EPOLLOUT)
    assert p.poll_all(0) == p.poll(0, 16) == [(a.fileno(), EPOLLIN | EPOLLOUT)]
    watch(p, a.fileno(), EPOLLIN | EPOLLOUT, 0)
    assert p.poll_all(0) == p.poll(0, 16) == []
    p.close()


def test_a_regular_file_is_refused_by_both() -> None:
    p = new_poller()
    assert p.poll_all is not None
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError):
            watch(p, f.fileno(), 0, EPOLLIN)
        assert p.poll_all(0) == []
    p.close()


def test_a_descriptor_closed_while_watched_is_reported_until_dropped() -> None:
    a, b = socket.socketpair()
    p = new_poller()
    assert p.poll_all is not None
    fd = a.fileno()
    watch(p, fd, 0, EPOLLIN)
    a.close()
    assert p.poll(0, 16) == []  # epoll forgets it by itself
    assert p.poll_all(0) == [(fd, POLLNVAL)]  # poll() says so
    p.drop(fd)
    assert p.poll_all(0) == []
    watch(p, fd, EPOLLIN, 0)  # and unregistering it later is no error
    b.close()
    p.close()


class Waits:
    """Records which of a driver's pollers each wait went to."""

    def __init__(self, driver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[str] = []
        real = driver.poller
        test = self

        class Spy:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def poll(self, timeout: float, maxevents: int) -> list[tuple[int, int]]:
                test.seen.append("epoll")
                return real.poll(timeout, maxevents)

            def poll_all(self, timeout: float) -> list[tuple[int, int]]:
                test.seen.append("poll")
                assert real.poll_all is not None
                return real.poll_all(timeout)

        monkeypatch.setattr(driver, "poller", Spy())


def test_the_driver_waits_with_poll_while_most_are_ready(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy: most watched descriptors ready, the next wait is a poll(). Few ready (or more
    than POLL_ALL_MAX watched): epoll. Events are delivered the same either way."""
    got: list[bytes] = []

    class Reader(asyncore.dispatcher):
        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            got.append(self.recv(10))

    pairs = [socket.socketpair() for _ in range(4)]
    for a, _ in pairs:
        Reader(a)
    asyncore.loop(timeout=0.01, count=1)
    waits = Waits(shared.DRIVERS[id(asyncore.socket_map)], monkeypatch)

    def send(data: bytes, to: list[tuple[socket.socket, socket.socket]] = pairs) -> None:
        for _, b in to:
            b.send(data)
        asyncore.loop(timeout=0.01, count=1)

    send(b"x")  # four of four ready: the next wait is poll()
    send(b"y")  # and the one after
    send(b"w", pairs[:1])  # one of four ready: the next is epoll
    asyncore.loop(timeout=0.01, count=1)
    monkeypatch.setattr(driver_module, "POLL_ALL_MAX", 3)
    send(b"z")  # four ready, but more watched than POLL_ALL_MAX: epoll
    send(b"v")
    assert waits.seen == ["epoll", "poll", "poll", "epoll", "epoll", "epoll"]
    assert got == [b"x"] * 4 + [b"y"] * 4 + [b"w"] + [b"z"] * 4 + [b"v"] * 4
    asyncore.close_all()
    for _, b in pairs:
        b.close()


def test_a_socket_closed_behind_the_map_is_no_event(engine: Engine) -> None:
    """A dispatcher whose socket was closed by hand, not through close(): nothing is delivered
    and each iteration waits its timeout, as when epoll forgets the descriptor by itself."""
    calls: list[str] = []

    class Quiet(asyncore.dispatcher):
        def handle_read(self) -> None:
            calls.append("read")

        def handle_write(self) -> None:
            calls.append("write")

        def handle_close(self) -> None:
            calls.append("close")

    a, b = socket.socketpair()
    d = Quiet(a)
    asyncore.loop(timeout=0.01, count=1)
    assert calls == ["write"]
    a.close()
    started = time.monotonic()
    asyncore.loop(timeout=0.02, count=3)
    assert time.monotonic() - started >= 0.05  # three timeouts waited out, no spin
    assert calls == ["write"]
    b.close()
    d.close()
