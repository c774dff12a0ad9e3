"""File objects over request sockets: ``makefile`` for green sockets, and the handler's writer.

``makefile`` mirrors ``socket.makefile``'s documented behaviour: modes made of ``r``, ``w``
and ``b``; ``buffering=0`` gives an unbuffered binary object; text modes wrap the binary one in
``io.TextIOWrapper``; the socket stays open until the file objects made from it are closed.
A buffered reader over a green socket keeps no buffer of its own: it reads the connection's
buffer directly, so a parked idle connection holds no 8 KiB read buffer, ``readline`` finds
the newline in place, and ``recv`` on the socket sees whatever the reader did not take.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["ChannelRawIO", "ChannelReader", "SocketWriter", "makefile"]


class _ReaderSlots(io.BufferedIOBase):
    """Where a reader keeps its state: slots, so an open reader has no instance dict."""

    __slots__ = ("_sock", "readline")
    _sock: Any
    readline: Callable[..., bytes]


class ChannelReader(_ReaderSlots):
    """The buffered binary reader of a green socket (``rfile`` of a green handler).

    ``readline(size=-1)`` returns one line including its newline (at most ``size`` bytes),
    ``b""`` at end-of-file. While the reader is open it is the socket's own line reader, held
    in a slot: the per-line path of a line protocol is then one call, and a held connection
    pays for no instance dict.
    """

    __slots__ = ()
    mode = "rb"

    def __init__(self, sock: Any) -> None:
        super().__init__()
        self._sock = sock
        self.readline = sock.read_line

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self._sock.fileno())

    @property
    def name(self) -> int:
        """The descriptor, as a socket file's ``name`` is."""
        return self.fileno()

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes (fewer only at end-of-file); all until end-of-file if negative."""
        self._check()
        return self._sock.read_exactly(-1 if size is None else size)  # type: ignore[no-any-return]

    def read1(self, size: int = -1) -> bytes:
        """What has arrived (at most ``size``), waiting only if nothing has."""
        self._check()
        return self._sock.read_some(size)  # type: ignore[no-any-return]

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` (fewer bytes only at end-of-file)."""
        data = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def readinto1(self, buffer: Any) -> int:
        """Copy what has arrived into ``buffer``, waiting only if nothing has."""
        self._check()
        return self._sock.recv_into(buffer)  # type: ignore[no-any-return]

    def peek(self, size: int = 0) -> bytes:
        """Buffered bytes without consuming them, waiting only if there are none."""
        self._check()
        return self._sock.read_some(-1, flags=_MSG_PEEK)  # type: ignore[no-any-return]

    def close(self) -> None:
        if not self.closed:
            self.readline = _closed_call
            super().close()
            self._sock._decref_socketios()

    def detach(self) -> Any:
        raise io.UnsupportedOperation("a socket reader has no raw stream to detach")


class ChannelRawIO(io.RawIOBase):
    """The unbuffered binary file of a green socket (``makefile(..., buffering=0)``)."""

    def __init__(self, sock: Any, mode: str, *, owns_ref: bool = True) -> None:
        super().__init__()
        self._sock = sock
        self._reading = "r" in mode
        self._writing = "w" in mode
        self._owns_ref = owns_ref
        self.mode = mode + "b"

    def readable(self) -> bool:
        return self._reading

    def writable(self) -> bool:
        return self._writing

    def fileno(self) -> int:
        return int(self._sock.fileno())

    @property
    def name(self) -> int:
        """The descriptor, as a socket file's ``name`` is."""
        return self.fileno()

    def readinto(self, buffer: Any) -> int | None:
        """One receive into ``buffer``; None when a non-blocking socket has nothing."""
        if self.closed or not self._reading:
            raise (
                io.UnsupportedOperation("not readable")
                if not self.closed
                else ValueError("I/O operation on closed file.")
            )
        try:
            return self._sock.recv_into(buffer)  # type: ignore[no-any-return]
        except BlockingIOError:
            return None

    def write(self, data: Any) -> int | None:
        """One send of ``data``; None when a non-blocking socket cannot take it."""
        if self.closed or not self._writing:
            raise (
                io.UnsupportedOperation("not writable")
                if not self.closed
                else ValueError("I/O operation on closed file.")
            )
        try:
            return self._sock.send(data)  # type: ignore[no-any-return]
        except BlockingIOError:
            return None

    def close(self) -> None:
        if not self.closed:
            super().close()
            if self._owns_ref:
                self._sock._decref_socketios()


class _WriterSlots(io.BufferedIOBase):
    """Where a writer keeps its state: slots, so an open writer has no instance dict."""

    __slots__ = ("_sock", "write")
    _sock: Any
    write: Callable[[Any], int]


class SocketWriter(_WriterSlots):
    """An unbuffered writer: each ``write`` is one ``sendall`` (``wfile`` when wbufsize is 0).

    ``write(data)`` sends all of ``data`` and returns its length in bytes. While the writer
    is open it is the socket's ``write_all`` when it has one (green and request sockets: one
    call per write instead of two), held in a slot.
    """

    __slots__ = ()

    def __init__(self, sock: Any) -> None:
        super().__init__()
        self._sock = sock
        write_all = getattr(sock, "write_all", None)
        self.write = self._sendall if write_all is None else write_all

    def _sendall(self, data: Any) -> int:
        self._sock.sendall(data)
        return len(data) if type(data) is bytes else memoryview(data).nbytes

    def close(self) -> None:
        if not self.closed:
            self.write = _closed_call
            super().close()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self._sock.fileno())


def _closed_call(*args: Any) -> Any:
    """What ``readline``/``write`` become once their file is closed."""
    raise ValueError("I/O operation on closed file.")


_MSG_PEEK = int(socket.MSG_PEEK)


def makefile(
    sock: Any,
    mode: str,
    buffering: int | None,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
) -> Any:
    """``socket.makefile`` for a green socket (see the module docstring)."""
    if not set(mode) <= {"r", "w", "b"}:
        raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
    writing = "w" in mode
    reading = "r" in mode or not writing
    binary = "b" in mode
    rawmode = ("r" if reading else "") + ("w" if writing else "")
    if buffering is None or buffering < 0:
        buffering = io.DEFAULT_BUFFER_SIZE
    if buffering == 0:
        if not binary:
            raise ValueError("unbuffered streams must be binary")
        sock._io_refs += 1
        return ChannelRawIO(sock, rawmode)
    sock._io_refs += 1
    buffer: Any
    if reading and writing:
        buffer = io.BufferedRWPair(
            ChannelRawIO(sock, "r"), ChannelRawIO(sock, "w", owns_ref=False), buffering
        )
    elif reading:
        buffer = ChannelReader(sock)
    else:
        buffer = io.BufferedWriter(ChannelRawIO(sock, "w"), buffering)
    if binary:
        return buffer
    text = io.TextIOWrapper(buffer, io.text_encoding(encoding), errors, newline)
    text.mode = mode  # type: ignore[misc]
    return text
