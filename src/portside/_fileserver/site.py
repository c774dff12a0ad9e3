"""Answering one request for the file server: a :class:`Request` in, a :class:`Reply` out.

This is the server's behaviour with the network left out: method checks, path safety,
index files, listings, representation choice (precompressed siblings), preconditions and
ranges. Only the file system is touched; the reply's file body, if any, is an open
descriptor with the byte ranges to send from it, written by ``sender``.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from portside._fileserver import conditional
from portside._fileserver.accesslog import AccessLog
from portside._fileserver.dates import DateCache
from portside._fileserver.files import MAX_CACHED_FILE, FileCache, FileInfo, open_regular
from portside._fileserver.pages import HTML, error_page, listing_page, scan
from portside._fileserver.paths import RESOLVE_TTL, Refused, Resolver, Target, parse_target
from portside.proto.http import Headers, HTTPLimits, Request

if TYPE_CHECKING:
    from portside.services.fileserver import FileServerOptions

__all__ = ["Piece", "Reply", "Site"]

SERVER: Final = b"portside"
SERVER_FIELD: Final = (b"server", SERVER)
VARY_FIELD: Final = (b"vary", b"accept-encoding")
ALLOW: Final = b"GET, HEAD"
# Methods with a meaning elsewhere get 405 with Allow; anything else is unknown here (501).
_KNOWN_METHODS: Final = frozenset(
    (b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"CONNECT")
)
# Precompressed siblings in order of preference: brotli is smaller, gzip is everywhere.
_SIBLINGS: Final = ((b"br", ".br"), (b"gzip", ".gz"))
# The request fields this server reads; the others are never looked at.
_WANTED: Final = frozenset(
    (
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"range",
        b"if-range",
        b"accept-encoding",
    )
)
_NOT_FOUND_ERRNOS: Final = frozenset(
    (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL)
)
_FORBIDDEN_ERRNOS: Final = frozenset((errno.EACCES, errno.EPERM))

# Decoded request-targets kept with their resolved path and its stat for RESOLVE_TTL (one
# second: lighttpd's stat cache keeps stat results as long; a stat on every request costs
# a tenth of this server's time): the map is emptied when full, so it is bounded.
MAX_TARGETS: Final = 1024

Piece = bytes | tuple[int, int]
"""A piece of a file body: literal bytes, or ``(offset, count)`` of the reply's descriptor."""


class Reply:
    """A response to send: status, header fields, and the body.

    The body is either ``content`` (bytes in memory) or, when ``fd`` is not -1, ``pieces``
    read from that descriptor, which the sender closes. ``length`` is the body's length.
    A reply whose ``later`` is set is a promise (see :meth:`deferred`): call ``later()`` in a
    worker thread for the real one.
    """

    __slots__ = ("content", "fd", "headers", "later", "length", "pieces", "status")

    def __init__(
        self,
        status: int,
        headers: Headers,
        content: bytes = b"",
        fd: int = -1,
        pieces: list[Piece] | None = None,
        length: int | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.content = content
        self.fd = fd
        self.pieces = pieces or []
        self.length = len(content) if length is None else length
        self.later: Callable[[], Reply] | None = None

    @classmethod
    def deferred(cls, later: Callable[[], Reply]) -> Reply:
        """A reply that ``later()`` builds: work too slow for the event loop (big listings)."""
        reply = cls(0, [])
        reply.later = later
        return reply


class Site:
    """One served directory: its options, path resolver, file cache, dates and access log."""

    __slots__ = (
        "_codings",
        "_targets",
        "access_log",
        "dates",
        "files",
        "http_limits",
        "options",
        "resolver",
    )

    def __init__(self, options: FileServerOptions) -> None:
        root = os.path.abspath(options.root)
        if not os.path.isdir(root):
            raise ValueError(f"cannot serve {options.root!r}: not a directory")
        self.options = options
        self.resolver = Resolver(
            root, follow_symlinks=options.follow_symlinks, dotfiles=options.dotfiles
        )
        self.http_limits = HTTPLimits(max_body=options.max_body)
        self.files = FileCache()
        self.dates = DateCache()
        self.access_log = AccessLog(self.dates) if options.access_log else None
        self._codings: dict[bytes, dict[bytes, float]] = {}
        # raw request-target -> (decoded target, resolved path, until when it holds, its stat,
        # and for a regular file its FileInfo)
        self._targets: dict[bytes, tuple[Target, str, float, os.stat_result, FileInfo | None]] = {}

    # -- replies that are not files ------------------------------------------------------------

    def error(self, status: int, extra: Headers | None = None) -> Reply:
        """A small HTML page for ``status``, with ``extra`` header fields."""
        page = error_page(status)
        headers = [
            SERVER_FIELD,
            (b"date", self.dates.http()),
            (b"content-type", HTML),
            (b"content-length", b"%d" % len(page)),
        ]
        if extra:
            headers += extra
        return Reply(status, headers, page)

    def _redirect(self, target: Target) -> Reply:
        location = target.url(slash=True).encode("ascii")
        if target.query:
            location += b"?" + target.query
        return self.error(301, [(b"location", location)])

    def _listing(self, path: str, target: Target) -> Reply:
        resolver = self.resolver
        dotfiles, follow = self.options.dotfiles, self.options.follow_symlinks

        def visible(name: str, entry_path: str, is_link: bool) -> bool:
            if not dotfiles and name[0] == ".":
                return False
            return follow or not is_link or resolver.contained(entry_path) is not None

        try:
            entries = scan(path, visible)
        except OSError as exc:
            return self.error(403 if exc.errno in _FORBIDDEN_ERRNOS else 404)
        page = listing_page(target.display(), entries, at_root=not target.segments)
        headers = [
            SERVER_FIELD,
            (b"date", self.dates.http()),
            (b"content-type", HTML),
            (b"content-length", b"%d" % len(page)),
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
        ]
        return Reply(200, headers, page)

    def _failed(self, exc: OSError) -> Reply:
        if exc.errno in _NOT_FOUND_ERRNOS:
            return self.error(404)
        if exc.errno in _FORBIDDEN_ERRNOS:
            return self.error(403)
        return self.error(500)

    # -- the request ---------------------------------------------------------------------------

    def reply(self, request: Request) -> Reply:
        """The answer to ``request`` (never raises for anything a client can send)."""
        method = request.method
        if method != b"GET" and method != b"HEAD":
            status = 405 if method in _KNOWN_METHODS else 501
            return self.error(status, [(b"allow", ALLOW)])
        now = time.monotonic()
        known = self._targets.get(request.target)
        path: str | None
        st: os.stat_result | None
        if known is not None and known[2] > now:
            target, path, _, st, info = known
            if info is not None:  # a regular file, as it was a moment ago
                return self._file(request, path, info, now)
        else:
            try:
                target = known[0] if known is not None else parse_target(request.target)
            except Refused as refused:
                return self.error(refused.status)
            path = self.resolver.resolve(target.segments)
            st = None
        if path is None:
            return self.error(404)
        if st is None:
            try:
                st = os.stat(path)
            except OSError as exc:
                return self._failed(exc)
            if len(self._targets) >= MAX_TARGETS:
                self._targets.clear()
            info = None
            if not target.slash and stat.S_ISREG(st.st_mode):
                info = self.files.info(path, st)
            self._targets[request.target] = (target, path, now + RESOLVE_TTL, st, info)
            if info is not None:
                return self._file(request, path, info, now)
        if stat.S_ISDIR(st.st_mode):
            return self._directory(request, path, target)
        return self.error(404)

    def _directory(self, request: Request, path: str, target: Target) -> Reply:
        if not target.slash:
            return self._redirect(target)
        index = self.options.index
        if index:
            index_path = self.resolver.resolve((*target.segments, index))
            if index_path is not None:
                try:
                    st = os.stat(index_path)
                except OSError as exc:
                    if exc.errno not in _NOT_FOUND_ERRNOS:
                        return self._failed(exc)
                else:
                    if stat.S_ISREG(st.st_mode):
                        info = self.files.info(index_path, st)
                        return self._file(request, index_path, info, time.monotonic())
        if self.options.listing:  # scanning and rendering take ~20 us per entry: in a thread
            return Reply.deferred(functools.partial(self._listing, path, target))
        return self.error(403)

    def _accepted(self, field: bytes) -> dict[bytes, float]:
        codings = self._codings.get(field)
        if codings is None:
            codings = conditional.accepted_codings(field)
            if len(self._codings) >= 256:
                self._codings.clear()
            self._codings[field] = codings
        return codings

    def _siblings(self, path: str, info: FileInfo, now: float) -> tuple[tuple[bytes, str], ...]:
        """The precompressed siblings of ``path`` that exist (rechecked every second)."""
        found = []
        for coding, suffix in _SIBLINGS:
            sibling: str | None = path + suffix
            if not self.options.follow_symlinks:
                sibling = self.resolver.contained(path + suffix)
            if sibling is None:
                continue
            try:
                if stat.S_ISREG(os.stat(sibling).st_mode):
                    found.append((coding, sibling))
            except OSError:
                continue
        info.siblings = tuple(found)
        info.siblings_until = now + RESOLVE_TTL
        return info.siblings

    def _file(self, request: Request, path: str, info: FileInfo, now: float) -> Reply:
        fields: dict[bytes, bytes] = {}
        for name, value in request.headers:
            if name in _WANTED:
                fields[name] = fields[name] + b", " + value if name in fields else value
        files = self.files
        coding = b""
        vary = False
        if not self.options.precompressed:
            siblings: tuple[tuple[bytes, str], ...] = ()
        elif info.siblings_until > now:
            siblings = info.siblings
        else:
            siblings = self._siblings(path, info, now)
        if siblings:
            vary = True
            accept = fields.get(b"accept-encoding")
            if accept is not None:
                accepted = self._accepted(accept)
                best = 0.0  # the highest q wins; on a tie, the order of _SIBLINGS
                for sibling_coding, sibling in siblings:
                    q = conditional.coding_quality(accepted, sibling_coding)
                    if q <= best:
                        continue
                    try:
                        sibling_st = os.stat(sibling)
                    except OSError:
                        continue
                    best, path, coding = q, sibling, sibling_coding
                    info = files.info(sibling, sibling_st, coding, info.content_type)
        content: bytes | None = None
        fd = -1
        if request.method == b"GET":
            content = info.content
            if content is None and info.size <= MAX_CACHED_FILE:
                content = files.content(path, info)
            if content is None:
                try:
                    opened = open_regular(path)
                except OSError as exc:
                    return self._failed(exc)
                if opened is None:
                    return self.error(404)
                fd, fresh = opened
                info = files.info(path, fresh, coding, info.content_type)
        try:
            reply = self._representation(request.method, fields, info, coding, vary, content, fd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        if fd >= 0 and reply.fd != fd:
            os.close(fd)
        return reply

    def _representation(
        self,
        method: bytes,
        fields: dict[bytes, bytes],
        info: FileInfo,
        coding: bytes,
        vary: bool,
        content: bytes | None,
        fd: int,
    ) -> Reply:
        date = (b"date", self.dates.http())
        if not fields:  # the common case: no preconditions, no range
            headers = [SERVER_FIELD, date, *info.fields, info.length_field]
            if vary:
                headers.append(VARY_FIELD)
            if content is not None:
                return Reply(200, headers, content)
            if fd < 0:  # HEAD: the length is all that is needed
                return Reply(200, headers, length=info.size)
            return Reply(200, headers, fd=fd, pieces=[(0, info.size)], length=info.size)
        status = conditional.evaluate(method, fields, info.etag, info.mtime)
        if status == 304:  # the validators (and Vary), no representation metadata
            headers = [SERVER_FIELD, date, *info.fields[:2]]
            if vary:
                headers.append(VARY_FIELD)
            return Reply(304, headers)
        if status:
            return self.error(status)
        headers = [SERVER_FIELD, date, *info.fields]
        if vary:
            headers.append(VARY_FIELD)
        field = fields.get(b"range") if method == b"GET" else None
        if field is not None:
            if_range = fields.get(b"if-range")
            if if_range is None or conditional.if_range(if_range, info.etag, info.mtime):
                found = conditional.ranges(field, info.size)
                if found == conditional.UNSATISFIABLE:
                    return self.error(416, [(b"content-range", b"bytes */%d" % info.size)])
                if isinstance(found, list):
                    return self._partial(headers, info, found, content, fd)
        headers.append(info.length_field)
        if content is not None:
            return Reply(200, headers, content)
        if fd < 0:
            return Reply(200, headers, length=info.size)
        return Reply(200, headers, fd=fd, pieces=[(0, info.size)], length=info.size)

    def _partial(
        self,
        headers: Headers,
        info: FileInfo,
        found: list[tuple[int, int]],
        content: bytes | None,
        fd: int,
    ) -> Reply:
        size = info.size
        pieces: list[Piece] = []
        if len(found) == 1:
            first, last = found[0]
            headers.append((b"content-range", b"bytes %d-%d/%d" % (first, last, size)))
            pieces.append((first, last - first + 1))
        else:
            boundary = os.urandom(12).hex().encode("ascii")
            for i, (first, last) in enumerate(found):
                pieces.append(
                    b"%s--%s\r\ncontent-type: %s\r\ncontent-range: bytes %d-%d/%d\r\n\r\n"
                    % (b"\r\n" if i else b"", boundary, info.content_type, first, last, size)
                )
                pieces.append((first, last - first + 1))
            pieces.append(b"\r\n--%s--\r\n" % boundary)
            for i, (name, _) in enumerate(headers):
                if name == b"content-type":
                    headers[i] = (name, b"multipart/byteranges; boundary=" + boundary)
        length = sum(len(p) if isinstance(p, bytes) else p[1] for p in pieces)
        headers.append((b"content-length", b"%d" % length))
        if content is not None:
            body = b"".join(
                p if isinstance(p, bytes) else content[p[0] : p[0] + p[1]] for p in pieces
            )
            return Reply(206, headers, body)
        return Reply(206, headers, fd=fd, pieces=pieces, length=length)
