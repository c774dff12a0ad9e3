"""The stdlib server classes: ``BaseServer``, ``TCPServer``, ``UDPServer`` and the Unix pair.

The public hierarchy and every documented hook are the stdlib's, called when the stdlib calls
them; the serving underneath is portside's (:mod:`.serving`). Request cycle, per request::

    get_request -> verify_request -> process_request -> [mode] finish_request -> handler
                                                              -> shutdown_request -> close_request
    (handle_error if the handler raised; shutdown_request alone if verify_request said no)
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import traceback
from types import TracebackType
from typing import Any

from portside._socketserver.native import RequestSocket, ServerSocket
from portside._socketserver.serving import Runtime
from portside._socketserver.waiting import greenlet_module
from portside.config import Limits
from portside.core.metrics import Statistics

__all__ = ["BaseServer", "TCPServer", "UDPServer", "UnixDatagramServer", "UnixStreamServer"]

log = logging.getLogger("portside")

_OBJECT_NEW: Any = object.__new__

# The stdlib's 5 (its docs: "usually 5") makes the kernel drop connections in any burst: a
# 100-connection burst lost about 30 in our measurement. 128 was Linux's SOMAXCONN until 5.4
# and is what most servers ask for.
REQUEST_QUEUE_SIZE = 128


class BaseServer:
    """The request cycle and its hooks, served on portside's event loop.

    Besides the stdlib attributes, every server has ``limits`` (a :class:`~portside.Limits`,
    the engine's defaults unless given), ``event_loop`` (``auto``, ``uvloop`` or ``asyncio``)
    and ``ssl_context`` (stream servers only); each may be set as a class attribute or passed
    to the constructor by keyword.
    """

    timeout: float | None = None
    limits: Limits = Limits()
    event_loop: str = "auto"
    ssl_context: ssl.SSLContext | None = None
    socket: Any
    socket_type: int = socket.SOCK_STREAM

    def __init__(
        self,
        server_address: Any,
        RequestHandlerClass: Any,
        *,
        limits: Limits | None = None,
        event_loop: str | None = None,
    ) -> None:
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        if limits is not None:
            self.limits = limits
        if event_loop is not None:
            self.event_loop = event_loop
        if self._portside_green:
            greenlet_module()
        self._portside = Runtime(self, self.limits, self.event_loop)

    _portside_green = False

    def _portside_loop_bound(self) -> bool:
        """True when stream requests are served as engine connections (green, TLS threads)."""
        return False

    # -- public methods --------------------------------------------------------------------

    def server_activate(self) -> None:
        """Called by the constructor to activate the server (TCP: ``listen``)."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle requests until :meth:`shutdown`.

        The server runs on an event loop in this thread; nothing polls. ``poll_interval`` is
        the period of :meth:`service_actions` calls when a subclass overrides it.
        """
        self._portside.serve_forever(poll_interval)

    def shutdown(self) -> None:
        """Tell :meth:`serve_forever` to stop and wait until it does.

        From inside a handler (or anywhere in the serving thread) it requests the stop and
        returns at once instead of waiting for itself.
        """
        if self._portside.shutdown():
            self._portside.is_shut_down.wait()

    def service_actions(self) -> None:
        """Called in the :meth:`serve_forever` loop; override for periodic work."""

    def handle_request(self) -> None:
        """Handle one request, or call :meth:`handle_timeout` if none comes within ``timeout``."""
        timeout = self.socket.gettimeout()
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        if not self._portside.handle_request(timeout):
            self.handle_timeout()

    def _handle_request_noblock(self) -> None:
        """One request cycle on a ready socket (``get_request`` failing ends it quietly)."""
        try:
            request, client_address = self.get_request()
        except OSError as exc:
            self._portside.accept_error = exc
            return
        if self.socket_type == socket.SOCK_STREAM:
            loop_bound = self._portside_loop_bound()
            if loop_bound and not _adoptable(request):
                self._portside_reject(request, client_address)
                return
            self._portside.admit(request, client_address, loop_bound)
        else:
            self._portside_cycle(request, client_address)

    def _portside_cycle(self, request: Any, client_address: Any) -> None:
        """verify_request -> process_request, with the stdlib's error handling."""
        runtime = self._portside
        try:
            verified = self.verify_request(request, client_address)
        except BaseException:  # it ends serving (as the stdlib); the request is not leaked
            self.shutdown_request(request)
            runtime.finished(request)
            raise
        if verified:
            try:
                self.process_request(request, client_address)
            except Exception:
                self._portside_failed(request, client_address)
                self.shutdown_request(request)
                runtime.finished(request)
            except BaseException:
                self.shutdown_request(request)
                runtime.finished(request)
                raise
        else:
            self.shutdown_request(request)
            runtime.finished(request)

    def _portside_failed(self, request: Any, client_address: Any) -> None:
        self._portside.counters.errors += 1
        self.handle_error(request, client_address)

    def _portside_reject(self, request: Any, client_address: Any) -> None:
        self._portside.owner.report_error(
            f"{type(self).__name__}: get_request() returned {type(request).__name__}, which "
            "cannot be served on the event loop; return a plain socket (use ssl_context= for TLS)"
        )
        self.shutdown_request(request)

    def handle_timeout(self) -> None:
        """Called when :meth:`handle_request` saw no request within ``timeout``."""

    def fileno(self) -> int:
        """The descriptor of the socket the server listens on.

        Abstract here, as in the stdlib's ``BaseServer``: the socket servers define it.
        """
        raise NotImplementedError

    def get_request(self) -> tuple[Any, Any]:
        """Take the next request: ``(request, client_address)``.

        Abstract here, as in the stdlib's ``BaseServer``: the socket servers define it.
        """
        raise NotImplementedError

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Return False to refuse the request (it is then shut down unserved)."""
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the request: here, in this thread; mix-ins use threads, processes, greenlets.

        The loop waits while this runs, so the idle timeout becomes a socket timeout on the
        request (unless the handler sets its own); a request that hits it ends quietly and
        counts as a timeout. With an ``ssl_context`` the handshake happens here first.
        """
        runtime = self._portside
        idle = self.limits.idle_timeout
        if idle is not None and isinstance(request, RequestSocket) and request.gettimeout() is None:
            request.impose_idle_timeout(idle)
        if self.ssl_context is None:
            self._portside_serve_here(request, request, client_address)
            return
        wrapped = runtime.tls_wrap(request)
        try:
            if wrapped is not None:
                try:
                    self._portside_serve_here(request, wrapped, client_address)
                except Exception:
                    self._portside_failed(wrapped, client_address)
                    self.shutdown_request(wrapped)
        finally:
            runtime.finished(request)

    def _portside_serve_here(self, accepted: Any, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except TimeoutError:
            idle = self.limits.idle_timeout
            if not (getattr(accepted, "idle_timeout", False) and request.gettimeout() == idle):
                raise
            self._portside.counters.timeouts += 1  # an idle client, not a handler error
        self.shutdown_request(request)
        self._portside.finished(request)

    def server_close(self) -> None:
        """Clean up the server: end what still runs on its loop and close the loop."""
        self._portside.close()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve the request by instantiating ``RequestHandlerClass``."""
        cls: Any = self.RequestHandlerClass
        if type(cls) is type and cls.__new__ is _OBJECT_NEW:
            # what cls(...) does, minus a C-level call: a green handler parks with a smaller
            # stack (less to copy on every switch, less memory per connection)
            handler: Any = object.__new__(cls)
            handler.__init__(request, client_address, self)
        else:
            cls(request, client_address, self)

    def shutdown_request(self, request: Any) -> None:
        """End one request (closing it)."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Clean up one request (nothing for the base class)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The handler raised: print the traceback to stderr and go on serving."""
        print("-" * 40, file=sys.stderr)
        print(
            "Exception occurred during processing of request from", client_address, file=sys.stderr
        )
        traceback.print_exc()
        print("-" * 40, file=sys.stderr)

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server_close()

    # -- portside additions ----------------------------------------------------------------

    def statistics(self) -> Statistics:
        """A snapshot of the server's counters: requests open and total, bytes, errors…"""
        return self._portside.statistics()

    def __portside_handlers__(self) -> Any:
        """How ``portside.serve`` / ``portside.Server`` serve this server (see docs)."""
        from portside._socketserver.interop import handlers_for

        return handlers_for(self)


def _adoptable(request: Any) -> bool:
    return isinstance(request, socket.socket) and not isinstance(request, ssl.SSLSocket)


class TCPServer(BaseServer):
    """A TCP server (``address_family`` and ``socket_type`` say which kind of socket)."""

    address_family: int = socket.AF_INET
    socket_type: int = socket.SOCK_STREAM
    request_queue_size: int = REQUEST_QUEUE_SIZE
    allow_reuse_address: bool = False
    allow_reuse_port: bool = False

    def __init__(
        self,
        server_address: Any,
        RequestHandlerClass: Any,
        bind_and_activate: bool = True,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: Limits | None = None,
        event_loop: str | None = None,
    ) -> None:
        BaseServer.__init__(
            self, server_address, RequestHandlerClass, limits=limits, event_loop=event_loop
        )
        if ssl_context is not None:
            self.ssl_context = ssl_context
        if self.ssl_context is not None and self.socket_type != socket.SOCK_STREAM:
            raise ValueError("ssl_context is for stream servers; datagram servers take none")
        sock = ServerSocket(self.address_family, self.socket_type)
        sock.request_class = socket.socket if self._portside_loop_bound() else RequestSocket
        sock.counters = self._portside.counters
        self.socket = sock
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    def server_bind(self) -> None:
        """Bind the socket to ``server_address`` (applying the reuse options)."""
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if (
            self.allow_reuse_port
            and hasattr(socket, "SO_REUSEPORT")
            and self.address_family in (socket.AF_INET, socket.AF_INET6)
        ):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Listen, with a backlog of ``request_queue_size``."""
        self.socket.listen(self.request_queue_size)

    def server_close(self) -> None:
        """Close the listening socket, then end what still runs on the loop."""
        self.socket.close()
        super().server_close()

    def fileno(self) -> int:
        """The listening socket's descriptor."""
        return int(self.socket.fileno())

    def get_request(self) -> tuple[Any, Any]:
        """Accept a connection: the new socket and the client's address."""
        return self.socket.accept()  # type: ignore[no-any-return]

    def shutdown_request(self, request: Any) -> None:
        """Half-close the connection (so the client sees the end), then close it."""
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the peer may be gone (ENOTCONN): the request is released anyway
            log.debug("shutting down a request from %r failed: %s", request, exc)
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Close the request's socket."""
        request.close()


class UDPServer(TCPServer):
    """A UDP server: each datagram is a request ``(data, socket)``."""

    allow_reuse_address = False
    allow_reuse_port = False
    socket_type = socket.SOCK_DGRAM
    max_packet_size = 8192

    def get_request(self) -> tuple[Any, Any]:
        """Receive one datagram: ``((data, socket), client_address)``."""
        data, client_address = self.socket.recvfrom(self.max_packet_size)
        return (data, self.socket), client_address

    def server_activate(self) -> None:
        """Datagram sockets do not listen."""

    def shutdown_request(self, request: Any) -> None:
        """Nothing to half-close for a datagram."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Nothing to close for a datagram."""


class UnixStreamServer(TCPServer):
    """A stream server on a Unix socket (the socket file stays after ``server_close``)."""

    address_family = socket.AF_UNIX


class UnixDatagramServer(UDPServer):
    """A datagram server on a Unix socket."""

    address_family = socket.AF_UNIX
