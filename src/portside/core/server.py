"""A server: endpoints bound to handlers under one set of limits, with a graceful shutdown.

Lifecycle::

    bind (sync: ports are taken or an error names the endpoint)
      -> start (accepting on the running loop)
      -> shutdown: stop accepting -> each connection's begin_shutdown (finish the exchange)
                   -> wait until all are closed or the deadline passes -> abort the rest
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portside.config import Limits
from portside.core.connection import Connection, ConnectionOwner
from portside.core.datagram import DatagramConnection
from portside.core.endpoints import Endpoint, TCPEndpoint, parse_endpoint
from portside.core.listeners import BoundSocket, StreamListener, bind
from portside.core.metrics import Statistics
from portside.core.tls import server_context
from portside.errors import EndpointError

__all__ = ["Handlers", "Server"]

log = logging.getLogger("portside")

StreamFactory = Callable[[ConnectionOwner, Any], Connection | None]
DatagramFactory = Callable[[ConnectionOwner], DatagramConnection]


@dataclass(frozen=True, slots=True)
class Handlers:
    """What a server runs: a connection per accepted stream, an endpoint per datagram socket.

    ``stream(owner, peer)`` builds the connection for a peer address (or returns None to
    refuse it); ``datagram(owner)`` builds the protocol for one datagram socket. Either may be
    None when the application does not speak that kind of transport. ``started()`` and
    ``stopped()`` are called once per endpoint as it starts and stops listening (Twisted's
    ``Factory.doStart``/``doStop``).
    """

    stream: StreamFactory | None = None
    datagram: DatagramFactory | None = None
    name: str = "server"
    started: Callable[[], None] | None = None
    stopped: Callable[[], None] | None = None


class Server:
    """Serves ``handlers`` on one or more endpoints under one :class:`~portside.Limits`."""

    def __init__(
        self, handlers: Handlers, *endpoints: Endpoint | str, limits: Limits | None = None
    ) -> None:
        if not endpoints:
            raise ValueError("a server needs at least one endpoint")
        self.handlers = handlers
        self.endpoints = [parse_endpoint(e) if isinstance(e, str) else e for e in endpoints]
        self.owner = ConnectionOwner(limits)
        self._bound: list[BoundSocket] = []
        self._contexts: list[ssl.SSLContext | None] = []
        self._listeners: list[StreamListener] = []
        self._datagrams: list[DatagramConnection] = []
        self._started = False
        self._listening = 0
        self._shutdown_started = False
        self._done: asyncio.Event | None = None

    @property
    def limits(self) -> Limits:
        """The limits every connection of this server lives under."""
        return self.owner.limits

    @property
    def addresses(self) -> list[Any]:
        """The bound addresses, in endpoint order (``tcp:0`` reports the port it got).

        Empty before :meth:`bind`; still reported after the server stopped accepting.
        """
        return [bound.address for bound in self._bound]

    def bind(self) -> None:
        """Bind every endpoint now; on any failure, release the ones already bound and raise.

        TLS certificates are loaded first, so a missing file fails before any port is taken.
        """
        if self._shutdown_started:
            raise RuntimeError("this server was shut down; make a new one")
        if self._bound:
            return
        try:
            for endpoint in self.endpoints:
                tls = endpoint.tls if isinstance(endpoint, TCPEndpoint) else None
                context = server_context(endpoint.description, tls) if tls else None
                bound = bind(endpoint)
                self._bound.append(bound)
                self._contexts.append(context)
                self._check_handled(bound)
        except BaseException:
            for bound in self._bound:
                bound.close()
            self._bound.clear()
            self._contexts.clear()
            raise

    def _check_handled(self, bound: BoundSocket) -> None:
        if bound.is_stream and self.handlers.stream is None:
            raise EndpointError(bound.description, "type", f"{self.handlers.name} only speaks UDP")
        if not bound.is_stream and self.handlers.datagram is None:
            raise EndpointError(
                bound.description, "type", f"{self.handlers.name} does not speak UDP"
            )

    async def start(self) -> None:
        """Bind (if not yet bound) and start serving on the running loop."""
        if self._started:
            return
        self.bind()
        self._started = True
        self._done = asyncio.Event()
        try:
            await self._start_listening()
        except BaseException:
            self.stop_accepting()
            raise
        for bound in self._bound:
            log.info("%s listening on %s", self.handlers.name, _describe(bound))

    async def _start_listening(self) -> None:
        loop = asyncio.get_running_loop()
        owner, handlers = self.owner, self.handlers
        for bound, context in zip(self._bound, self._contexts, strict=True):
            if bound.is_stream:
                stream = handlers.stream
                assert stream is not None
                listener = StreamListener(bound, owner, functools.partial(stream, owner), context)
                listener.start(loop)
                self._listeners.append(listener)
            else:
                datagram = handlers.datagram
                assert datagram is not None
                _, protocol = await loop.create_datagram_endpoint(
                    functools.partial(datagram, owner), sock=bound.sock
                )
                self._datagrams.append(protocol)
            self._listening += 1
            if handlers.started is not None:
                handlers.started()

    def statistics(self) -> Statistics:
        """A snapshot of this server's counters."""
        owner = self.owner
        counters = owner.counters
        live = list(owner.live)
        return counters.snapshot(
            len(live),
            counters.bytes_received + sum(c.bytes_received for c in live),
            counters.bytes_sent + sum(c.bytes_sent for c in live),
        )

    def stop_accepting(self) -> None:
        """Close the listening sockets; connections already open keep being served."""
        for listener in self._listeners:
            listener.close()
        for datagram in self._datagrams:
            datagram.close()
        for bound in self._bound:
            bound.close()
        stopped, self._listening = self._listening, 0
        if self.handlers.stopped is None:
            return
        for _ in range(stopped):
            try:
                self.handlers.stopped()
            except Exception as exc:
                self.owner.report_error(f"{self.handlers.name}: error while stopping", exc)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop gracefully: stop accepting, let connections finish, abort the rest at the deadline.

        ``timeout`` defaults to ``limits.shutdown_timeout``. Calling it again waits for the
        first call to finish.
        """
        if self._shutdown_started:
            if self._done is not None:
                await self._done.wait()
            return
        self._shutdown_started = True
        deadline = self.limits.shutdown_timeout if timeout is None else timeout
        self.stop_accepting()
        self._cancel_handshakes()
        for connection in list(self.owner.live):
            try:
                connection.begin_shutdown()
            except Exception as exc:
                self.owner.report_error(
                    f"{type(connection).__name__}: error in begin_shutdown", exc
                )
                connection.abort()
        try:
            await asyncio.wait_for(self.owner.wait_empty(), deadline)
        except TimeoutError:
            log.warning(
                "%s: %d connection(s) still open after %.1fs; aborting them",
                self.handlers.name,
                len(self.owner.live),
                deadline,
            )
            self.force()
            await self.owner.wait_empty()
        for listener in self._listeners:
            await listener.wait_handshakes()
        self.owner.stop_sweeping()
        if self._done is not None:
            self._done.set()

    def force(self) -> None:
        """Abort every open connection now (the second Ctrl-C)."""
        self.stop_accepting()
        self._cancel_handshakes()
        for connection in list(self.owner.live):
            connection.abort()

    def _cancel_handshakes(self) -> None:
        for listener in self._listeners:
            listener.cancel_handshakes()

    async def serve_forever(self) -> None:
        """Start if needed, then wait until :meth:`shutdown` has finished."""
        await self.start()
        assert self._done is not None
        await self._done.wait()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()


def _describe(bound: BoundSocket) -> str:
    address = bound.address
    kind = bound.description.split(":", 1)[0].rstrip("6") if bound.is_stream else "udp"
    if isinstance(address, bytes):  # an abstract-namespace Unix socket (Linux), via fd:
        return f"unix:{address!r}"
    if isinstance(address, str):
        return f"unix:{address}"
    host, port = address[0], address[1]
    if ":" in host:
        return f"{kind}6 [{host}]:{port}"
    return f"{kind} {host or '0.0.0.0'}:{port}"
