"""Fixtures for the asyncore/asynchat/smtpd doors: an engine loop per test, a way to run the
blocking ``asyncore.loop()`` while a client works in a thread, and a clean map afterwards."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from portside import asyncore
from portside._asyncore import running, shared

T = TypeVar("T")


class Engine:
    """The loop kind under test and helpers that run maps with it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.maps: list[dict[int, Any]] = [asyncore.socket_map]

    def map(self) -> dict[int, Any]:
        """A private map, closed after the test."""
        new: dict[int, Any] = {}
        self.maps.append(new)
        return new

    def serve(
        self,
        client: Callable[[], T],
        map: dict[int, Any] | None = None,
        timeout: float = 20.0,
        count: bool = False,
    ) -> T:
        """Run ``client()`` in a thread while ``asyncore.loop()`` serves ``map`` here; return
        what the client returned (or raise what it raised).

        The loop runs until the client is done: the client thread then writes to a pipe that
        a ``file_dispatcher`` in the map watches, which raises ExitNow. With ``count`` the loop
        runs as repeated ``loop(count=1)`` calls instead.
        """
        target = asyncore.socket_map if map is None else map
        result: dict[str, Any] = {}
        read_end, write_end = os.pipe()
        stopper = _Stopper(read_end, target)
        os.close(read_end)

        def run_client() -> None:
            try:
                result["value"] = client()
            except BaseException as exc:
                result["error"] = exc
            finally:
                os.write(write_end, b"x")

        thread = threading.Thread(target=run_client, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        try:
            if count:
                while True:
                    assert time.monotonic() < deadline, "client did not finish in time"
                    try:
                        asyncore.loop(timeout=0.05, map=target, count=1)
                    except asyncore.ExitNow:
                        break
            else:
                watchdog = threading.Timer(timeout, os.write, (write_end, b"t"))
                watchdog.start()
                try:
                    with pytest.raises(asyncore.ExitNow):
                        asyncore.loop(timeout=1.0, map=target)
                finally:
                    watchdog.cancel()
                assert not stopper.timed_out, "client did not finish in time"
        finally:
            thread.join(timeout)
            os.close(write_end)
            stopper.close()
        if "error" in result:
            raise result["error"]
        return result["value"]  # type: ignore[no-any-return]


class _Stopper(asyncore.file_dispatcher):
    timed_out = False

    def writable(self) -> bool:
        return False

    def handle_read(self) -> None:
        data = self.recv(16)
        self.timed_out = b"t" in data
        self.close()
        raise asyncore.ExitNow("client finished")


@pytest.fixture
def engine(loop_kind: str) -> Iterator[Engine]:
    """asyncore running on ``loop_kind``; every map is closed after the test."""
    previous = running.loop_kind()
    asyncore.use_loop(loop_kind)
    state = Engine(loop_kind)
    try:
        yield state
    finally:
        for map in state.maps:
            asyncore.close_all(map, ignore_all=True)
        asyncore.use_loop(previous)
        assert not shared.DRIVERS, f"drivers left behind: {shared.DRIVERS}"
