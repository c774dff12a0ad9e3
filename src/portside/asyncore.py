"""asyncore -- the event-driven socket framework Python 3.12 removed -- on portside's engine.

The API and behaviour are those of Python 3.11's ``asyncore`` (a :class:`dispatcher` per
socket, ``readable()``/``writable()`` consulted before events are delivered, ``handle_*``
callbacks, :func:`loop` over a map of file descriptors), so code written for it runs after
changing the import line (or unchanged, under ``python -m portside.legacy``).

What differs is underneath: :func:`loop` waits on epoll instead of ``select()`` -- the map's own,
directly, or through the engine's event loop (uvloop or asyncio) when the map shares it -- so
there is no 1,024-descriptor limit and an iteration costs in proportion to the active
dispatchers, not to the map. How predicates are re-checked is
described in :mod:`portside._asyncore.driver`. Extras: :func:`attach` and :func:`loop_async`
run a map inside an asyncio program; TLS sockets (``SSLContext.wrap_socket(...,
do_handshake_on_connect=False)``) are handshaken by the engine, and ``send``/``recv`` treat
want-read/want-write as "try again later".
"""

from __future__ import annotations

import os
import socket
import sys
from errno import (
    EAGAIN,
    EALREADY,
    EBADF,
    ECONNABORTED,
    ECONNRESET,
    EINPROGRESS,
    EINVAL,
    EISCONN,
    ENOTCONN,
    EPIPE,
    ESHUTDOWN,
    EWOULDBLOCK,
    errorcode,
)
from typing import Any

from portside._asyncore import registration as _registration
from portside._asyncore.files import file_wrapper
from portside._asyncore.running import Attachment, attach, loop_async, release, use_loop
from portside._asyncore.running import run as _run
from portside._asyncore.running import run_once as _run_once
from portside._asyncore.shared import DISCONNECTED as _DISCONNECTED
from portside._asyncore.shared import DRIVERS as _DRIVERS
from portside._asyncore.shared import ExitNow
from portside._asyncore.shared import handling as _handling
from portside._asyncore.shared import touch as _touch

__all__ = [
    "EAGAIN",
    "EALREADY",
    "EBADF",
    "ECONNABORTED",
    "ECONNRESET",
    "EINPROGRESS",
    "EINVAL",
    "EISCONN",
    "ENOTCONN",
    "EPIPE",
    "ESHUTDOWN",
    "EWOULDBLOCK",
    "Attachment",
    "ExitNow",
    "attach",
    "close_all",
    "compact_traceback",
    "dispatcher",
    "dispatcher_with_send",
    "errorcode",
    "file_dispatcher",
    "file_wrapper",
    "loop",
    "loop_async",
    "poll",
    "poll2",
    "poll3",
    "read",
    "readwrite",
    "socket_map",
    "use_loop",
    "write",
]

socket_map: dict[int, Any] = {}
"""The default map of file descriptor -> dispatcher that :func:`loop` runs."""

_reraised_exceptions = (ExitNow, KeyboardInterrupt, SystemExit)
_POLL_CLOSE = 0x008 | 0x010 | 0x020  # POLLERR | POLLHUP | POLLNVAL
_POLL_IN, _POLL_PRI, _POLL_OUT = 0x001, 0x002, 0x004


def _strerror(err: int) -> str:
    try:
        return os.strerror(err)
    except (ValueError, OverflowError):
        return errorcode.get(err, f"Unknown error {err}")


def _guarded(obj: Any, handler: Any) -> None:
    try:
        handler()
    except _reraised_exceptions:
        raise
    except BaseException:
        obj.handle_error()


def read(obj: Any) -> None:
    """Deliver a read event to ``obj`` (``handle_error`` on failure)."""
    _guarded(obj, obj.handle_read_event)


def write(obj: Any) -> None:
    """Deliver a write event to ``obj`` (``handle_error`` on failure)."""
    _guarded(obj, obj.handle_write_event)


def _exception(obj: Any) -> None:
    _guarded(obj, obj.handle_expt_event)


def readwrite(obj: Any, flags: int) -> None:
    """Deliver the events of a ``select.poll`` flag word to ``obj``, as ``poll2`` does."""
    try:
        if flags & _POLL_IN:
            obj.handle_read_event()
        if flags & _POLL_OUT:
            obj.handle_write_event()
        if flags & _POLL_PRI:
            obj.handle_expt_event()
        if flags & _POLL_CLOSE:
            obj.handle_close()
    except OSError as exc:
        if exc.errno in _DISCONNECTED:
            obj.handle_close()
        else:
            obj.handle_error()
    except _reraised_exceptions:
        raise
    except BaseException:
        obj.handle_error()


def poll(timeout: float = 0.0, map: dict[int, Any] | None = None) -> None:
    """One iteration: wait up to ``timeout`` seconds, then dispatch the events that are ready."""
    _run_once(socket_map if map is None else map, timeout)


def poll2(timeout: float = 0.0, map: dict[int, Any] | None = None) -> None:
    """The same as :func:`poll` (both wait on the engine; kept for ``use_poll`` callers)."""
    _run_once(socket_map if map is None else map, timeout)


poll3 = poll2


def loop(
    timeout: float = 30.0,
    use_poll: bool = False,
    map: dict[int, Any] | None = None,
    count: int | None = None,
) -> None:
    """Serve the dispatchers in ``map`` until it is empty, or for ``count`` iterations.

    ``timeout`` bounds each wait; ``use_poll`` is accepted and changes nothing (the engine
    uses epoll either way). Inside a running asyncio loop use :func:`loop_async` instead.
    """
    if map is None:
        map = socket_map
    if count is None:
        _run(map, timeout)
        return
    while map and count > 0:
        _run_once(map, timeout)
        count -= 1


class dispatcher:
    """A thin wrapper around a non-blocking socket, driven by :func:`loop`.

    Events arrive as ``handle_read_event``/``handle_write_event``, which turn into
    ``handle_accept``, ``handle_connect``, ``handle_read``, ``handle_write`` according to the
    ``accepting``/``connecting``/``connected`` flags; any exception in a handler goes to
    :meth:`handle_error` (except :class:`ExitNow`, KeyboardInterrupt and SystemExit, which
    leave the loop).
    """

    debug = False
    connecting = False
    closing = False
    addr: Any = None
    ignore_log_types = frozenset({"warning"})
    socket: Any

    def __init__(self, sock: socket.socket | None = None, map: dict[int, Any] | None = None):
        self._map = socket_map if map is None else map
        self._fileno: int | None = None
        # Read for every event, so kept on the instance only (asyncore also had them on the
        # class, as False): CPython 3.12+ specializes a read of an instance attribute only when
        # the class has no attribute of that name (measured: 2-3 % per message on 3.12 and 3.13).
        self.connected = False
        self.accepting = False
        if sock is None:
            self.socket = None
            return
        sock.setblocking(False)
        self.set_socket(sock, map)
        self.connected = True
        try:
            self.addr = sock.getpeername()
        except OSError as err:
            if err.errno in (ENOTCONN, EINVAL):
                self.connected = False  # an unconnected socket was handed over
            else:
                self.del_channel(map)
                raise

    def __repr__(self) -> str:
        cls = type(self)
        status = [f"{cls.__module__}.{cls.__qualname__}"]
        if self.accepting and self.addr:
            status.append("listening")
        elif self.connected:
            status.append("connected")
        if self.addr is not None:
            try:
                status.append("%s:%d" % self.addr)  # noqa: UP031 -- asyncore's own format
            except TypeError:
                status.append(repr(self.addr))
        return f"<{' '.join(status)} at {id(self):#x}>"

    # -- the map ---------------------------------------------------------------------------

    def add_channel(self, map: dict[int, Any] | None = None) -> None:
        """Enter ``map`` (default: this dispatcher's map) under the socket's descriptor."""
        if map is None:
            map = self._map
        map[self._fileno] = self  # type: ignore[index]  # None if no socket, as asyncore
        driver = _DRIVERS.get(id(map))
        if driver is not None:
            driver.touch(self)

    def del_channel(self, map: dict[int, Any] | None = None) -> None:
        """Leave ``map``; the loop stops watching the descriptor at once."""
        fd = self._fileno
        if map is None:
            map = self._map
        if fd in map:
            del map[fd]
            driver = _DRIVERS.get(id(map))
            if driver is not None:
                driver.forget(fd)  # before the socket closes and the number is reused
        self._fileno = None

    # -- the socket ------------------------------------------------------------------------

    def create_socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> None:
        """Create a non-blocking socket and take it as this dispatcher's socket."""
        self.family_and_type = family, type
        sock = socket.socket(family, type)
        sock.setblocking(False)
        self.set_socket(sock)

    def set_socket(self, sock: Any, map: dict[int, Any] | None = None) -> None:
        """Use ``sock`` (already non-blocking) and enter the map."""
        self.socket = sock
        self._fileno = sock.fileno()
        self.add_channel(map)

    def set_reuse_addr(self) -> None:
        """Set SO_REUSEADDR, if the platform allows it."""
        try:
            sock = self.socket
            flag = sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, flag | 1)
        except OSError:
            pass  # asyncore ignores platforms without SO_REUSEADDR

    def readable(self) -> bool:
        """Whether read events are wanted; asked before every wait."""
        return True

    def writable(self) -> bool:
        """Whether write events are wanted; asked before every wait."""
        return True

    def listen(self, num: int) -> None:
        """Listen for connections (``handle_accepted`` gets each one)."""
        self.accepting = True
        _touch(self)
        if os.name == "nt" and num > 5:
            num = 5
        self.socket.listen(num)

    def bind(self, addr: Any) -> None:
        """Bind the socket to ``addr``."""
        self.addr = addr
        self.socket.bind(addr)

    def connect(self, address: Any) -> None:
        """Start connecting; ``handle_connect`` runs when the connection is up."""
        self.connected = False
        self.connecting = True
        _touch(self)
        err = self.socket.connect_ex(address)
        if err in (EINPROGRESS, EALREADY, EWOULDBLOCK) or (err == EINVAL and os.name == "nt"):
            self.addr = address
            return
        if err in (0, EISCONN):
            self.addr = address
            self.handle_connect_event()
        else:
            raise OSError(err, errorcode[err])

    def accept(self) -> tuple[Any, Any] | None:
        """Accept a connection: ``(sock, addr)``, or None when there was none after all."""
        try:
            conn, addr = self.socket.accept()
        except TypeError:
            return None
        except OSError as why:
            if why.errno in (EWOULDBLOCK, ECONNABORTED, EAGAIN):
                return None
            raise
        return conn, addr

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Send what the socket takes now; returns the count (0 if it would block)."""
        try:
            sent: int = self.socket.send(data)
        except OSError as why:
            return _send_failed(self, why)
        return sent

    def recv(self, buffer_size: int) -> bytes:
        """Receive up to ``buffer_size`` bytes; b'' (after ``handle_close``) at end of stream."""
        try:
            data: bytes = self.socket.recv(buffer_size)
        except OSError as why:
            if why.errno in _DISCONNECTED:
                self.handle_close()
                return b""
            if _tls_retry(self, why):
                return b""
            raise
        if not data:
            self.handle_close()
            return b""
        return data

    def close(self) -> None:
        """Leave the map and close the socket."""
        self.connected = False
        self.accepting = False
        self.connecting = False
        self.del_channel()
        if self.socket is not None:
            try:
                self.socket.close()
            except OSError as why:
                if why.errno not in (ENOTCONN, EBADF):
                    raise

    # -- logging -----------------------------------------------------------------------------

    def log(self, message: Any) -> None:
        """Write ``message`` to stderr."""
        sys.stderr.write(f"log: {message}\n")

    def log_info(self, message: str, type: str = "info") -> None:
        """Print ``type: message`` unless ``type`` is in ``ignore_log_types``."""
        if type not in self.ignore_log_types:
            print(f"{type}: {message}")

    # -- event dispatch ----------------------------------------------------------------------

    def handle_read_event(self) -> None:
        """A read event: accept, finish connecting, or read."""
        if self.accepting:
            self.handle_accept()
        elif not self.connected:
            if self.connecting:
                self.handle_connect_event()
            self.handle_read()
        else:
            self.handle_read()

    def handle_connect_event(self) -> None:
        """The connection attempt finished: raise its error or call ``handle_connect``."""
        err = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            raise OSError(err, _strerror(err))
        self.handle_connect()
        self.connected = True
        self.connecting = False

    def handle_write_event(self) -> None:
        """A write event: finish connecting, then write (never for a listening socket)."""
        if self.accepting:
            return
        if not self.connected and self.connecting:
            self.handle_connect_event()
        self.handle_write()

    def handle_expt_event(self) -> None:
        """An exceptional condition: close on a socket error, else ``handle_expt``."""
        err = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            self.handle_close()
        else:
            self.handle_expt()

    def handle_error(self) -> None:
        """An uncaught exception in a handler: print a compact traceback and close."""
        _nil, t, v, tbinfo = compact_traceback()
        try:
            self_repr = repr(self)
        except BaseException:
            self_repr = f"<__repr__(self) failed for object at {id(self):0x}>"
        self.log_info(
            f"uncaptured python exception, closing channel {self_repr} ({t}:{v} {tbinfo})",
            "error",
        )
        self.handle_close()

    def handle_expt(self) -> None:
        """Out-of-band data arrived (see the docs: the engine does not watch for it)."""
        self.log_info("unhandled incoming priority event", "warning")

    def handle_read(self) -> None:
        """The socket has data to read."""
        self.log_info("unhandled read event", "warning")

    def handle_write(self) -> None:
        """The socket can take data."""
        self.log_info("unhandled write event", "warning")

    def handle_connect(self) -> None:
        """The outgoing connection is up."""
        self.log_info("unhandled connect event", "warning")

    def handle_accept(self) -> None:
        """A connection is waiting on a listening socket: accept it."""
        pair = self.accept()
        if pair is not None:
            self.handle_accepted(*pair)

    def handle_accepted(self, sock: socket.socket, addr: Any) -> None:
        """A connection was accepted; the default closes it."""
        sock.close()
        self.log_info("unhandled accepted event", "warning")

    def handle_close(self) -> None:
        """The socket closed; the default closes the dispatcher."""
        self.log_info("unhandled close event", "warning")
        self.close()


def _send_failed(d: dispatcher, why: OSError) -> int:
    """What ``dispatcher.send`` makes of the socket's error ``why``: 0 sent, or raise it."""
    if why.errno == EWOULDBLOCK:
        return 0
    if why.errno in _DISCONNECTED:
        d.handle_close()
        return 0
    if _tls_retry(d, why):
        return 0
    raise why


def _tls_retry(d: dispatcher, why: OSError) -> bool:
    """True when ``why`` is a TLS want-read/want-write (retry later) or a TLS end of stream."""
    ssl = sys.modules.get("ssl")
    if ssl is None or not isinstance(why, ssl.SSLError):
        return False
    want = (
        _registration.WANT_READ
        if isinstance(why, ssl.SSLWantReadError)
        else _registration.WANT_WRITE
        if isinstance(why, ssl.SSLWantWriteError)
        else 0
    )
    if want:
        driver = _DRIVERS.get(id(getattr(d, "_map", None)))
        if driver is not None:
            driver.want(d, want)
        return True
    if isinstance(why, ssl.SSLZeroReturnError | ssl.SSLEOFError):
        d.handle_close()
        return True
    return False


_registration.default_expt = (dispatcher.handle_expt, dispatcher.handle_expt_event)
_registration.default_read_event = dispatcher.handle_read_event
_registration.always_readable.add(dispatcher.readable)


class dispatcher_with_send(dispatcher):
    """A dispatcher whose :meth:`send` buffers what the socket does not take at once."""

    def __init__(self, sock: socket.socket | None = None, map: dict[int, Any] | None = None):
        super().__init__(sock, map)
        self.out_buffer = b""

    def initiate_send(self) -> None:
        """Send as much of ``out_buffer`` as the socket takes (64 KiB at most)."""
        try:  # dispatcher.send(), inlined: this runs for every message
            num_sent: int = self.socket.send(self.out_buffer[:65536])
        except OSError as why:
            num_sent = _send_failed(self, why)
        self.out_buffer = self.out_buffer[num_sent:]
        if self is not _handling.dispatcher:
            _touch(self)

    def handle_write(self) -> None:
        self.initiate_send()

    def writable(self) -> bool:
        # the map driver evaluates this expression itself (registration.queue_writable)
        return not (self.connected and not self.out_buffer)

    def send(self, data: bytes | bytearray | memoryview) -> None:  # type: ignore[override]
        """Queue ``data`` and send what can go now (returns None, as asyncore's does)."""
        if self.debug:
            self.log_info(f"sending {data!r}")
        self.out_buffer = self.out_buffer + data
        self.initiate_send()
        if self is not _handling.dispatcher:
            _touch(self)


_registration.queue_writable[dispatcher_with_send.writable] = _registration.OUT_BUFFER


def compact_traceback() -> tuple[tuple[str, str, str], type[BaseException], BaseException, str]:
    """The exception being handled as ``((file, function, line), type, value, info)``."""
    t, v, tb = sys.exc_info()
    if tb is None or t is None or v is None:
        raise AssertionError("traceback does not exist")
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, code.co_name, str(tb.tb_lineno)))
        tb = tb.tb_next
    info = " ".join(f"[{f}|{n}|{line}]" for f, n, line in frames)
    return frames[-1], t, v, info


def close_all(map: dict[int, Any] | None = None, ignore_all: bool = False) -> None:
    """Close every dispatcher in ``map`` and empty it."""
    if map is None:
        map = socket_map
    try:
        for obj in list(map.values()):
            try:
                obj.close()
            except OSError as exc:
                if exc.errno != EBADF and not ignore_all:
                    raise
            except _reraised_exceptions:
                raise
            except BaseException:
                if not ignore_all:
                    raise
        map.clear()
    finally:
        release(map)


class file_dispatcher(dispatcher):
    """A dispatcher over a file descriptor or file object (a pipe, a terminal)."""

    def __init__(self, fd: Any, map: dict[int, Any] | None = None) -> None:
        super().__init__(None, map)
        self.connected = True
        try:
            fd = fd.fileno()
        except AttributeError:
            pass  # already a descriptor
        self.set_file(fd)
        os.set_blocking(fd, False)

    def set_file(self, fd: int) -> None:
        """Wrap ``fd`` in a :class:`file_wrapper` and enter the map."""
        self.socket = file_wrapper(fd)
        self._fileno = self.socket.fileno()
        self.add_channel()
