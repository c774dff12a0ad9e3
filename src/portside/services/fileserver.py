"""A static file server over HTTP/1.1: what nginx does for a directory, on portside's engine.

``portside serve http [DIR]`` runs it; in Python::

    import portside
    from portside.services.fileserver import FileServer

    portside.serve(FileServer(root="public"), "tcp:8000:interface=127.0.0.1")

GET and HEAD; ``index.html``; an HTML listing for other directories; ``Last-Modified`` and
strong ``ETag`` with 304 and 412 answers; single and multiple byte ranges; precompressed
``.br``/``.gz`` siblings; zero-copy ``sendfile``; keep-alive with limits; timeouts for slow
heads, idle connections and stalled downloads; a Common Log Format access log on the
``portside.access`` logger. Every option below is a field of :class:`FileServerOptions`,
and the command line is derived from them. docs/fileserver.md describes the behaviour and
docs/THREAT_MODEL.md the security decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from portside._fileserver.connection import FileConnection
from portside._fileserver.site import Site
from portside.core.connection import ConnectionOwner
from portside.core.server import Handlers

__all__ = ["FileServer", "FileServerOptions"]

MiB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileServerOptions:
    """How a :class:`FileServer` behaves; each field's ``help`` is the command line's text."""

    root: str = field(default=".", metadata={"help": "Directory to serve.", "positional": "DIR"})
    index: str = field(
        default="index.html",
        metadata={"help": "File served for a directory request (empty: none)."},
    )
    listing: bool = field(
        default=True,
        metadata={"help": "Show an HTML listing of directories that have no index file."},
    )
    # Off, as nginx's disable_symlinks would have it: a link inside the tree that points out of
    # it (to /etc, to a home directory) is the classic way a static server leaks files.
    follow_symlinks: bool = field(
        default=False,
        metadata={"help": "Follow symbolic links that lead outside the served directory."},
    )
    # Off: .git, .env and .htpasswd are the files most often exposed by accident.
    dotfiles: bool = field(
        default=False,
        metadata={"help": "Serve and list files and directories whose names start with '.'."},
    )
    precompressed: bool = field(
        default=True,
        metadata={"help": "Serve FILE.br / FILE.gz instead of FILE when the client accepts it."},
    )
    sendfile: bool = field(
        default=True,
        metadata={"help": "Send files with zero-copy sendfile where the platform allows."},
    )
    access_log: bool = field(
        default=True,
        metadata={"help": "Log each request in Common Log Format (logger portside.access)."},
    )
    # nginx uses 75 s and Apache 5 s; 15 s lets a browser reuse its connection across a page's
    # assets and later clicks without holding idle sockets for minutes.
    keep_alive_timeout: float = field(
        default=15.0,
        metadata={"help": "Seconds an idle keep-alive connection stays open."},
    )
    # nginx's client_header_timeout is 60 s and Apache's mod_reqtimeout allows 20-40 s; a real
    # client sends its head in one packet, so 10 s only ever cuts off slow-header attacks.
    header_timeout: float = field(
        default=10.0,
        metadata={"help": "Seconds a client has to send a whole request head (else 408)."},
    )
    # nginx's send_timeout: a download that makes no progress for a minute is abandoned.
    send_timeout: float = field(
        default=60.0,
        metadata={"help": "Seconds a response may go without the client reading any of it."},
    )
    # nginx's keepalive_requests default (1000 since 1.19.10): bounds per-connection state
    # and lets load spread when connections are long-lived.
    max_requests: int = field(
        default=1000,
        metadata={"help": "Requests served on one connection before it is closed."},
    )
    # nginx's client_max_body_size is 1 MiB; a file server reads no bodies at all, this only
    # bounds what it discards before answering and reusing the connection.
    max_body: int = field(
        default=1 * MiB,
        metadata={"help": "Largest request body accepted (and discarded); larger gets 413."},
    )

    def __post_init__(self) -> None:
        timeouts = (self.keep_alive_timeout, self.header_timeout, self.send_timeout)
        if min(timeouts) <= 0:
            raise ValueError("keep_alive_timeout, header_timeout and send_timeout must be > 0")
        if self.max_requests < 1 or self.max_body < 0:
            raise ValueError("max_requests must be at least 1 and max_body at least 0")
        if "/" in self.index or self.index in (".", ".."):
            raise ValueError(f"index must be a plain file name, not {self.index!r}")


class FileServer:
    """A servable static file server: pass it to ``portside.serve`` or ``portside.Server``.

    ``FileServer(options)`` or ``FileServer(root="public", listing=False)``: keyword
    arguments override fields of ``options``. Raises ValueError if the root is not a
    directory.
    """

    def __init__(self, options: FileServerOptions | None = None, /, **changes: Any) -> None:
        self.options = replace(options or FileServerOptions(), **changes)
        self._site = Site(self.options)

    @property
    def root(self) -> str:
        """The served directory, fully resolved."""
        return self._site.resolver.root

    def __portside_handlers__(self) -> Handlers:
        """The engine handlers: one :class:`FileConnection` per accepted stream."""
        return Handlers(stream=self._connect, name="http")

    def _connect(self, owner: ConnectionOwner, peer: Any) -> FileConnection:
        return FileConnection(owner, peer, self._site)
