"""Serving ``async def handler(reader, writer)`` functions, as ``asyncio.start_server`` does.

Each connection gets an ``asyncio.StreamReader`` and ``StreamWriter``; the writer is closed
when the handler returns, and an exception from the handler is logged and closes only that
connection. ``await writer.drain()`` honours the engine's write-buffer water marks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from portside.aioprotocol import ProtocolConnection
from portside.core.connection import Connection, ConnectionOwner

__all__ = ["StreamHandler", "stream_factory"]

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

# asyncio's own default: a line or readuntil() separator must arrive within 64 KiB.
STREAM_LIMIT = 2**16


def stream_factory(
    handler: StreamHandler, *, limit: int = STREAM_LIMIT
) -> Callable[[ConnectionOwner, Any], Connection]:
    """The stream handler that runs ``handler(reader, writer)`` once per connection."""

    def make(owner: ConnectionOwner, peer: Any) -> Connection:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                owner.counters.connection_errors += 1
            except Exception as exc:
                owner.report_error(
                    f"stream handler {getattr(handler, '__qualname__', handler)!r} failed", exc
                )
                writer.transport.abort()
            finally:
                writer.close()

        reader = asyncio.StreamReader(limit=limit)
        return ProtocolConnection(owner, peer, asyncio.StreamReaderProtocol(reader, run))

    return make
