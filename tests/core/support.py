"""Engine-level test applications and clients shared by the core tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from portside.core import Connection, ConnectionOwner, Handlers

Address = Any


class Echo(Connection):
    """Writes back whatever arrives."""

    def _on_data(self, data: bytes) -> None:
        self.write(data)


class Events:
    """Futures a test can await instead of sleeping: one per connection started / lost."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[Connection] = asyncio.Queue()
        self.lost: asyncio.Queue[tuple[Connection, Exception | None]] = asyncio.Queue()


def echo_handlers(events: Events | None = None, cls: type[Connection] = Echo) -> Handlers:
    """Handlers serving ``cls`` connections, reporting to ``events`` when given."""

    def make(owner: ConnectionOwner, peer: Any) -> Connection:
        connection = cls(owner, peer)
        if events is not None:
            _report_to(connection, events)
        return connection

    return Handlers(stream=make, name="echo")


def _report_to(connection: Connection, events: Events) -> None:
    start, lost = connection._on_start, connection._on_lost

    def on_start() -> None:
        events.started.put_nowait(connection)
        start()

    def on_lost(exc: Exception | None) -> None:
        events.lost.put_nowait((connection, exc))
        lost(exc)

    connection._on_start = on_start  # type: ignore[method-assign]
    connection._on_lost = on_lost  # type: ignore[method-assign]


async def open_client(
    address: Address, **kwargs: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stdlib asyncio client to ``address`` (a ``(host, port, …)`` tuple or a Unix path)."""
    if isinstance(address, str):
        return await asyncio.open_unix_connection(address, **kwargs)
    return await asyncio.open_connection(address[0], address[1], **kwargs)


async def echo_roundtrip(address: Address, payload: bytes = b"ping", **kwargs: Any) -> bytes:
    """Send ``payload`` and read the same number of bytes back."""
    reader, writer = await open_client(address, **kwargs)
    try:
        writer.write(payload)
        return await reader.readexactly(len(payload))
    finally:
        writer.close()
        await writer.wait_closed()


def raw_socket(address: Address, family: int = socket.AF_INET) -> socket.socket:
    """A connected, non-blocking plain socket (for clients that misbehave on purpose)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.connect(address)
    sock.setblocking(False)
    return sock


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, yielding to the loop between checks.

    For state with no event to await (a kernel buffer filling); fails after ``timeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)
