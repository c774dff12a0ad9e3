"""Writing a file body: zero-copy ``os.sendfile`` on the socket, or reads with back-pressure.

**Direct** mode is for plain TCP and Unix connections whose transport has nothing buffered:
the pieces (the head, literal bytes, file ranges) go straight to the socket, bytes with
``send(..., MSG_MORE)`` so the head leaves in the same segment as the start of the body (what
nginx's ``tcp_nopush`` does), file ranges with ``os.sendfile``. The loop's own ``sendfile``
is not used because uvloop has no zero-copy path and falls back to reads. The socket is a
duplicate of the transport's descriptor, owned by the connection, because the loop refuses
to watch a descriptor that a transport owns: when the socket is full, the sender waits for
it to become writable through the duplicate. The transport itself stays empty, so nothing
it holds can be overtaken. Memory stays flat whatever the client does: what has not been
sent is still on disk.

**Chunked** mode is the fallback (TLS, a platform without ``sendfile``, bytes still queued
in the transport, or sendfile turned off): ``os.pread`` a chunk, ``write`` it, and stop
while the connection's write buffer is above its high-water mark until the engine's
``resume_writing`` comes, so at most one chunk beyond the mark is ever held.

Both modes send at most ``SLICE`` bytes per turn of the loop, so one fast download cannot
starve the other connections.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from portside._fileserver.site import Piece
    from portside.core.connection import Connection

__all__ = ["CHUNK", "SLICE", "Sender"]

log = logging.getLogger("portside.http")

KiB: Final = 1024
# Bytes read per chunk in the fallback mode: the engine's default high-water mark, so one
# read fills the write buffer once.
CHUNK: Final = 64 * KiB
# Bytes sent per turn of the loop before letting other connections run: large enough that a
# 1 MiB file normally goes out in one turn, small enough to keep latency for others low.
SLICE: Final = 4096 * KiB
_MORE: Final = getattr(socket, "MSG_MORE", 0)
# The peer is gone: these end the response quietly (the connection is aborted).
_GONE: Final = frozenset(
    (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ETIMEDOUT)
)


class Sender:
    """Sends ``pieces`` (bytes, or ``(offset, count)`` of ``fd``) for one response.

    ``sock`` is the connection's duplicate socket for direct mode, None for chunked mode.
    ``start()`` returns True when everything was handed over at once; otherwise
    ``finished(ok)`` is called later (``ok`` False when the connection was aborted). The
    descriptor ``fd`` belongs to the sender from then on and is always closed.
    """

    __slots__ = (
        "_conn",
        "_fd",
        "_finished",
        "_pieces",
        "_scheduled",
        "_sock",
        "_started",
        "_sync_done",
        "_waiting",
        "last_progress",
        "sent",
    )

    def __init__(
        self,
        conn: Connection,
        fd: int,
        pieces: list[Piece],
        sock: socket.socket | None,
        finished: Callable[[bool], None],
    ) -> None:
        self._conn = conn
        self._fd = fd
        self._pieces = pieces
        self._sock = sock
        self._finished = finished
        self._waiting = False  # a writer callback is registered for the socket
        self._scheduled = False
        self._started = False
        self._sync_done = False
        self.sent = 0  # bytes handed to the kernel (direct) or the transport (chunked)
        self.last_progress = conn.loop.time()

    @property
    def direct(self) -> bool:
        """True when the pieces go to the socket without the transport."""
        return self._sock is not None

    def start(self) -> bool:
        """Begin sending; True if the whole body went out before returning."""
        self._pump()
        self._started = True
        return self._sync_done

    def resume(self) -> None:
        """The transport's buffer drained below its low-water mark (chunked mode)."""
        if not self.direct and not self._scheduled and self._fd >= 0:
            self._pump()

    def cancel(self) -> None:
        """Stop for good and release the descriptors (the connection is gone)."""
        self._pieces.clear()
        self._release()

    # -- internals ---------------------------------------------------------------------------

    def _release(self) -> None:
        if self._waiting:
            assert self._sock is not None
            self._waiting = False
            self._conn.loop.remove_writer(self._sock.fileno())
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _done(self, ok: bool) -> None:
        self._release()
        if self._started:
            self._finished(ok)
        else:
            self._sync_done = ok

    def _fail(self, why: str) -> None:
        log.warning("%s: aborting a response to %s: %s", type(self).__name__, self._conn.peer, why)
        self._pieces.clear()
        self._release()
        self._conn.abort()

    def _pump(self) -> None:
        self._scheduled = False
        if self._fd < 0:
            return
        if self._conn.closing:
            self.cancel()
            return
        if self._sock is not None:
            self._pump_direct(self._sock)
        else:
            self._pump_chunks()

    def _later(self) -> None:
        """Continue on the next turn of the loop (a writer callback would fire anyway)."""
        if not self._waiting and not self._scheduled:
            self._scheduled = True
            self._conn.loop.call_soon(self._pump)

    def _pump_direct(self, sock: socket.socket) -> None:
        conn, pieces, fd = self._conn, self._pieces, self._fd
        out = sock.fileno()
        sent = 0
        try:
            while pieces:
                piece = pieces[0]
                if type(piece) is tuple:
                    offset, count = piece
                    n = os.sendfile(out, fd, offset, min(count, SLICE))
                    if n == 0:
                        self._fail("the file got shorter while it was being sent")
                        return
                    if n < count:
                        pieces[0] = (offset + n, count - n)
                    else:
                        del pieces[0]
                else:
                    assert isinstance(piece, bytes)
                    n = sock.send(piece, _MORE if len(pieces) > 1 else 0)
                    if n < len(piece):
                        pieces[0] = piece[n:]
                    else:
                        del pieces[0]
                sent += n
                if sent >= SLICE and pieces:
                    self._later()
                    break
        except (BlockingIOError, InterruptedError):
            if not self._waiting:
                self._waiting = True
                conn.loop.add_writer(out, self._pump)
        except OSError as exc:
            if exc.errno not in _GONE:
                self._fail(f"sending failed: {exc}")
                return
            self._pieces.clear()
            self._release()
            conn.abort()
            return
        finally:
            if sent:
                self.sent += sent
                conn.bytes_sent += sent
                self.last_progress = conn.loop.time()
        if not pieces:
            self._done(True)

    def _pump_chunks(self) -> None:
        conn, pieces, fd = self._conn, self._pieces, self._fd
        produced = 0
        while pieces and not conn.writing_paused and not conn.closing:
            piece = pieces[0]
            if type(piece) is tuple:
                offset, count = piece
                try:
                    data = os.pread(fd, min(count, CHUNK), offset)
                except OSError as exc:
                    self._fail(f"reading the file failed: {exc}")
                    return
                if not data:
                    self._fail("the file got shorter while it was being sent")
                    return
                n = len(data)
                if n < count:
                    pieces[0] = (offset + n, count - n)
                else:
                    del pieces[0]
            else:
                assert isinstance(piece, bytes)
                data = piece
                n = len(data)
                del pieces[0]
            conn.write(data)
            produced += n
            if produced >= SLICE and pieces:
                self._later()
                break
        if produced:
            self.sent += produced
            self.last_progress = conn.loop.time()
        if not pieces:
            self._done(True)
