"""Hostile peers and broken application code: contained, counted, logged once, never fatal."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

import pytest

from portside.core import Connection, ConnectionOwner, Server

from .support import Echo, Events, echo_handlers, echo_roundtrip, open_client, raw_socket


class Streamer(Connection):
    """Streams forever, as fast as the peer reads."""

    def __init__(self, owner: ConnectionOwner, peer: Any) -> None:
        super().__init__(owner, peer)
        self.lost: Exception | None = None

    def _on_start(self) -> None:
        self._produce()

    def _on_resume_writing(self) -> None:
        self._produce()

    def _produce(self) -> None:
        while not self.writing_paused and not self.closing:
            self.write(b"z" * 65536)

    def _on_lost(self, exc: Exception | None) -> None:
        self.lost = exc


def test_client_reset_while_the_server_streams(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        events = Events()
        async with Server(echo_handlers(events, cls=Streamer), "tcp:0:interface=127.0.0.1") as s:
            loop = asyncio.get_running_loop()
            client = raw_socket(s.addresses[0])
            streamer = await events.started.get()
            assert await loop.sock_recv(client, 65536)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # RST, with the server's data still in flight
            connection, exc = await events.lost.get()
            assert connection is streamer
            assert isinstance(exc, ConnectionError)
            assert not s.owner.live
            stats = s.statistics()
            assert (stats.connection_errors, stats.errors) == (1, 0)
            assert stats.bytes_sent > 0
            assert await echo_roundtrip(s.addresses[0], b"") == b""  # still accepting

    with caplog.at_level(logging.ERROR):
        run(main())
    assert not caplog.records, "a peer's reset is not an error of ours"


class Exploding(Echo):
    def _on_data(self, data: bytes) -> None:
        if b"boom" in data:
            raise ValueError("application bug")
        super()._on_data(data)


def test_application_error_aborts_only_its_connection(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        events = Events()
        async with Server(echo_handlers(events, cls=Exploding), "tcp:0:interface=127.0.0.1") as s:
            good_reader, good = await open_client(s.addresses[0])
            bad_reader, bad = await open_client(s.addresses[0])
            bad.write(b"boom")
            bad.write(b"boom again")
            try:
                assert await bad_reader.read() == b""
            except ConnectionResetError:
                pass
            good.write(b"still here")
            assert await good_reader.readexactly(10) == b"still here"
            assert await echo_roundtrip(s.addresses[0]) == b"ping"
            for _ in range(2):  # the exploded connection and the round trip
                await events.lost.get()
            assert s.statistics().errors == 1
            assert len(s.owner.live) == 1
            good.close()
            bad.close()

    with caplog.at_level(logging.ERROR, "portside"):
        run(main())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "Exploding" in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is ValueError


class FailsAtStart(Echo):
    def _on_start(self) -> None:
        raise RuntimeError("cannot start")


class FailsWhenLost(Echo):
    def _on_lost(self, exc: Exception | None) -> None:
        raise RuntimeError("cannot clean up")


class FailsAtEOF(Echo):
    def _on_eof(self) -> bool | None:
        raise RuntimeError("cannot handle EOF")


@pytest.mark.parametrize("cls", [FailsAtStart, FailsWhenLost, FailsAtEOF])
def test_errors_in_other_callbacks_are_contained(
    run: Any, cls: type[Connection], caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        events = Events()
        async with Server(echo_handlers(events, cls=cls), "tcp:0:interface=127.0.0.1") as s:
            _, writer = await open_client(s.addresses[0])
            if cls is FailsAtEOF:
                writer.write_eof()
            elif cls is FailsWhenLost:
                writer.close()
            await events.lost.get()
            assert s.statistics().errors == 1
            assert not s.owner.live
            writer.close()

    with caplog.at_level(logging.ERROR, "portside"):
        run(main())
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


class CloseOnResume(Connection):
    """Writes more than the high-water mark, then closes from resume_writing."""

    SIZE = 8 * 1024 * 1024  # more than the kernel's socket buffers hold

    def _on_start(self) -> None:
        self.write(b"r" * self.SIZE)

    def _on_resume_writing(self) -> None:
        self.close()


def test_closing_from_resume_writing(run: Any) -> None:
    async def main() -> None:
        events = Events()
        async with Server(
            echo_handlers(events, cls=CloseOnResume), "tcp:0:interface=127.0.0.1"
        ) as s:
            reader, writer = await open_client(s.addresses[0])
            connection = await events.started.get()
            assert connection.writing_paused
            assert len(await reader.read()) == CloseOnResume.SIZE
            _, exc = await events.lost.get()
            assert exc is None
            writer.close()

    for _ in range(2):
        run(main())
