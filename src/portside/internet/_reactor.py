"""The reactor: Twisted's ``reactor`` API as a facade over the engine's event loop.

It is not a second engine and owns no loop while another one runs. Each call finds its loop
in this order:

1. the loop running in the calling thread — ``reactor.run()``'s own, or the one serving a
   ``portside.serve`` / ``portside.Server`` / asyncio program that calls the reactor;
2. none yet: the call waits, and runs when ``reactor.run()`` starts its loop.

``run()`` makes a loop of the engine's kind, fires the startup triggers, handles SIGINT and
SIGTERM (the first stops gracefully, a second aborts open connections) and returns after
``stop()``. Shutdown runs in this order::

    "before" shutdown triggers -> ports stop listening (factories' doStop)
      -> every connection is asked to finish (loseConnection), aborted after
         Limits.shutdown_timeout -> "during" triggers -> "after" triggers -> the loop closes
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import enum
import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from portside.app import as_handlers
from portside.config import Limits
from portside.core.connection import ConnectionOwner
from portside.core.endpoints import Endpoint, UDPEndpoint, parse_endpoint
from portside.core.loop import loop_factory
from portside.core.server import Server
from portside.core.signals import shutdown_signals
from portside.errors import BindError, EndpointError
from portside.internet import error
from portside.internet._delayed import DelayedCall
from portside.internet._events import SystemEventTriggers, TriggerID
from portside.internet._ports import ContextServer, ListeningPort
from portside.internet.address import IPv4Address, IPv6Address, UNIXAddress
from portside.internet.connector import Connector, Opener

__all__ = ["Reactor"]

log = logging.getLogger("portside.internet")

LoopAction = Callable[[asyncio.AbstractEventLoop], object]


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Reactor:
    """Twisted's reactor over the engine: time, threads, system events, listen*, connect*.

    ``loop`` is the kind of loop ``run()`` makes (``auto``, ``uvloop``, ``asyncio``) or a
    callable returning a new loop. ``limits`` apply to every port it opens (each port counts
    its own ``max_connections``) and, for write-buffer water marks and the shutdown deadline,
    to outgoing connections, which have no idle timeout or cap. A reactor runs once
    (``ReactorNotRestartable``); make a new ``Reactor()`` for each test.
    """

    def __init__(
        self,
        loop: str | Callable[[], asyncio.AbstractEventLoop] = "auto",
        limits: Limits | None = None,
    ) -> None:
        self._loop_factory = loop_factory(loop) if isinstance(loop, str) else loop
        self.limits = limits or Limits()
        self.running = False
        """True from the "during" startup phase of ``run()`` until shutdown's "during" phase."""
        self._state = _State.NEW
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[LoopAction] = []
        self._finished: asyncio.Future[None] | None = None
        self._triggers = SystemEventTriggers()
        self._delayed: set[DelayedCall] = set()
        self._ports: list[ListeningPort] = []
        self._connectors: weakref.WeakSet[Connector] = weakref.WeakSet()
        self._client_owner = ConnectionOwner(
            dataclasses.replace(self.limits, max_connections=None, idle_timeout=None)
        )

    # -- finding the loop ----------------------------------------------------------------------

    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        # Remember it for callFromThread, unless run()'s own loop is the reactor's loop now.
        if loop is not self._loop and self._state in (_State.NEW, _State.STOPPED):
            with self._lock:
                self._loop = loop
        return loop

    def _with_loop(self, action: LoopAction) -> None:
        """Run ``action(loop)`` now if a loop runs in this thread, else when ``run()`` starts."""
        loop = self._running_loop()
        if loop is None:
            with self._lock:
                self._waiting.append(action)
        else:
            action(loop)

    # -- IReactorTime ----------------------------------------------------------------------

    def seconds(self) -> float:
        """The current time, in seconds since the epoch (what ``DelayedCall.getTime`` uses)."""
        return time.time()

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> DelayedCall:
        """Call ``callable(*args, **kw)`` in ``delay`` seconds; returns its DelayedCall."""
        if not builtins.callable(callable):
            raise TypeError(f"{callable!r} is not callable")
        if not delay >= 0:
            raise ValueError(f"{delay!r} is not greater than or equal to 0 seconds")
        call = DelayedCall(
            self.seconds() + delay, callable, args, kw, self.seconds, self._delayed.discard
        )
        self._delayed.add(call)
        self._with_loop(call.schedule)
        return call

    def getDelayedCalls(self) -> list[DelayedCall]:
        """Every delayed call that has neither run nor been cancelled."""
        return list(self._delayed)

    # -- IReactorThreads ---------------------------------------------------------------------

    def callInThread(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``callable(*args, **kw)`` in the loop's thread pool; exceptions are logged."""
        # Nothing waits for the returned future: _logged never raises.
        self._with_loop(lambda loop: loop.run_in_executor(None, _logged, callable, args, kw))

    def callFromThread(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """From any thread: run ``callable(*args, **kw)`` on the reactor's loop, soon."""
        with self._lock:
            loop = self._loop
            if loop is None or loop.is_closed():
                self._waiting.append(lambda loop: loop.call_soon(_logged, callable, args, kw))
                return
        try:
            loop.call_soon_threadsafe(_logged, callable, args, kw)
        except RuntimeError:  # the loop closed meanwhile: keep the call for a later run()
            with self._lock:
                self._waiting.append(lambda loop: loop.call_soon(_logged, callable, args, kw))

    # -- IReactorCore ----------------------------------------------------------------------

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Call now if running (or inside a running loop), else as an "after startup" trigger.

        Returns the trigger's ID when the call waits, None when it was made at once.
        """
        if self.running or (self._state is _State.NEW and self._running_loop() is not None):
            callable(*args, **kw)
            return None
        return self.addSystemEventTrigger("after", "startup", callable, *args, **kw)

    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> TriggerID:
        """Call ``callable`` in ``phase`` ("before", "during", "after") of ``eventType``.

        The events the reactor fires are "startup" and "shutdown". A trigger may return an
        awaitable; its phase waits for it.
        """
        return self._triggers.add(phase, eventType, callable, args, kw)

    def removeSystemEventTrigger(self, triggerID: TriggerID) -> None:
        """Unregister a trigger; ValueError if it is not registered."""
        self._triggers.remove(triggerID)

    def run(self, installSignalHandlers: bool = True) -> None:
        """Run a new loop until :meth:`stop` has finished shutting down, then close it."""
        if self._state in (_State.RUNNING, _State.STOPPING):
            raise error.ReactorAlreadyRunning()
        if self._state is _State.STOPPED:
            raise error.ReactorNotRestartable()
        if self._running_loop() is not None:
            raise error.ReactorAlreadyRunning(
                "an event loop already runs in this thread and the reactor serves it"
            )
        loop = self._loop_factory()
        self._state = _State.RUNNING
        try:
            loop.run_until_complete(self._main(installSignalHandlers))
        finally:
            self._state = _State.STOPPED
            self.running = False
            with self._lock:
                self._loop = None
            _close(loop)

    async def _main(self, install_signals: bool) -> None:
        loop = asyncio.get_running_loop()
        self._finished = loop.create_future()
        with self._lock:
            self._loop = loop
            waiting, self._waiting = self._waiting, []
        signals = (
            shutdown_signals(loop, self._on_signal, self._force)
            if install_signals
            else contextlib.nullcontext()
        )
        with signals:
            for action in waiting:
                action(loop)
            await self._triggers.fire_phase("startup", "before")
            self.running = True
            await self._triggers.fire_phase("startup", "during")
            await self._triggers.fire_phase("startup", "after")
            await self._finished

    def stop(self) -> None:
        """Shut down gracefully and make ``run()`` return; ReactorNotRunning if not running."""
        if self._state is not _State.RUNNING or self._loop is None:
            raise error.ReactorNotRunning("Can't stop reactor that isn't running.")
        self._state = _State.STOPPING
        self._loop.create_task(self._shutdown())

    def _on_signal(self) -> None:
        if self._state is _State.RUNNING:
            self.stop()

    def _force(self) -> None:
        for port in self._ports:
            port.server.force()
        for connection in list(self._client_owner.live):
            connection.abort()

    async def _shutdown(self) -> None:
        try:
            await self._triggers.fire_phase("shutdown", "before")
            self.running = False
            for port in self._ports:
                port.stopListening()
            closing = [port.server.shutdown() for port in self._ports]
            outcomes = await asyncio.gather(*closing, self._close_clients(), return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    log.error("error while shutting down", exc_info=outcome)
            await self._triggers.fire_phase("shutdown", "during")
            await self._triggers.fire_phase("shutdown", "after")
        finally:
            if self._finished is not None and not self._finished.done():
                self._finished.set_result(None)

    async def _close_clients(self) -> None:
        for connector in list(self._connectors):
            if connector.state == "connecting":
                connector.stopConnecting()
        owner = self._client_owner
        for connection in list(owner.live):
            connection.begin_shutdown()
        try:
            await asyncio.wait_for(owner.wait_empty(), self.limits.shutdown_timeout)
        except TimeoutError:
            for connection in list(owner.live):
                connection.abort()
            await owner.wait_empty()

    # -- listening -------------------------------------------------------------------------

    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> ListeningPort:
        """Listen for TCP connections on ``interface:port`` (IPv6 for an IPv6 interface)."""
        description = f"tcp:{int(port)}:interface={_interface(interface, port)}:backlog={backlog}"
        return self._listen(description, factory, (interface, port))

    def listenSSL(
        self,
        port: int,
        factory: Any,
        contextFactory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> ListeningPort:
        """Listen for TLS connections; ``contextFactory`` is an ``ssl.SSLContext`` (see docs)."""
        context = _ssl_context(contextFactory)
        description = f"tcp:{int(port)}:interface={_interface(interface, port)}:backlog={backlog}"
        return self._listen(description, factory, (interface, port), context)

    def listenUNIX(
        self,
        address: str | os.PathLike[str],
        factory: Any,
        backlog: int = 50,
        mode: int = 0o666,
        wantPID: int = 0,
    ) -> ListeningPort:
        """Listen on a Unix socket; ``wantPID`` guards the path with ``address + ".lock"``."""
        path = os.fspath(address)
        description = (
            f"unix:{_quote(path)}:mode={mode:o}:backlog={backlog}:lockfile={int(bool(wantPID))}"
        )
        return self._listen(description, factory, ("", path))

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> ListeningPort:
        """Receive datagrams on ``interface:port`` with a ``DatagramProtocol``.

        The protocol's ``transport`` is set (and ``startProtocol`` called) once the loop runs.
        ``maxPacketSize`` is accepted for compatibility; the loop reads whole datagrams.
        """
        description = f"udp:{int(port)}:interface={_interface(interface, port)}"
        return self._listen(description, protocol, (interface, port))

    def listen_endpoint(self, endpoint: str | Endpoint, app: Any) -> ListeningPort:
        """Listen on any engine endpoint (``"tcp:8080:reusePort=1"``, ``"fd:3"``, ``"udp:53"``).

        ``app`` is anything ``portside.serve`` accepts: a ``Factory``, a ``DatagramProtocol``
        for ``udp:``, an asyncio protocol factory, an ``async def handler(reader, writer)``.
        A portside extension; ``endpoints.serverFromString`` listens through it.
        """
        parsed = parse_endpoint(endpoint) if isinstance(endpoint, str) else endpoint
        where = getattr(parsed, "host", ""), getattr(parsed, "port", parsed.description)
        return self._listen(parsed, app, where)

    def _listen(
        self,
        endpoint: str | Endpoint,
        app: Any,
        where: tuple[str, Any],
        context: ssl.SSLContext | None = None,
    ) -> ListeningPort:
        handlers = as_handlers(app)
        started, stopped = handlers.started, handlers.stopped
        handlers = dataclasses.replace(handlers, started=None, stopped=None)
        try:
            parsed = parse_endpoint(endpoint) if isinstance(endpoint, str) else endpoint
            server = (
                Server(handlers, parsed, limits=self.limits)
                if context is None
                else ContextServer(handlers, parsed, context, limits=self.limits)
            )
            server.bind()
        except (BindError, EndpointError) as exc:
            raise error.CannotListenError(where[0], where[1], exc) from exc
        port = ListeningPort(
            server, app, "UDP" if isinstance(parsed, UDPEndpoint) else "TCP", stopped
        )
        if started is not None:
            try:
                started()
            except BaseException:
                server.stop_accepting()
                raise
        self._ports = [p for p in self._ports if not p.finished]
        self._ports.append(port)
        self._with_loop(port.start)
        return port

    # -- connecting ------------------------------------------------------------------------

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: Any,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> Connector:
        """Connect to ``host:port``; the ClientFactory hears how it goes (see connector.py)."""
        opener: Opener = lambda loop, make: loop.create_connection(  # noqa: E731
            make, host, port, local_addr=bindAddress
        )
        return self._connect(factory, _inet_address(host, port), timeout, opener)

    def connectSSL(
        self,
        host: str,
        port: int,
        factory: Any,
        contextFactory: Any,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> Connector:
        """Connect over TLS, verifying per ``contextFactory`` (an ``ssl.SSLContext``)."""
        context = _ssl_context(contextFactory)
        handshake = self.limits.handshake_timeout
        opener: Opener = lambda loop, make: loop.create_connection(  # noqa: E731
            make,
            host,
            port,
            ssl=context,
            server_hostname=host,
            local_addr=bindAddress,
            ssl_handshake_timeout=handshake,
        )
        return self._connect(factory, _inet_address(host, port), timeout, opener)

    def connectUNIX(
        self,
        address: str | os.PathLike[str],
        factory: Any,
        timeout: float = 30,
        checkPID: int = 0,
    ) -> Connector:
        """Connect to a Unix socket (``checkPID`` is accepted and ignored)."""
        path = os.fspath(address)
        opener: Opener = lambda loop, make: loop.create_unix_connection(make, path)  # noqa: E731
        return self._connect(factory, UNIXAddress(path), timeout, opener)

    def _connect(
        self,
        factory: Any,
        destination: IPv4Address | IPv6Address | UNIXAddress,
        timeout: float,
        opener: Opener,
    ) -> Connector:
        connector = Connector(
            factory, destination, timeout, opener, self._client_owner, self._with_loop
        )
        self._connectors.add(connector)
        connector.connect()
        return connector

    def __repr__(self) -> str:
        return f"<portside Reactor {self._state.value}>"


def _logged(func: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    try:
        func(*args, **kw)
    except Exception:
        log.exception("Unhandled error in %r", func)


def _quote(value: str) -> str:
    """Escape ``value`` for an endpoint string field."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def _interface(interface: str, port: int) -> str:
    """``interface`` quoted for an endpoint string; a host name becomes its IPv4 address.

    As in Twisted, only an IPv6 literal listens on IPv6; ``"localhost"`` means 127.0.0.1.
    """
    if interface:
        try:
            ipaddress.ip_address(interface.split("%", 1)[0])
        except ValueError:  # a name: resolved here, as binding would resolve it
            try:
                interface = str(socket.getaddrinfo(interface, None, socket.AF_INET)[0][4][0])
            except socket.gaierror as exc:
                raise error.CannotListenError(interface, port, exc) from exc
    return _quote(interface)


def _ssl_context(context_factory: Any) -> ssl.SSLContext:
    if isinstance(context_factory, ssl.SSLContext):
        return context_factory
    get_context = getattr(context_factory, "getContext", None)
    context = get_context() if get_context is not None else None
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(
            "contextFactory must be an ssl.SSLContext or have getContext() returning one "
            f"(pyOpenSSL contexts are not supported), not {context_factory!r}"
        )
    return context


def _inet_address(host: str, port: int) -> IPv4Address | IPv6Address:
    try:
        if ipaddress.ip_address(host.split("%", 1)[0]).version == 6:
            return IPv6Address("TCP", host, port)
    except ValueError:  # a host name
        pass
    return IPv4Address("TCP", host, port)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on ``loop``, stop its thread pool and async generators, close it."""
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
