"""Listening ports the reactor opens: an engine :class:`~portside.core.server.Server` each.

A port is bound when it is made (so ``getHost()`` answers and a taken port fails at once) and
starts accepting as soon as a loop runs. ``stopListening()`` closes the listening socket only:
connections already accepted keep going until they end or the reactor stops.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Generator
from typing import Any, Literal

from portside.config import Limits
from portside.core.endpoints import Endpoint
from portside.core.server import Handlers, Server
from portside.internet.address import IPv4Address, IPv6Address, UNIXAddress, from_sockaddr

__all__ = ["ContextServer", "ListeningPort"]


class ContextServer(Server):
    """A server whose TLS context comes ready-made (``listenSSL``'s ``contextFactory``)."""

    def __init__(
        self,
        handlers: Handlers,
        endpoint: Endpoint,
        context: ssl.SSLContext,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(handlers, endpoint, limits=limits)
        self._ready_context = context

    def bind(self) -> None:
        super().bind()
        # The engine builds contexts from endpoint files; ours is given, so it replaces theirs.
        self._contexts[:] = [self._ready_context] * len(self._contexts)


class ListeningPort:
    """A listening TCP, TLS, Unix or UDP port: ``getHost()`` and ``stopListening()``.

    ``factory`` is what it serves (a ``Factory``, or the ``DatagramProtocol`` for UDP). The
    port is awaitable and gives itself, so ``port = await endpoint.listen(factory)`` keeps
    working when ``listen`` returns a Deferred (as Twisted's does) instead of the port.
    """

    def __init__(
        self,
        server: Server,
        factory: Any,
        kind: Literal["TCP", "UDP"],
        stopped: Callable[[], None] | None = None,
    ) -> None:
        self.server = server
        self.factory = factory
        self.listening = True
        self._kind: Literal["TCP", "UDP"] = kind
        self._stopped = stopped

    def getHost(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """The address the port is bound to (with the real port number for port 0)."""
        return from_sockaddr(self.server.addresses[0], self._kind)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin accepting on ``loop`` (the reactor calls this once a loop runs)."""
        if self.listening:
            loop.create_task(self._start()).add_done_callback(self._started)

    async def _start(self) -> None:
        if self.listening:  # stopListening may have come first
            await self.server.start()

    def _started(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.server.owner.report_error(f"{self!r} failed to start", task.exception())

    def stopListening(self) -> None:
        """Stop accepting and close the listening socket; open connections are untouched.

        The factory's ``doStop`` runs now. Returns None (Twisted allows None or a Deferred).
        """
        if not self.listening:
            return
        self.listening = False
        self.server.stop_accepting()
        if self._stopped is not None:
            try:
                self._stopped()
            except Exception as exc:
                self.server.owner.report_error(f"{self!r}: error while stopping", exc)

    @property
    def finished(self) -> bool:
        """True once the port stopped listening and its last connection closed."""
        return not self.listening and not self.server.owner.live

    def __await__(self) -> Generator[Any, None, ListeningPort]:
        return self._itself().__await__()

    async def _itself(self) -> ListeningPort:
        return self

    def __repr__(self) -> str:
        where = self.server.addresses[0] if self.server.addresses else "?"
        if isinstance(where, tuple):
            where = where[1]
        return f"<ListeningPort of {type(self.factory).__name__} on {where}>"
