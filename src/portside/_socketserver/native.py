"""The real sockets of thread, fork and plain servers: counted for statistics, drainable.

A handler in those modes gets a genuine :class:`socket.socket` (a subclass), exactly as under
the stdlib, so blocking calls block only its own thread. The subclass adds two things:

- byte counts, read by ``statistics()`` and by the idle sweep (no traffic between sweeps);
- *draining*: once the server shuts down, a read made at an exchange boundary (everything
  received so far has been answered by a send) returns end-of-file, so a handler waiting for
  its client's next request ends as if the client had hung up, while a handler in the middle
  of an exchange finishes it. A handler already blocked in such a read is woken with
  ``shutdown(SHUT_RD)``.
"""

from __future__ import annotations

import errno
import io
import socket
import threading
from typing import Any

from portside.core.metrics import Counters

__all__ = ["CountingReader", "RequestSocket", "ServerSocket", "force_close"]

_recv = socket.socket.recv
_recv_into = socket.socket.recv_into
_recvfrom = socket.socket.recvfrom
_recvfrom_into = socket.socket.recvfrom_into
_send = socket.socket.send
_sendall = socket.socket.sendall
_sendto = socket.socket.sendto

_PEEK = int(socket.MSG_PEEK)  # a plain int: IntFlag operators run Python code

# shutdown() on a socket the peer already reset, or one closed meanwhile: nothing left to stop.
_GONE = frozenset({errno.ENOTCONN, errno.EBADF, errno.ENOTSOCK})


def _size(data: Any) -> int:
    return data.nbytes if isinstance(data, memoryview) else len(data)


def _shutdown_quietly(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError as exc:
        if exc.errno not in _GONE:
            raise


def force_close(request: Any) -> None:
    """Stop a native request's traffic both ways so its blocked handler returns."""
    if isinstance(request, socket.socket) and request.fileno() != -1:
        _shutdown_quietly(request, socket.SHUT_RDWR)


class RequestSocket(socket.socket):
    """An accepted connection: a real socket that counts its bytes and can be drained."""

    __slots__ = (
        "_draining",
        "_exchange_open",
        "bytes_received",
        "bytes_sent",
        "idle_timeout",
    )

    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None:
        super().__init__(family, type, proto, fileno)
        self.bytes_received = 0
        self.bytes_sent = 0
        self._draining = False
        self._exchange_open = False
        self.idle_timeout = False

    def impose_idle_timeout(self, seconds: float) -> None:
        """Time out blocking calls after ``seconds`` (the server's idle timeout, not the user's).

        :attr:`idle_timeout` stays True until the handler sets a timeout of its own.
        """
        socket.socket.settimeout(self, seconds)
        self.idle_timeout = True

    def settimeout(self, value: float | None) -> None:
        self.idle_timeout = False
        socket.socket.settimeout(self, value)

    def setblocking(self, flag: bool) -> None:
        self.idle_timeout = False
        socket.socket.setblocking(self, flag)

    @property
    def traffic(self) -> int:
        """Bytes moved either way so far (the idle sweep compares it between sweeps)."""
        return self.bytes_received + self.bytes_sent

    def begin_drain(self) -> None:
        """Make reads at an exchange boundary return end-of-file; wake a handler blocked there.

        ``shutdown(SHUT_RD)`` ends a read in progress, and has no effect on one that already
        returned bytes (the handler answers them, then its next read is at the boundary).
        """
        self._draining = True
        if not self._exchange_open and self.fileno() != -1:
            _shutdown_quietly(self, socket.SHUT_RD)

    # The overrides below are on every request's per-message path: kept flat on purpose.

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._draining and not self._exchange_open and not flags & _PEEK:
            return b""
        data = _recv(self, bufsize, flags)
        if data and not flags & _PEEK:
            self.bytes_received += len(data)
            self._exchange_open = True
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if self._draining and not self._exchange_open and not flags & _PEEK:
            return 0
        count = _recv_into(self, buffer, nbytes, flags)
        if count and not flags & _PEEK:
            self.bytes_received += count
            self._exchange_open = True
        return count

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        if self._draining and not self._exchange_open and not flags & _PEEK:
            return b"", None
        data, address = _recvfrom(self, bufsize, flags)
        if data and not flags & _PEEK:
            self.bytes_received += len(data)
            self._exchange_open = True
        return data, address

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        if self._draining and not self._exchange_open and not flags & _PEEK:
            return 0, None
        count, address = _recvfrom_into(self, buffer, nbytes, flags)
        if count and not flags & _PEEK:
            self.bytes_received += count
            self._exchange_open = True
        return count, address

    def send(self, data: Any, flags: int = 0) -> int:
        count = _send(self, data, flags)
        self.bytes_sent += count
        self._exchange_open = False
        return count

    def sendall(self, data: Any, flags: int = 0) -> None:
        _sendall(self, data, flags)
        self.bytes_sent += len(data) if type(data) is bytes else _size(data)
        self._exchange_open = False

    def sendto(self, data: Any, *args: Any) -> int:
        count = _sendto(self, data, *args)
        self.bytes_sent += count
        self._exchange_open = False
        return count

    def write_all(self, data: Any) -> int:
        """``sendall(data)``, returning the number of bytes (the unbuffered ``wfile.write``)."""
        _sendall(self, data)
        count = len(data) if type(data) is bytes else memoryview(data).nbytes
        self.bytes_sent += count
        self._exchange_open = False
        return count

    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any:
        """As ``socket.makefile``; a buffered binary reader reads via a :class:`CountingReader`."""
        if mode != "rb" or buffering == 0:
            general: Any = socket.socket.makefile
            return general(self, mode, buffering, encoding=encoding, errors=errors, newline=newline)
        if buffering is None or buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        raw = CountingReader(self, "r")
        self._io_refs += 1  # type: ignore[attr-defined]
        return io.BufferedReader(raw, buffering)


class CountingReader(socket.SocketIO):
    """The raw reader under a request's ``rfile``: one Python call per receive, not two.

    It counts and drains as :meth:`RequestSocket.recv_into` does, receiving directly; in any
    unusual state (draining, after a timeout, closed) it takes ``SocketIO``'s own path.
    """

    _sock: RequestSocket
    _timeout_occurred: bool

    def readinto(self, b: Any) -> int | None:
        sock = self._sock
        if sock is None or sock._draining or self._timeout_occurred:
            return super().readinto(b)
        try:
            count: int = _recv_into(sock, b)
        except TimeoutError:
            self._timeout_occurred = True  # as SocketIO: the buffer may now be inconsistent
            raise
        except BlockingIOError:
            return None  # a non-blocking socket with nothing to read
        if count:
            sock.bytes_received += count
            sock._exchange_open = True
        return count


class ServerSocket(socket.socket):
    """A server's own socket: ``accept`` hands out :class:`RequestSocket`, datagrams are counted.

    ``request_class`` is what ``accept`` builds (a plain socket when the connection goes on to
    the event loop, which counts by itself); ``counters`` receives the datagram counts.
    """

    __slots__ = ("_send_lock", "counters", "request_class")

    request_class: type[socket.socket]

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1) -> None:
        super().__init__(family, type, proto)
        self.request_class = RequestSocket
        self.counters: Counters | None = None
        self._send_lock = threading.Lock()

    def accept(self) -> tuple[socket.socket, Any]:
        fd, address = self._accept()  # type: ignore[attr-defined]
        sock = self.request_class(self.family, self.type, self.proto, fileno=fd)
        # as socket.accept does: a listener with a timeout hands out blocking sockets
        if socket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, address

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        data, address = _recvfrom(self, bufsize, flags)
        counters = self.counters
        if counters is not None and not flags & _PEEK:
            counters.datagrams_received += 1
            counters.bytes_received += len(data)
        return data, address

    def sendto(self, data: Any, *args: Any) -> int:
        count = _sendto(self, data, *args)
        counters = self.counters
        if counters is not None:
            with self._send_lock:  # handler threads reply concurrently
                counters.datagrams_sent += 1
                counters.bytes_sent += count
        return count
