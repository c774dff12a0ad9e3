"""The stdlib request handlers: ``BaseRequestHandler`` and its stream and datagram flavours.

A handler object lives for one request; its constructor runs ``setup()``, ``handle()`` and
(always, once ``setup`` succeeded) ``finish()``.
"""

from __future__ import annotations

import io
import logging
import socket
from typing import Any

from portside._socketserver.fileio import SocketWriter

__all__ = ["BaseRequestHandler", "DatagramRequestHandler", "StreamRequestHandler"]

log = logging.getLogger("portside")


class BaseRequestHandler:
    """Serves one request: ``self.request``, ``self.client_address``, ``self.server``.

    For stream servers ``request`` is the connection's socket; for datagram servers it is
    ``(data, socket)``. Override :meth:`handle` (and :meth:`setup` / :meth:`finish`).
    """

    def __init__(self, request: Any, client_address: Any, server: Any) -> None:
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self) -> None:
        """Called before :meth:`handle`."""

    def handle(self) -> None:
        """Serve the request (the default does nothing)."""

    def finish(self) -> None:
        """Called after :meth:`handle`, even if it raised."""


class StreamRequestHandler(BaseRequestHandler):
    """A stream handler with file objects: read ``self.rfile``, write ``self.wfile``.

    ``rbufsize``/``wbufsize`` are the files' buffer sizes (``wbufsize`` 0: every write is
    sent at once); ``timeout`` is set on the socket; ``disable_nagle_algorithm`` sets
    ``TCP_NODELAY``.
    """

    rbufsize = -1
    wbufsize = 0
    timeout: float | None = None
    disable_nagle_algorithm = False

    def setup(self) -> None:
        self.connection = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        if self.disable_nagle_algorithm:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        if self.wbufsize == 0:
            self.wfile: Any = SocketWriter(self.connection)
        else:
            self.wfile = self.connection.makefile("wb", self.wbufsize)

    def finish(self) -> None:
        if not self.wfile.closed:
            try:
                self.wfile.flush()
            except OSError as exc:  # the peer may be gone (EPIPE, ECONNRESET): nothing to tell
                log.debug("final flush to %r failed: %s", self.client_address, exc)
        self.wfile.close()
        self.rfile.close()


class DatagramRequestHandler(BaseRequestHandler):
    """A datagram handler with file objects over the packet and the reply.

    ``self.rfile`` reads the received datagram; whatever is written to ``self.wfile`` is sent
    back to the client as one datagram when the handler finishes (an empty one if nothing
    was written, as the stdlib does).
    """

    def setup(self) -> None:
        self.packet, self.socket = self.request
        self.rfile = io.BytesIO(self.packet)
        self.wfile = io.BytesIO()

    def finish(self) -> None:
        self.socket.sendto(self.wfile.getvalue(), self.client_address)
