"""The file server's engine connection: the HTTP machine, its timeouts, and shutdown.

Per connection, in order::

    start -> (request head -> reply -> [file body, asynchronously])* -> close
             a head must arrive within header_timeout of its first byte (else 408);
             between requests the connection may idle for keep_alive_timeout;
             a response must make progress every send_timeout (else the connection is aborted)

A request is answered once it has been read to its end (a body, which this server never
uses, is read and dropped within ``max_body``), so a malformed body is still answered with
400; a client that waits for ``100 Continue`` is answered at once instead, and the
connection then closes. Requests are answered one at a time; pipelined ones wait in the
machine's buffer, and reading pauses if more than ``MAX_BACKLOG`` bytes pile up behind a
response in progress.
When the server closes after an error or with request bytes still unread, it first
half-closes and keeps reading (discarding) for up to ``LINGER_TIMEOUT``, so the client's
unread data cannot make the kernel reset the connection before the answer is read.

One timer per connection serves every timeout: it is armed for the earliest deadline and,
when it fires early because the deadline moved, re-armed, so a request costs no timer churn.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import os
import socket
from typing import TYPE_CHECKING, Any, Final

from portside._fileserver.accesslog import MAX_LOGGED_LINE
from portside._fileserver.sender import Sender
from portside.core.connection import Connection, ConnectionOwner
from portside.proto.http import (
    NEED_DATA,
    Data,
    EndOfMessage,
    ProtocolError,
    Request,
    Response,
    ServerConnection,
    State,
)

if TYPE_CHECKING:
    from portside._fileserver.site import Reply, Site

__all__ = ["LINGER_TIMEOUT", "MAX_BACKLOG", "FileConnection"]

# Unread request bytes held behind a response in progress before reading pauses: a few
# pipelined requests fit, a client streaming junk does not.
MAX_BACKLOG: Final = 64 * 1024
# How long a closing connection keeps discarding the client's input (nginx's lingering_time
# is 30 s, lingering_timeout 5 s; an honest client closes within a round trip).
LINGER_TIMEOUT: Final = 2.0
_CLOSE: Final = (b"connection", b"close")


def _request_line(request: Request) -> bytes:
    return b"%s %s HTTP/%s" % (request.method, request.target, request.http_version)


class _Wait(enum.Enum):
    """What the connection's one timer is waiting for."""

    NOTHING = "NOTHING"
    HEAD = "HEAD"  # a request head (408 when late)
    KEEP_ALIVE = "KEEP_ALIVE"  # the next request on an idle connection (close quietly)
    BODY = "BODY"  # more of a request body we are discarding (close)
    SEND = "SEND"  # progress on a response body (abort)
    LINGER = "LINGER"  # the client's close after ours (close)

    __hash__ = object.__hash__


class FileConnection(Connection):
    """One HTTP/1.1 connection of the file server."""

    __slots__ = (
        "_backlog",
        "_deadline",
        "_eof",
        "_head_size",
        "_http",
        "_job",
        "_keep_alive_timeout",
        "_line",
        "_lingering",
        "_max_requests",
        "_reading_paused",
        "_request",
        "_sender",
        "_served",
        "_site",
        "_sock",
        "_sock_fd",
        "_status",
        "_stopping",
        "_timer",
        "_timer_at",
        "_tls",
        "_wait",
    )

    def __init__(self, owner: ConnectionOwner, peer: Any, site: Site) -> None:
        super().__init__(owner, peer)
        self._site = site
        self._http = ServerConnection(site.http_limits)
        self._sender: Sender | None = None
        self._job: asyncio.Future[Reply] | None = None  # a reply being built in a thread
        self._request: Request | None = None  # read, waiting for the end of its body
        self._served = 0
        self._max_requests = site.options.max_requests
        self._keep_alive_timeout = site.options.keep_alive_timeout
        self._stopping = False
        self._lingering = False
        self._eof = False  # the client half-closed
        self._reading_paused = False
        self._backlog = 0
        self._sock_fd = -1  # the transport's socket, when sendfile may be used on it
        self._sock: socket.socket | None = None  # its duplicate, made on first use
        self._tls = False
        self._line = b""  # the request line of the response in progress, for the access log
        self._status = 0
        self._head_size = 0
        self._wait = _Wait.NOTHING
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # -- engine hooks --------------------------------------------------------------------------

    def _on_start(self) -> None:
        transport = self.transport
        self._tls = transport.get_extra_info("ssl_object") is not None
        if self._site.options.sendfile and not self._tls and hasattr(os, "sendfile"):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                self._sock_fd = sock.fileno()
        self._arm(_Wait.HEAD, self._site.options.header_timeout)

    def _on_data(self, data: bytes) -> None:
        if self._lingering or self.closing:
            return
        try:
            self._http.receive_data(data)
        except ProtocolError:
            return  # input after an error we are already answering
        if self._sender is not None or self._job is not None:
            self._backlog += len(data)
            if self._backlog > MAX_BACKLOG and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()
            return
        self._advance()

    def _on_eof(self) -> bool | None:
        self._eof = True
        if self._lingering or self.closing:
            return None
        self._http.receive_data(b"")
        if self._sender is None and self._job is None:
            self._advance()
        return None if self._tls else True

    def _on_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._job is not None:
            self._job.cancel()  # the thread finishes its work; the result is dropped
            self._job = None
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            self._log(self._body_sent(sender))
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _on_resume_writing(self) -> None:
        if self._sender is not None:
            self._sender.resume()

    def begin_shutdown(self) -> None:
        """Finish the response in flight, then close; an idle connection closes at once."""
        self._stopping = True
        if self._sender is None and self._job is None and not self._lingering:
            self.close()

    # -- timeouts ------------------------------------------------------------------------------

    def _arm(self, wait: _Wait, seconds: float) -> None:
        deadline = self.loop.time() + seconds
        self._wait = wait
        self._deadline = deadline
        timer = self._timer
        if timer is None or deadline < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _on_timer(self) -> None:
        self._timer = None
        wait = self._wait
        if wait is _Wait.NOTHING or self.closing:
            return
        deadline = self._deadline
        if wait is _Wait.SEND and self._sender is not None:
            deadline = self._sender.last_progress + self._site.options.send_timeout
        if self.loop.time() < deadline:
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
            return
        self.owner.counters.timeouts += 1
        self._wait = _Wait.NOTHING
        if wait is _Wait.HEAD and self._http.buffered:
            self._answer_error(408)
        elif wait is _Wait.SEND or self.transport.get_write_buffer_size():
            self.abort()  # the client stopped reading: what is queued would never leave
        else:
            self.close()

    # -- requests ------------------------------------------------------------------------------

    def _advance(self) -> None:
        """Read events until the machine needs data or a response is in progress."""
        http = self._http
        while True:
            try:
                event = http.next_event()
            except ProtocolError as exc:
                self._answer_error(exc.status)
                return
            kind = type(event)
            if kind is EndOfMessage:
                request = self._request
                if request is not None:
                    self._request = None
                    if not self._respond(request):
                        return
                    if not http.buffered and not self._eof:  # what next_event would say
                        self._arm(_Wait.KEEP_ALIVE, self._keep_alive_timeout)
                        return
            elif kind is Request:
                assert isinstance(event, Request)
                if http.expects_continue:  # answer now rather than ask for an unwanted body
                    if not self._respond(event):
                        return
                else:
                    self._request = event
            elif event is NEED_DATA:
                self._await_input()
                return
            elif kind is Data:
                continue  # a request body is read to its end and dropped
            else:  # PAUSED (an answer without a request) or ConnectionClosed
                if not http.keep_alive or http.client_state is State.CLOSED:
                    self.close()
                return

    def _await_input(self) -> None:
        http = self._http
        if http.client_state is State.IDLE:
            if http.buffered:
                if self._wait is not _Wait.HEAD:
                    self._arm(_Wait.HEAD, self._site.options.header_timeout)
            elif self._served:
                self._arm(_Wait.KEEP_ALIVE, self._keep_alive_timeout)
        else:
            self._arm(_Wait.BODY, self._site.options.header_timeout)

    def _respond(self, request: Request) -> bool:
        """Answer ``request``; True when it is done and the connection goes on."""
        site = self._site
        self._served += 1
        self._wait = _Wait.NOTHING
        reply = site.reply(request)
        if reply.later is not None:  # slow work (a listing): off the loop, then answer
            self._job = job = self.loop.run_in_executor(None, reply.later)
            job.add_done_callback(functools.partial(self._job_done, request))
            return False
        return self._answer(request, reply)

    def _job_done(self, request: Request, job: asyncio.Future[Reply]) -> None:
        """A reply built in a thread is ready: send it, then go on with the next request."""
        if self._job is not job:
            return  # the connection was lost meanwhile
        self._job = None
        try:
            try:
                reply = job.result()
            except Exception as exc:
                self.owner.report_error(f"{type(self).__name__}: building a reply failed", exc)
                reply = self._site.error(500)
            self._backlog = 0
            if self._reading_paused:
                self._reading_paused = False
                self.transport.resume_reading()
            if self._answer(request, reply):
                self._advance()
        except Exception as exc:
            self._failed("answering a request", exc)

    def _answer(self, request: Request, reply: Reply) -> bool:
        """Send ``reply`` to ``request``; True when it is done and the connection goes on."""
        site = self._site
        if self._served >= self._max_requests or self._stopping:
            reply.headers.append(_CLOSE)
        http = self._http
        self._status = reply.status
        if site.access_log is not None:
            self._line = _request_line(request)
        response = Response(reply.status, reply.headers)
        if reply.fd >= 0:
            return self._send_file(reply, http.send_response(response, external=reply.length))
        self.write(http.send_response(response, reply.content))
        if site.access_log is not None:
            self._log(0 if request.method == b"HEAD" else len(reply.content))
        if http.keep_alive and not self._stopping:
            return True
        self._close_lingering()
        return False

    def _send_file(self, reply: Reply, head: bytes) -> bool:
        pieces = reply.pieces
        sock = None
        if self._sock_fd >= 0 and not self.transport.get_write_buffer_size():
            sock = self._sock or self._duplicate_socket()
            pieces.insert(0, head)
        else:
            self.write(head)
        self._head_size = len(head)
        sender = Sender(self, reply.fd, pieces, sock, self._sent)
        if sender.start():
            return self._responded(self._body_sent(sender))
        if self.closing:
            return False
        self._sender = sender
        self._arm(_Wait.SEND, self._site.options.send_timeout)
        return False

    def _duplicate_socket(self) -> socket.socket:
        """The connection's own socket object over a duplicate of the transport's descriptor."""
        sock = socket.socket(fileno=os.dup(self._sock_fd))
        sock.setblocking(False)  # already so: the duplicate shares the file status flags
        self._sock = sock
        return sock

    def _sent(self, ok: bool) -> None:
        """The sender finished a response asynchronously."""
        sender, self._sender = self._sender, None
        self._backlog = 0
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        if ok and sender is not None and self._responded(self._body_sent(sender)):
            self._advance()

    def _body_sent(self, sender: Sender) -> int:
        return sender.sent - self._head_size if sender.direct else sender.sent

    def _responded(self, body_size: int) -> bool:
        """A response is complete: log it, then close or wait for the next request."""
        self._log(body_size)
        if not self._http.keep_alive or self._stopping:
            self._close_lingering()
            return False
        return True

    def _log(self, body_size: int) -> None:
        access_log = self._site.access_log
        if access_log is not None and access_log.enabled():
            access_log.write(self.peer, self._line, self._status, body_size)

    # -- errors and closing --------------------------------------------------------------------

    def _answer_error(self, status: int) -> None:
        """Answer a protocol error or a late head with ``status``, then close."""
        http = self._http
        if http.server_state is State.IDLE or http.server_state is State.SEND_RESPONSE:
            reply = self._site.error(status, [_CLOSE])
            self._status = status
            if self._request is not None:  # the error is in its body
                self._line = _request_line(self._request)
            else:  # in a head: log what there is of its first line
                first = http.trailing_data[0][:MAX_LOGGED_LINE].split(b"\n", 1)[0]
                self._line = first.rstrip(b"\r")
            self.write(http.send_response(Response(status, reply.headers), reply.content))
            self._log(len(reply.content))
        self._close_lingering(always=True)

    def _close_lingering(self, *, always: bool = False) -> None:
        """Close; first half-close and drain the client's input if some may be unread."""
        http = self._http
        unread = always or http.buffered or http.client_state is State.SEND_BODY
        transport = self.transport
        if not unread or self._eof or self._tls or self.closing or not transport.can_write_eof():
            self.close()
            return
        self._lingering = True
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._arm(_Wait.LINGER, LINGER_TIMEOUT)
