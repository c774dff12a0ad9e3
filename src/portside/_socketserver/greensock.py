"""``self.request`` for green handlers: the socket API over an engine connection.

Every blocking call (``recv``, ``recv_into``, ``recvfrom``, ``send``, ``sendall``, reads and
writes through ``makefile``) suspends only the calling handler greenlet; the loop goes on
serving other connections. Timeouts follow the stdlib: ``settimeout(None)`` blocks,
``settimeout(0)`` raises :class:`BlockingIOError` instead of waiting, and a positive timeout
raises :class:`TimeoutError` ("timed out") when it passes; ``sendall``'s timeout covers the
whole call. Called from a thread other than the loop's (a thread-mode handler served through
the engine), each call runs on the loop for that thread, which waits for the result.

Differences from a kernel socket, all in the direction of fewer surprises: ``send`` queues
everything it is given (the engine's write buffer with its high-water mark is the socket
buffer), and ``makefile`` readers share one buffer with ``recv`` so mixing them loses nothing.
"""

from __future__ import annotations

import errno
import os
import socket
from threading import get_ident
from typing import Any

from portside._socketserver import fileio, waiting
from portside._socketserver.channel import StreamChannel, transport_socket
from portside._socketserver.waiting import GreenWaiter, call_in_loop

__all__ = ["ChannelSocket"]

# plain ints: socket.MSG_* are IntFlag members, and their operators run Python code
_PEEK = int(socket.MSG_PEEK)
_DONTWAIT = int(socket.MSG_DONTWAIT)
_WAITALL = int(socket.MSG_WAITALL)
_SUPPORTED_FLAGS = _PEEK | _DONTWAIT | _WAITALL
_SENDFILE_CHUNK = 64 * 1024


def _error(number: int) -> OSError:
    return OSError(number, os.strerror(number))


class ChannelSocket:
    """A socket-like request whose blocking calls wait on the loop instead of blocking it."""

    __slots__ = (
        "_channel",
        "_closed",
        "_home",
        "_io_refs",
        "_names",
        "_released",
        "_timeout",
        "_waiter",
        "family",
        "proto",
        "type",
    )

    def __init__(
        self,
        channel: StreamChannel,
        home: Any,
        family: int,
        kind: int = socket.SOCK_STREAM,
        proto: int = 0,
    ) -> None:
        self._channel = channel
        self._home = home
        self.family = family
        self.type = kind
        self.proto = proto
        self._timeout: float | None = socket.getdefaulttimeout()
        self._waiter: GreenWaiter | None = None
        self._closed = False
        self._released = False
        self._io_refs = 0
        self._names: dict[str, Any] | None = None  # transport details, fetched when asked

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"peer={self._channel.peer!r}"
        return f"<portside green socket {state}>"

    def __enter__(self) -> ChannelSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- where a call runs -----------------------------------------------------------------

    def _elsewhere(self) -> bool:
        """True unless called in the thread running the channel's loop (then it runs here).

        ``home.loop_thread`` names that thread (it can change: a server's loop runs in the
        thread serving, or in the one calling ``server_close``). Once the connection is lost
        its state is final, and calls run in any thread without the loop (which may be gone).
        """
        return bool(get_ident() != self._home.loop_thread)

    def _bridge(self, method: Any, *args: Any) -> Any:
        return call_in_loop(self._channel.loop, method, *args)

    def _check_open(self) -> None:
        if self._released:
            raise _error(errno.EBADF)

    # -- timeouts --------------------------------------------------------------------------

    def settimeout(self, value: float | None) -> None:
        """Blocking calls wait at most ``value`` seconds (None: forever, 0: never)."""
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self) -> float | None:
        """The timeout set by :meth:`settimeout` (None when blocking)."""
        return self._timeout

    @property
    def timeout(self) -> float | None:
        """The timeout, as ``socket.socket.timeout``."""
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        """``setblocking(True)`` is ``settimeout(None)``; ``False`` is ``settimeout(0.0)``."""
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        """False only when non-blocking (timeout 0)."""
        return self._timeout != 0.0

    def _deadline(self, flags: int = 0) -> float | None:
        """When a blocking call must give up: None never, 0.0 at once (non-blocking)."""
        timeout = 0.0 if flags & _DONTWAIT else self._timeout
        if timeout is None or timeout == 0.0:
            return timeout
        return self._channel.loop.time() + timeout

    def _wait(self, slot: str, deadline: float | None) -> None:
        """Suspend until the channel wakes ``slot`` (reader or writer) or ``deadline`` passes."""
        if deadline == 0.0:
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        loop = self._channel.loop
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("timed out")
        waiter = self._waiter
        if waiter is None or waiter.glet is not waiting.getcurrent():
            waiter = self._waiter = GreenWaiter(loop)
        waiter.pending = True
        channel = self._channel
        if slot == "reader":
            channel.reader = waiter
        else:
            channel.writer = waiter
        try:
            woken = waiter.wait(remaining)
        finally:
            if channel.reader is waiter:
                channel.reader = None
            if channel.writer is waiter:
                channel.writer = None
        if not woken:
            raise TimeoutError("timed out")

    # -- reading ---------------------------------------------------------------------------

    def _readable(self, deadline: float | None) -> bool:
        """Wait for buffered bytes; False means end-of-file. Raises an error once, if any."""
        channel = self._channel
        while not channel.unread:
            if channel.at_end:
                error = channel.error
                if error is not None:
                    channel.error = None
                    raise error
                if channel.draining and not channel.exchange_open:
                    channel.read_shut = True
                return False
            self._wait("reader", deadline)
        return True

    def read_some(self, count: int, flags: int = 0) -> bytes:
        """Up to ``count`` bytes (``count`` < 0: all buffered), waiting for the first one."""
        if self._elsewhere() and not self._channel.lost:
            return self._bridge(self.read_some, count, flags)  # type: ignore[no-any-return]
        self._check_open()
        if flags & ~_SUPPORTED_FLAGS:
            raise ValueError(f"unsupported recv flags: {flags:#x}")
        deadline = self._deadline(flags)
        if flags & _WAITALL and count > 0:
            return self.read_exactly(count, deadline, peek=bool(flags & _PEEK))
        if count == 0 or not self._readable(deadline):
            return b""
        return self._channel.take(count, peek=bool(flags & _PEEK))

    def read_exactly(self, count: int, deadline: Any = False, *, peek: bool = False) -> bytes:
        """``count`` bytes, fewer only at end-of-file (``count`` < 0: everything until then)."""
        if self._elsewhere() and not self._channel.lost:
            return self._bridge(self.read_exactly, count)  # type: ignore[no-any-return]
        self._check_open()
        if deadline is False:
            deadline = self._deadline()
        channel = self._channel
        while count < 0 or channel.unread < count:
            if channel.at_end:
                if channel.error is not None and not channel.unread:
                    error, channel.error = channel.error, None
                    raise error
                break
            if deadline == 0.0 and channel.unread:
                break  # non-blocking: hand over what there is, as BufferedReader does
            channel.read_more()
            self._wait("reader", deadline)
        return channel.take(count, peek=peek)

    def read_line(self, limit: int | None = -1) -> bytes:
        """Bytes up to and including the next newline (at most ``limit``; all at EOF)."""
        channel = self._channel
        if not (
            self._timeout is None
            and (limit is None or limit < 0)
            and get_ident() == self._home.loop_thread
            and not self._released
        ):
            return self._read_line_checked(-1 if limit is None else limit)
        # The hot path of line protocols (no limit, no timeout, in the loop's thread): the
        # shortest way to a buffered line, else park until data_received wakes this reader.
        while True:
            buffer = channel.buffer
            if buffer:
                start = channel.offset
                index = buffer.find(b"\n", start)
                if index >= 0:
                    if (
                        index + 1 == len(buffer)
                        and not start
                        and not channel.reading_paused
                        and type(buffer) is bytes
                    ):  # exactly one whole line buffered: hand it over as it is
                        channel.buffer = b""
                        channel.exchange_open = True
                        return buffer
                    return channel.take(index + 1 - start)
            if channel.halt:
                return self._read_line(-1)
            if channel.reading_paused:
                channel.read_more()
            waiter = self._waiter
            if waiter is None or waiter.glet is not waiting.getcurrent():
                waiter = self._waiter = GreenWaiter(channel.loop)
            waiter.pending = True
            channel.reader = waiter
            try:
                waiter.hub.switch()  # whoever wakes the reader clears pending and reader
            except BaseException:
                waiter.pending = False
                channel.reader = None
                raise

    def _read_line_checked(self, limit: int) -> bytes:
        """:meth:`read_line` off the hot path: from another thread, closed, or with limits."""
        if get_ident() != self._home.loop_thread and not self._channel.lost:
            return self._bridge(self.read_line, limit)  # type: ignore[no-any-return]
        if self._released:
            raise _error(errno.EBADF)
        return self._read_line(limit)

    def _read_line(self, limit: int) -> bytes:
        channel = self._channel
        deadline = self._deadline()
        while True:
            end = channel.find(b"\n", limit)
            if end >= 0:
                return channel.take(end)
            if 0 <= limit <= channel.unread:
                return channel.take(limit)
            if channel.at_end:
                if channel.unread:
                    return channel.take(-1)
                if not self._readable(deadline):
                    return b""
                continue
            if deadline == 0.0 and channel.unread:
                return channel.take(-1)
            channel.read_more()
            self._wait("reader", deadline)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receive up to ``bufsize`` bytes; ``b""`` at end-of-file."""
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        return self.read_some(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receive into ``buffer`` (at most ``nbytes`` if given); return the count."""
        if self._elsewhere() and not self._channel.lost:
            return self._bridge(self.recv_into, buffer, nbytes, flags)  # type: ignore[no-any-return]
        target = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes:
            target = target[:nbytes]
        if flags:
            data = self.read_some(len(target), flags)
            target[: len(data)] = data
            return len(data)
        self._check_open()
        if not target or not self._readable(self._deadline()):
            return 0
        return self._channel.take_into(target)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, None]:
        """As :meth:`recv`; a connected stream has no per-message address (None)."""
        return self.recv(bufsize, flags), None

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, None]:
        """As :meth:`recv_into`, with a None address."""
        return self.recv_into(buffer, nbytes, flags), None

    # -- writing ---------------------------------------------------------------------------

    def _writable(self, deadline: float | None) -> None:
        channel = self._channel
        while True:
            if channel.write_shut:
                raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
            if channel.ended:
                error = channel.error
                if isinstance(error, OSError):
                    raise type(error)(*error.args)
                raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
            if not channel.writing_paused:
                return
            self._wait("writer", deadline)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Queue all of ``data``, first waiting while the write buffer is above high water."""
        channel = self._channel
        if get_ident() != self._home.loop_thread and not channel.lost:
            self._bridge(self.sendall, bytes(data), flags)
            return
        if self._released:
            raise _error(errno.EBADF)
        if channel.writing_paused or channel.write_shut or channel.ended:
            self._writable(self._deadline(flags))
        channel.exchange_open = False
        channel.write(data if type(data) is bytes else bytes(data))

    def write_all(self, data: Any) -> int:
        """``sendall(data)``, returning the number of bytes (a writer's ``write``)."""
        channel = self._channel
        if (
            type(data) is not bytes
            or channel.writing_paused
            or channel.ended
            or channel.write_shut
            or self._released
            or get_ident() != self._home.loop_thread
        ):
            self.sendall(data)  # the general path
            return data.nbytes if isinstance(data, memoryview) else len(data)
        channel.exchange_open = False
        channel.bytes_sent += len(data)  # channel.write(data), inlined: not ended, so not closed
        channel.transport.write(data)
        return len(data)

    def send(self, data: Any, flags: int = 0) -> int:
        """As :meth:`sendall`; returns the number of bytes (always all of them)."""
        view = data if type(data) is bytes else bytes(data)
        self.sendall(view, flags)
        return len(view)

    def sendto(self, data: Any, *args: Any) -> int:
        """A connected stream takes no destination: EISCONN, as the kernel says."""
        raise _error(errno.EISCONN)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send a binary file's contents (from ``offset``, ``count`` bytes or to its end)."""
        if offset:
            file.seek(offset)
        total = 0
        while count is None or total < count:
            size = _SENDFILE_CHUNK if count is None else min(_SENDFILE_CHUNK, count - total)
            chunk = file.read(size)
            if not chunk:
                break
            self.sendall(chunk)
            total += len(chunk)
        if hasattr(file, "seek"):
            file.seek(offset + total)
        return total

    # -- ending ----------------------------------------------------------------------------

    def shutdown(self, how: int) -> None:
        """Stop receiving (``SHUT_RD``), sending (``SHUT_WR``, after queued bytes) or both."""
        if self._elsewhere() and not self._channel.lost:
            self._bridge(self.shutdown, how)
            return
        self._check_open()
        if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
            raise _error(errno.EINVAL)
        channel = self._channel
        if how != socket.SHUT_WR:
            channel.read_shut = channel.halt = True
            channel.begin_shutdown()
        if how != socket.SHUT_RD and not channel.write_shut:
            channel.write_shut = True
            transport = channel.transport
            if not channel.closing and transport.can_write_eof():
                transport.write_eof()

    def close(self) -> None:
        """Close once no ``makefile`` object uses the socket any more (as sockets do)."""
        if self._elsewhere() and not self._channel.lost:
            self._bridge(self.close)
            return
        self._closed = True
        if self._io_refs <= 0:
            self.release()

    def release(self) -> None:
        """Really close the connection, whatever file objects still refer to it.

        ``close`` calls it once the last file is closed; the server calls it when the request
        is over, so a file object kept past the handler cannot keep the connection open.
        """
        if self._elsewhere() and not self._channel.lost:
            self._bridge(self.release)
            return
        self._closed = self._released = True
        if self._channel.started:
            self._channel.close()

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any:
        """A file object over this socket, as ``socket.makefile`` (see :mod:`.fileio`)."""
        return fileio.makefile(self, mode, buffering, encoding, errors, newline)

    # -- names and options -----------------------------------------------------------------

    def _extra(self, name: str) -> Any:
        names = self._names
        if names is None:
            names = self._names = {}
        if name not in names:
            names[name] = self._channel.transport.get_extra_info(name)
        return names[name]

    def fileno(self) -> int:
        """The connection's descriptor (-1 once closed); do not read or write it directly."""
        if self._released or self._channel.lost:
            return -1
        sock = transport_socket(self._channel)
        return -1 if sock is None else int(sock.fileno())

    def getpeername(self) -> Any:
        """The peer's address (``''`` for an unnamed Unix client, as the stdlib reports)."""
        self._check_open()
        peer = self._extra("peername")
        return "" if peer is None and self.family == socket.AF_UNIX else peer

    def getsockname(self) -> Any:
        """This end's address."""
        self._check_open()
        return self._extra("sockname")

    def setsockopt(self, level: int, option: int, value: Any, *size: int) -> None:
        """Set a socket option on the underlying socket."""
        if self._elsewhere() and not self._channel.lost:
            self._bridge(self.setsockopt, level, option, value, *size)
            return
        self._check_open()
        transport_socket(self._channel).setsockopt(level, option, value, *size)

    def getsockopt(self, level: int, option: int, *buflen: int) -> Any:
        """Read a socket option of the underlying socket."""
        if self._elsewhere() and not self._channel.lost:
            return self._bridge(self.getsockopt, level, option, *buflen)
        self._check_open()
        return transport_socket(self._channel).getsockopt(level, option, *buflen)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed
