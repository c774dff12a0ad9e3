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
from portside._asyncore import poller as poller_module
from portside._asyncore.poller import EPOLLIN, EPOLLOUT, POLLNVAL, new_poller, watch

from .conftest import Engine

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="the twin is Linux's")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


class Refuse:
    """Stands in for the poll() twin where the test says it must not be waited on."""

    def poll(self, *args: Any) -> None:
        raise AssertionError("waited on the poll() twin")


def test_wait_sees_what_epoll_sees(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    p = new_poller()
    watch(p, a.fileno(), 0, EPOLLIN)
    assert p.wait(0, 16) == p.poll(0, 16) == []
    b.send(b"x")
    assert p.wait(0, 16) == p.poll(0, 16) == [(a.fileno(), EPOLLIN)]
    watch(p, a.fileno(), EPOLLIN, EPOLLIN | EPOLLOUT)
    assert p.wait(0, 16) == p.poll(0, 16) == [(a.fileno(), EPOLLIN | EPOLLOUT)]
    watch(p, a.fileno(), EPOLLIN | EPOLLOUT, 0)
    assert p.wait(0, 16) == p.poll(0, 16) == []
    p.close()


def test_wait_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    p = new_poller()
    watch(p, pair[0].fileno(), 0, EPOLLIN)
    started = time.monotonic()
    assert p.wait(0.05, 16) == []
    assert time.monotonic() - started >= 0.05
    p.close()


def test_past_small_wait_is_epoll(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    p = new_poller()
    watch(p, a.fileno(), 0, EPOLLIN)
    watch(p, b.fileno(), 0, EPOLLIN)
    monkeypatch.setattr(poller_module, "SMALL", 1)
    monkeypatch.setattr(p, "_twin", Refuse())
    b.send(b"x")
    assert p.wait(0, 16) == [(a.fileno(), EPOLLIN)]
    p.close()


def test_a_regular_file_is_refused_by_both() -> None:
    p = new_poller()
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError):
            watch(p, f.fileno(), 0, EPOLLIN)
        assert p.wait(0, 16) == []
    p.close()


def test_a_descriptor_closed_while_watched_is_reported_once_dropped() -> None:
    a, b = socket.socketpair()
    p = new_poller()
    fd = a.fileno()
    watch(p, fd, 0, EPOLLIN)
    a.close()
    assert p.poll(0, 16) == []  # epoll forgets it by itself
    assert p.wait(0, 16) == [(fd, POLLNVAL)]  # poll() says so
    p.drop(fd)
    assert p.wait(0, 16) == []
    b.close()
    p.close()


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
