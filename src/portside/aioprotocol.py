"""Serving plain ``asyncio.Protocol`` factories on the engine.

The user's protocol sees this connection as its transport (the ``asyncio.Transport``
methods), so its writes are counted, flow control reaches its ``pause_writing`` /
``resume_writing``, and an exception it raises closes only its own connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from portside.core.connection import Connection, ConnectionOwner

__all__ = ["ProtocolConnection"]


class ProtocolConnection(Connection):
    """Runs one ``asyncio.Protocol`` (or ``BufferedProtocol``) as the engine's connection."""

    def __init__(self, owner: ConnectionOwner, peer: Any, protocol: asyncio.BaseProtocol) -> None:
        super().__init__(owner, peer)
        self.protocol = protocol
        self._bind_protocol(protocol)

    def _bind_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        # Received data goes straight to the protocol's own method: no forwarding per chunk.
        if isinstance(protocol, asyncio.BufferedProtocol):
            self._on_data = self._feed_buffered  # type: ignore[method-assign]
        elif isinstance(protocol, asyncio.Protocol):
            self._on_data = protocol.data_received  # type: ignore[method-assign]
        else:
            self._on_data = self._drop_data  # type: ignore[method-assign]

    @classmethod
    def factory(
        cls, make: Callable[[], asyncio.BaseProtocol]
    ) -> Callable[[ConnectionOwner, Any], Connection]:
        """The stream handler that serves a new ``make()`` protocol per connection."""
        return lambda owner, peer: cls(owner, peer, make())

    def _on_start(self) -> None:
        self.protocol.connection_made(self)  # type: ignore[arg-type]

    def _drop_data(self, data: bytes) -> None:
        """A protocol without ``data_received`` (a bare BaseProtocol) ignores what arrives."""

    def _feed_buffered(self, data: bytes) -> None:
        protocol = self.protocol
        assert isinstance(protocol, asyncio.BufferedProtocol)
        view = memoryview(data)
        while view:
            # Release our view of the protocol's buffer before buffer_updated, which may
            # resize it (a bytearray with a live export cannot be resized).
            with memoryview(protocol.get_buffer(len(view))) as exported, exported.cast("B") as buf:
                n = min(len(buf), len(view))
                if n == 0:
                    raise RuntimeError("get_buffer() returned an empty buffer")
                buf[:n] = view[:n]
            protocol.buffer_updated(n)
            view = view[n:]

    def _on_eof(self) -> bool | None:
        if isinstance(self.protocol, asyncio.Protocol | asyncio.BufferedProtocol):
            return self.protocol.eof_received()
        return None

    def _on_lost(self, exc: Exception | None) -> None:
        self.protocol.connection_lost(exc)

    def _on_pause_writing(self) -> None:
        self.protocol.pause_writing()

    def _on_resume_writing(self) -> None:
        self.protocol.resume_writing()

    # -- the asyncio.Transport surface the protocol uses -----------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport details (``peername``, ``sockname``, ``socket``, ``sslcontext``…)."""
        return self.transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        """True once the connection is closing or closed."""
        return self.closing or self.transport.is_closing()

    def is_reading(self) -> bool:
        """True unless reading is paused."""
        return self.transport.is_reading()

    def pause_reading(self) -> None:
        """Stop reading until :meth:`resume_reading`."""
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`."""
        self.transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Change this connection's water marks."""
        self.transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        """Bytes waiting to be sent."""
        return self.transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The (low, high) water marks."""
        return self.transport.get_write_buffer_limits()

    def can_write_eof(self) -> bool:
        """True when the transport can half-close."""
        return self.transport.can_write_eof()

    def write_eof(self) -> None:
        """Half-close after flushing."""
        self.transport.write_eof()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Switch to another protocol: later data and events go to it."""
        self.protocol = protocol
        self._bind_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol being served."""
        return self.protocol
