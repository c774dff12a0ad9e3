"""From request-target to a path under the served root, refusing whatever could leave it.

The rules (docs/THREAT_MODEL.md says why):

- only the path of an origin-form (``/a/b?q``) or absolute-form (``http://h/a/b``) target is
  used; the query is kept for redirects, anything after ``#`` is dropped;
- the path is percent-decoded exactly once, so ``%252e%252e`` is the literal name ``%2e%2e``;
- a decoded NUL or backslash is refused (400), as is a ``..`` segment (400): clients remove
  dot segments before sending (RFC 3986 5.2.4), so one that arrives is an attack or a bug;
- empty and ``.`` segments are dropped, so ``//etc/passwd`` is ``etc/passwd`` under the root
  and no segment can make the path absolute;
- names starting with ``.`` are hidden (404) unless dot-files are allowed;
- unless symlinks may be followed, the fully resolved path must still be inside the root's
  resolved path; a link that leaves it is answered as if it did not exist (404).

Resolutions are cached for ``RESOLVE_TTL`` seconds, keyed by the decoded segments.
"""

from __future__ import annotations

import os
import time
from typing import Final
from urllib.parse import quote, unquote_to_bytes

__all__ = ["RESOLVE_TTL", "Refused", "Resolver", "Target", "parse_target"]

# How long a path decision (resolved path, symlink check) is reused: nginx's open_file_cache
# keeps such decisions for open_file_cache_valid (60 s); one second keeps renames and new
# symlinks visible almost at once while sparing the realpath walk on busy paths.
RESOLVE_TTL: Final = 1.0
# Bound on cached resolutions; the cache is simply emptied when it is full, which costs one
# realpath per path afterwards and cannot be steered into unbounded growth.
MAX_RESOLVED: Final = 4096


class Refused(Exception):
    """A request-target that is never served; ``status`` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Target:
    """A decoded request path: its segments, whether it ended in ``/``, and the raw query."""

    __slots__ = ("query", "segments", "slash")

    def __init__(self, segments: tuple[str, ...], slash: bool, query: bytes) -> None:
        self.segments = segments
        self.slash = slash
        self.query = query

    def url(self, slash: bool | None = None) -> str:
        """The path re-encoded for a ``Location`` or a link: one leading slash, never ``//``."""
        safe = "!$&'()*+,;=:@~"
        path = "/" + "/".join(quote(s, safe, errors="surrogateescape") for s in self.segments)
        if (self.slash if slash is None else slash) and self.segments:
            path += "/"
        return path

    def display(self) -> str:
        """The decoded path, for page titles (escape it before putting it into HTML)."""
        return "/" + "".join(s + "/" for s in self.segments)


def _path_of(target: bytes) -> bytes:
    """The path and query part of an origin-form or absolute-form target."""
    if target[:1] == b"/":
        return target
    scheme_end = target.find(b"://")
    if scheme_end < 0:
        raise Refused(400, "unsupported request-target form")
    path_start = target.find(b"/", scheme_end + 3)
    query_start = target.find(b"?", scheme_end + 3)
    if path_start < 0 or 0 <= query_start < path_start:
        return b"/" + (target[query_start:] if query_start >= 0 else b"")
    return target[path_start:]


def parse_target(target: bytes) -> Target:
    """Decode ``target`` once into a :class:`Target`; raises :class:`Refused`."""
    path, _, query = _path_of(target).partition(b"?")
    query = query.partition(b"#")[0]
    path = path.partition(b"#")[0]
    raw = unquote_to_bytes(path) if b"%" in path else path
    if b"\x00" in raw:
        raise Refused(400, "NUL in the path")
    if b"\\" in raw:
        raise Refused(400, "backslash in the path")
    text = os.fsdecode(raw)
    segments = []
    for segment in text.split("/"):
        if segment == "..":
            raise Refused(400, "'..' segment in the path")
        if segment and segment != ".":
            segments.append(segment)
    return Target(tuple(segments), text.endswith("/"), query)


class Resolver:
    """Maps decoded segments to a file system path under ``root``, with the symlink check."""

    __slots__ = ("_cache", "_prefix", "dotfiles", "follow_symlinks", "root")

    def __init__(self, root: str, *, follow_symlinks: bool, dotfiles: bool) -> None:
        self.root = os.path.realpath(root)
        self._prefix = self.root if self.root.endswith(os.sep) else self.root + os.sep
        self.follow_symlinks = follow_symlinks
        self.dotfiles = dotfiles
        self._cache: dict[tuple[str, ...], tuple[float, str | None]] = {}

    def resolve(self, segments: tuple[str, ...]) -> str | None:
        """The path to open for ``segments``, or None when it is hidden or leaves the root."""
        now = time.monotonic()
        cached = self._cache.get(segments)
        if cached is not None and cached[0] > now:
            return cached[1]
        path = self._resolve(segments)
        if len(self._cache) >= MAX_RESOLVED:
            self._cache.clear()
        self._cache[segments] = (now + RESOLVE_TTL, path)
        return path

    def _resolve(self, segments: tuple[str, ...]) -> str | None:
        if not self.dotfiles and any(s[0] == "." for s in segments):
            return None
        path = os.path.join(self.root, *segments)
        if self.follow_symlinks:
            return path
        return self.contained(path)

    def contained(self, path: str) -> str | None:
        """``path`` fully resolved, if that stays inside the root (else None)."""
        try:
            real = os.path.realpath(path)
        except (OSError, ValueError):
            return None
        if real == self.root or real.startswith(self._prefix):
            return real
        return None
