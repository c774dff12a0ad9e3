"""Helpers for the file server tests: a running server and small raw clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from portside.config import Limits
from portside.core.server import Server
from portside.services.fileserver import FileServer, FileServerOptions

SMALL = b"small file contents\n"
MEDIUM = bytes(range(256)) * 1024  # 256 KiB: above the in-memory limit, so sent from disk


@contextlib.asynccontextmanager
async def serving(
    root: Path | str,
    *endpoints: str,
    limits: Limits | None = None,
    **options: Any,
) -> AsyncIterator[Server]:
    """Serve ``root`` on ``endpoints`` (default: a free loopback port) until the block ends."""
    app = FileServer(FileServerOptions(root=str(root), access_log=False), **options)
    server = Server(
        app.__portside_handlers__(), *(endpoints or ("tcp:0:interface=127.0.0.1",)), limits=limits
    )
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown(2.0)


def port_of(server: Server) -> int:
    """The TCP port of the server's first endpoint."""
    return int(server.addresses[0][1])


async def exchange(
    port: int, data: bytes, *, until_close: bool = True, timeout: float = 5
) -> bytes:
    """Send raw ``data`` and return what comes back (until the server closes, by default)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        if until_close:
            return await asyncio.wait_for(reader.read(-1), timeout)
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def status_of(response: bytes) -> int:
    """The status code of a raw response."""
    return int(response.split(b" ", 2)[1])
