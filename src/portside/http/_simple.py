"""``SimpleHTTPRequestHandler``: the stdlib's file and directory-listing handler.

``GET``/``HEAD`` of a path under ``directory``: a file (with ``Last-Modified``, and ``304``
for a matching ``If-Modified-Since``), a directory's index page, or a directory listing;
a directory without its trailing slash is redirected (``301``) to it.
"""

from __future__ import annotations

import datetime
import email.utils
import html
import io
import mimetypes
import os
import posixpath
import shutil
import sys
import urllib.parse
from http import HTTPStatus
from typing import IO, Any, ClassVar

from portside.http._base import BaseHTTPRequestHandler

__all__ = ["SimpleHTTPRequestHandler"]

# Compression suffixes are served as what they are, never as the type of the inner file
# (mimetypes would say "text/plain" for "x.txt.gz" with an encoding the client never asked for).
_COMPRESSED_TYPES = {
    ".gz": "application/gzip",
    ".Z": "application/octet-stream",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
}


class SimpleHTTPRequestHandler(BaseHTTPRequestHandler):
    """Serves the files under ``directory`` (default: the current directory) by GET and HEAD.

    ``index_pages`` are tried in order for a directory, else it is listed; ``extensions_map``
    overrides :mod:`mimetypes` for the suffixes it names. Override :meth:`translate_path` to
    map URLs elsewhere, :meth:`list_directory` for another listing.
    """

    server_version: ClassVar[str] = "SimpleHTTP/0.6"
    index_pages: ClassVar[tuple[str, ...]] = ("index.html", "index.htm")
    extensions_map: ClassVar[dict[str, str]] = dict(_COMPRESSED_TYPES)

    def __init__(self, *args: Any, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = os.getcwd() if directory is None else os.fspath(directory)
        super().__init__(*args)

    def do_GET(self) -> None:
        """Serve a file or a listing, with its body."""
        f = self.send_head()
        if f is not None:
            try:
                self.copyfile(f, self.wfile)
            finally:
                f.close()

    def do_HEAD(self) -> None:
        """As GET, without the body."""
        f = self.send_head()
        if f is not None:
            f.close()

    def send_head(self) -> IO[bytes] | None:
        """Send the status and headers for GET/HEAD; return the body to copy, or None."""
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            parts = urllib.parse.urlsplit(self.path)
            if not parts.path.endswith("/"):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                location = urllib.parse.urlunsplit(parts._replace(path=parts.path + "/"))
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            for index in self.index_pages:
                candidate = os.path.join(path, index)
                if os.path.isfile(candidate):
                    path = candidate
                    break
            else:
                return self.list_directory(path)
        ctype = self.guess_type(path)
        if path.endswith("/"):  # a file named with a trailing slash
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        try:
            f = open(path, "rb")  # noqa: SIM115 -- the caller closes it after copying
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        try:
            st = os.fstat(f.fileno())
            if self._not_modified(st.st_mtime):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.end_headers()
                f.close()
                return None
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-type", ctype)
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Last-Modified", self.date_time_string(st.st_mtime))
            self.end_headers()
            return f
        except BaseException:
            f.close()
            raise

    def _not_modified(self, mtime: float) -> bool:
        """True if ``If-Modified-Since`` (without ``If-None-Match``) is not older than mtime."""
        if "If-Modified-Since" not in self.headers or "If-None-Match" in self.headers:
            return False
        try:
            since = email.utils.parsedate_to_datetime(self.headers["If-Modified-Since"])
        except (TypeError, IndexError, OverflowError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=datetime.UTC)
        if since.tzinfo is not datetime.UTC:
            return False
        modified = datetime.datetime.fromtimestamp(mtime, datetime.UTC)
        return modified.replace(microsecond=0) <= since

    def list_directory(self, path: str | os.PathLike[str]) -> IO[bytes] | None:
        """Send the headers of a directory listing and return its HTML (None after an error)."""
        try:
            names = os.listdir(path)
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "No permission to list directory")
            return None
        names.sort(key=str.lower)
        try:  # the title shows the request's path as sent, query included (as the stdlib)
            shown = urllib.parse.unquote(self.path, errors="surrogatepass")
        except UnicodeDecodeError:
            shown = urllib.parse.unquote(self.path)
        shown = html.escape(shown, quote=False)
        encoding = sys.getfilesystemencoding()
        title = f"Directory listing for {shown}"
        lines = [
            "<!DOCTYPE HTML>",
            '<html lang="en">',
            "<head>",
            f'<meta charset="{encoding}">',
            f"<title>{title}</title>\n</head>",
            f"<body>\n<h1>{title}</h1>",
            "<hr>\n<ul>",
        ]
        for name in names:
            full = os.path.join(path, name)
            shown_name = link = name
            if os.path.isdir(full):
                shown_name = link = name + "/"
            if os.path.islink(full):
                shown_name = name + "@"
            lines.append(
                f'<li><a href="{urllib.parse.quote(link, errors="surrogatepass")}">'
                f"{html.escape(shown_name, quote=False)}</a></li>"
            )
        lines.append("</ul>\n<hr>\n</body>\n</html>\n")
        encoded = "\n".join(lines).encode(encoding, "surrogateescape")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-type", f"text/html; charset={encoding}")
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        return io.BytesIO(encoded)

    def translate_path(self, path: str) -> str:
        """Map a URL path to a file under ``directory``.

        The query and fragment are dropped, the path percent-decoded once and normalised;
        ``.``/``..`` and segments holding a separator are skipped, so the result never
        leaves ``directory`` by name (a symlink inside it may still point outside).
        """
        path = path.split("?", 1)[0].split("#", 1)[0]
        trailing_slash = path.rstrip().endswith("/")
        try:
            path = urllib.parse.unquote(path, errors="surrogatepass")
        except UnicodeDecodeError:
            path = urllib.parse.unquote(path)
        result = self.directory
        for word in posixpath.normpath(path).split("/"):
            if not word or os.path.dirname(word) or word in (os.curdir, os.pardir):
                continue
            result = os.path.join(result, word)
        return result + "/" if trailing_slash else result

    def copyfile(self, source: IO[bytes], outputfile: Any) -> None:
        """Copy the body from ``source`` to ``outputfile`` (the client)."""
        shutil.copyfileobj(source, outputfile)

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        """The MIME type for ``path``: ``extensions_map`` first, then :mod:`mimetypes`."""
        _, ext = posixpath.splitext(os.fspath(path))
        for key in (ext, ext.lower()):
            if key in self.extensions_map:
                return self.extensions_map[key]
        guess, _ = mimetypes.guess_type(os.fspath(path))
        return guess or "application/octet-stream"
