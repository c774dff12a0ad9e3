"""What the server knows about a file: its validators, type and (when small) its contents.

A :class:`FileInfo` is built from one ``stat`` result and reused for as long as the file's
identity (inode, device, size, modification time in nanoseconds) stays the same, so a
request for a small file costs no open or read at all (and the site reuses ``stat``
results for a second, so usually no system call). Small
contents are read through a descriptor whose ``fstat`` must still show the same identity, so
a cached body always belongs to the validators cached with it.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from typing import Final

from portside._fileserver.dates import format_http_date

__all__ = [
    "MAX_CACHED_FILE",
    "FileCache",
    "FileInfo",
    "content_type",
    "identity",
    "open_regular",
]

KiB: Final = 1024
MiB: Final = 1024 * KiB

# Files up to 64 KiB are kept in memory and written with their head in one send; larger ones
# go out with sendfile, where the copy saved outweighs the extra system calls.
MAX_CACHED_FILE: Final = 64 * KiB
# Total bytes of cached contents (then the oldest entries go): 32 MiB holds the hot set of a
# typical site's small assets while staying a small share of a server's memory.
CACHE_BUDGET: Final = 32 * MiB
# Bound on cached FileInfo entries, contents or not.
MAX_ENTRIES: Final = 16_384

OCTET_STREAM: Final = b"application/octet-stream"
# A compressed file keeps its own type: Content-Encoding is only ever set for the
# precompressed siblings this server chose itself.
_ENCODED_TYPES: Final = {
    "gzip": b"application/gzip",
    "bzip2": b"application/x-bzip2",
    "xz": b"application/x-xz",
    "compress": b"application/x-compress",
}
_types: dict[str, bytes] = {}

Identity = tuple[int, int, int, int]


def identity(st: os.stat_result) -> Identity:
    """What must stay the same for cached facts about a file to stay true."""
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def content_type(name: str) -> bytes:
    """The ``Content-Type`` for a file name, from :mod:`mimetypes`; text gets ``charset=utf-8``."""
    ext = os.path.splitext(name)[1].lower()
    known = _types.get(ext)
    if known is not None:
        return known
    guessed, encoding = mimetypes.guess_type("f" + ext, strict=False)
    if encoding is not None:
        value = _ENCODED_TYPES.get(encoding, OCTET_STREAM)
    elif guessed is None:
        value = OCTET_STREAM
    elif guessed.startswith("text/"):
        value = guessed.encode("ascii") + b"; charset=utf-8"
    else:
        value = guessed.encode("ascii")
    if len(_types) < 1024:
        _types[ext] = value
    return value


def open_regular(path: str) -> tuple[int, os.stat_result] | None:
    """Open ``path`` for reading if it is a regular file: ``(fd, fstat)``, else None.

    ``O_NONBLOCK`` keeps a FIFO swapped in after the ``stat`` from blocking the loop; the
    ``fstat`` of the open descriptor is what the caller must trust. ``OSError`` propagates.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd, st


class FileInfo:
    """The facts one response needs about one version of one file."""

    __slots__ = (
        "content",
        "content_type",
        "etag",
        "fields",
        "identity",
        "last_modified",
        "length_field",
        "mtime",
        "siblings",
        "siblings_until",
        "size",
    )

    def __init__(self, st: os.stat_result, content_type: bytes, coding: bytes = b"") -> None:
        self.identity = identity(st)
        self.size = st.st_size
        self.length_field = (b"content-length", b"%d" % st.st_size)
        self.mtime = int(st.st_mtime)
        # Strong: a new version gets a new modification time or size. A precompressed sibling
        # names its coding too, so two representations can never share a tag.
        suffix = b"-" + coding if coding else b""
        self.etag = b'"%x-%x%s"' % (st.st_mtime_ns, st.st_size, suffix)
        self.last_modified = format_http_date(self.mtime)
        self.content_type = content_type
        # A 200's fields in order, but Date, Vary and Content-Length: the validators first
        # (a 304 repeats those two), then the representation's metadata.
        fields = [
            (b"last-modified", self.last_modified),
            (b"etag", self.etag),
            (b"content-type", content_type),
            (b"accept-ranges", b"bytes"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if coding:
            fields.append((b"content-encoding", coding))
        self.fields = tuple(fields)
        self.content: bytes | None = None
        # (coding, path) of precompressed siblings, checked again after siblings_until.
        self.siblings: tuple[tuple[bytes, str], ...] = ()
        self.siblings_until = -1.0


class FileCache:
    """FileInfo per path, replaced when the file's identity changes; small contents too."""

    __slots__ = ("_entries", "_held")

    def __init__(self) -> None:
        self._entries: dict[str, FileInfo] = {}
        self._held = 0

    def info(
        self, path: str, st: os.stat_result, coding: bytes = b"", type_: bytes = b""
    ) -> FileInfo:
        """The FileInfo for ``path`` as ``st`` describes it.

        A precompressed sibling names its ``coding`` and the ``type_`` of the file it encodes.
        """
        entry = self._entries.get(path)
        if entry is not None and entry.identity == (
            st.st_ino,
            st.st_dev,
            st.st_size,
            st.st_mtime_ns,
        ):
            return entry
        if entry is not None:
            self._forget(path, entry)
        entry = FileInfo(st, type_ or content_type(path), coding)
        if len(self._entries) >= MAX_ENTRIES:
            self._forget(*next(iter(self._entries.items())))
        self._entries[path] = entry
        return entry

    def content(self, path: str, info: FileInfo) -> bytes | None:
        """The whole contents of a small file as ``info`` describes it, or None.

        None means: too large to keep, or the file changed under us (send it from disk, where
        the descriptor's own ``fstat`` decides).
        """
        if info.content is not None:
            return info.content
        if info.size > MAX_CACHED_FILE:
            return None
        try:
            opened = open_regular(path)
        except OSError:
            return None
        if opened is None:
            return None
        fd, st = opened
        try:
            if identity(st) != info.identity:
                return None
            data = os.read(fd, info.size + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(data) != info.size:
            return None
        if self._entries.get(path) is info:
            while self._held + len(data) > CACHE_BUDGET and self._entries:
                self._forget(*next(iter(self._entries.items())))
            info.content = data
            self._held += len(data)
            self._entries[path] = info
        return data

    def _forget(self, path: str, entry: FileInfo) -> None:
        if self._entries.get(path) is entry:
            del self._entries[path]
        if entry.content is not None:
            self._held -= len(entry.content)
            entry.content = None
