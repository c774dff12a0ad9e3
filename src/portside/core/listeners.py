"""Listening sockets: binding an endpoint, and the accept loop that respects the owner's limits.

Binding is synchronous so a caller learns at once that a port is taken. Accepting is the
engine's own loop over a non-blocking listening socket (``loop.add_reader``, on asyncio and
uvloop alike) because it must be able to stop: at ``max_connections`` it stops accepting and
lets the kernel backlog hold newcomers until a slot frees, and when the process runs out of
descriptors or buffers it logs, backs off and tries again instead of dying.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import logging
import os
import socket
import ssl
import stat
import sys
from collections.abc import Callable
from typing import Any

from portside.core.connection import Connection, ConnectionOwner
from portside.core.endpoints import Endpoint, FDEndpoint, TCPEndpoint, UDPEndpoint, UNIXEndpoint
from portside.errors import BindError

__all__ = ["BoundSocket", "StreamListener", "bind"]

log = logging.getLogger("portside")

# Accept at most this many connections per readiness event so one busy listener cannot starve
# the connections already admitted (trio and asyncio use batches of the same order).
ACCEPT_BATCH = 64
# After EMFILE/ENFILE/ENOBUFS/ENOMEM, wait this long before accepting again: long enough for
# some connections to close, short enough that a transient squeeze costs little.
ACCEPT_BACKOFF = 0.1

_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# The peer gave up between the kernel queueing the connection and our accept(): skip it.
_PEER_GONE_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class BoundSocket:
    """A bound (and for streams, listening) socket plus what must be undone when it closes."""

    def __init__(
        self, description: str, sock: socket.socket, cleanup: Callable[[], None] | None = None
    ) -> None:
        self.description = description
        self.sock = sock
        self.is_stream = sock.type == socket.SOCK_STREAM
        self.address: Any = sock.getsockname()
        """The bound address: ``(host, port[, flow, scope])`` or a Unix path; kept after close."""
        self._cleanup = cleanup

    def close(self) -> None:
        """Close the socket and remove what binding created (a Unix socket file, a lock).

        Safe to call more than once.
        """
        self.sock.close()
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            cleanup()


def bind(endpoint: Endpoint) -> BoundSocket:
    """Create, bind and (for streams) listen on the socket ``endpoint`` describes."""
    try:
        if isinstance(endpoint, TCPEndpoint):
            return _bind_inet(endpoint, socket.SOCK_STREAM, endpoint.backlog)
        if isinstance(endpoint, UDPEndpoint):
            return _bind_inet(endpoint, socket.SOCK_DGRAM, 0)
        if isinstance(endpoint, UNIXEndpoint):
            return _bind_unix(endpoint)
        return _adopt_fd(endpoint)
    except OSError as exc:
        if isinstance(exc, BindError):
            raise
        raise BindError(endpoint.description, exc.strerror or str(exc)) from exc


def _bind_inet(endpoint: TCPEndpoint | UDPEndpoint, kind: int, backlog: int) -> BoundSocket:
    sock = socket.socket(endpoint.family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if endpoint.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if endpoint.family == socket.AF_INET6:
            # "::" means every address, IPv4 included (dual-stack); a specific address is v6 only.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, endpoint.host != "::")
        sock.bind((endpoint.host, endpoint.port))
        if kind == socket.SOCK_STREAM:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return BoundSocket(endpoint.description, sock)


def _remove_stale_socket(endpoint: UNIXEndpoint) -> None:
    path = endpoint.path
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(endpoint.description, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: a leftover from a process that died
        return
    finally:
        probe.close()
    raise BindError(endpoint.description, f"another process is listening on {path}")


def _bind_unix(endpoint: UNIXEndpoint) -> BoundSocket:
    lock_fd: int | None = None
    if endpoint.lockfile:
        lock_fd = os.open(endpoint.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise BindError(
                endpoint.description, f"{endpoint.path}.lock is held by another process"
            ) from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _remove_stale_socket(endpoint)
        sock.bind(endpoint.path)
        os.chmod(endpoint.path, endpoint.mode)
        sock.listen(endpoint.backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        if lock_fd is not None:
            os.unlink(endpoint.path + ".lock")
            os.close(lock_fd)
        raise
    identity = os.stat(endpoint.path)

    def cleanup() -> None:
        with contextlib.suppress(FileNotFoundError):
            now = os.stat(endpoint.path)
            if (now.st_dev, now.st_ino) == (identity.st_dev, identity.st_ino):
                os.unlink(endpoint.path)
        if lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(endpoint.path + ".lock")
            os.close(lock_fd)

    return BoundSocket(endpoint.description, sock, cleanup)


def _adopt_fd(endpoint: FDEndpoint) -> BoundSocket:
    sock = socket.socket(fileno=endpoint.fd)
    try:
        if sock.type == socket.SOCK_STREAM and not sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN
        ):
            raise BindError(
                endpoint.description, f"fd {endpoint.fd} is a stream socket that is not listening"
            )
        sock.setblocking(False)
    except BaseException:
        sock.detach()
        raise
    return BoundSocket(endpoint.description, sock)


Make = Callable[[Any], Connection | None]
"""Builds the connection for a peer address, or returns None to refuse it."""


class StreamListener:
    """Accepts connections on one bound stream socket and hands each to a new Connection.

    An accepted socket becomes a connection in two steps: the listener builds the
    :class:`Connection` and counts it as pending in the owner, then a task hands the socket to
    the loop (running the TLS handshake, if any) and ``connection_made`` makes it live. Those
    tasks are :attr:`handshakes`; shutting down cancels the ones whose connection has not
    started yet.
    """

    def __init__(
        self,
        bound: BoundSocket,
        owner: ConnectionOwner,
        make: Make,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.bound = bound
        self.owner = owner
        self._make = make
        self._ssl = ssl_context
        self._fd = bound.sock.fileno()
        self._nodelay = bound.sock.family in (socket.AF_INET, socket.AF_INET6)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self._closed = False
        self._backoff: asyncio.TimerHandle | None = None
        self.handshakes: dict[asyncio.Task[Any], Connection] = {}
        owner.on_capacity(self._maybe_resume)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin accepting on ``loop``."""
        self._loop = loop
        self._maybe_resume()

    def close(self) -> None:
        """Stop accepting and close the listening socket; open connections are untouched."""
        if self._closed:
            return
        self._closed = True
        self._stop_reading()
        if self._backoff is not None:
            self._backoff.cancel()
            self._backoff = None
        self.owner.remove_on_capacity(self._maybe_resume)
        self.bound.close()

    def cancel_handshakes(self) -> None:
        """Drop accepted connections that have not started yet (still in their TLS handshake)."""
        live = self.owner.live
        for task, connection in list(self.handshakes.items()):
            if connection not in live:
                task.cancel()

    async def wait_handshakes(self) -> None:
        """Wait until every accepted connection has started or failed."""
        if self.handshakes:
            await asyncio.wait(list(self.handshakes))

    def _stop_reading(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _maybe_resume(self) -> None:
        if (
            self._reading
            or self._closed
            or self._loop is None
            or self._backoff is not None
            or self.owner.at_capacity
        ):
            return
        self._loop.add_reader(self._fd, self._accept)
        self._reading = True

    def _end_backoff(self) -> None:
        self._backoff = None
        self._maybe_resume()

    def _back_off(self) -> None:
        self.owner.counters.accept_pauses += 1
        self._stop_reading()
        assert self._loop is not None
        self._backoff = self._loop.call_later(ACCEPT_BACKOFF, self._end_backoff)

    def _accept(self) -> None:
        sock = self.bound.sock
        owner = self.owner
        for _ in range(ACCEPT_BATCH):
            if owner.at_capacity:
                owner.counters.accept_pauses += 1
                self._stop_reading()
                return
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _PEER_GONE_ERRNOS:
                    continue
                if exc.errno in _RESOURCE_ERRNOS:
                    log.warning(
                        "%s: accept failed (%s); pausing %.1fs",
                        self.bound.description,
                        exc.strerror,
                        ACCEPT_BACKOFF,
                    )
                else:
                    # Not ours to fix, but raising from a reader callback would make the loop
                    # call us again at once, forever: log it and back off like the others.
                    owner.report_error(f"{self.bound.description}: accept failed", exc)
                self._back_off()
                return
            self._admit(conn, peer)

    def _admit(self, conn: socket.socket, peer: Any) -> None:
        try:
            conn.setblocking(False)
            if self._nodelay:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # the peer reset between accept() and here (EINVAL, ECONNRESET)
            self._dropped(conn, peer, exc)
            return
        if isinstance(peer, tuple):
            # Clients from one address share its string: ~60 bytes less per idle connection.
            peer = (sys.intern(peer[0]), *peer[1:])
        try:
            connection = self._make(peer)
        except Exception as exc:
            self.owner.report_error(f"{self.bound.description}: building a connection failed", exc)
            connection = None
        if connection is None:
            conn.close()
            return
        assert self._loop is not None
        self.owner.admitting(connection)
        task = self._loop.create_task(self._connect(conn, connection))
        self.handshakes[task] = connection
        task.add_done_callback(functools.partial(self._connected, conn, connection))

    async def _connect(self, conn: socket.socket, connection: Connection) -> None:
        assert self._loop is not None
        if self._ssl is None:
            await self._loop.connect_accepted_socket(lambda: connection, conn)
        else:
            await self._loop.connect_accepted_socket(
                lambda: connection,
                conn,
                ssl=self._ssl,
                ssl_handshake_timeout=self.owner.limits.handshake_timeout,
            )

    def _connected(
        self, conn: socket.socket, connection: Connection, task: asyncio.Task[None]
    ) -> None:
        # A done callback rather than try/finally in _connect: a task cancelled before its
        # first step never runs its coroutine's body, yet its socket and slot must be released.
        del self.handshakes[task]
        if task.cancelled():
            conn.close()
        else:
            exc = task.exception()
            if exc is not None:
                if isinstance(exc, OSError | TimeoutError):  # ssl.SSLError is an OSError
                    self._dropped(conn, connection.peer, exc)
                else:
                    conn.close()
                    self.owner.report_error(
                        f"{self.bound.description}: starting a connection failed", exc
                    )
        self.owner.admission_failed(connection)

    def _dropped(self, conn: socket.socket, peer: Any, exc: BaseException) -> None:
        # Closing is safe even once the loop owns ``conn``: on failure asyncio has already
        # removed its reader and writer, and uvloop has detached the socket object.
        conn.close()
        self.owner.counters.connection_errors += 1
        log.debug(
            "%s: connection from %s failed before it started: %r", self.bound.description, peer, exc
        )
