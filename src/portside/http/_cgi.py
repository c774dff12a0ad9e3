"""``CGIHTTPRequestHandler``: CGI/1.1 scripts under ``cgi_directories``, files elsewhere.

A script runs as a subprocess with the CGI/1.1 environment (RFC 3875): the request body
(``Content-Length`` bytes) goes to its stdin, its stdout is streamed to the client after a
``200 Script output follows`` status line (the script writes its own headers), its stderr is
the server's. The stdlib removed this class in 3.15; it stays here, unchanged in use.
"""

from __future__ import annotations

import base64
import binascii
import os
import subprocess
import sys
import tempfile
import urllib.parse
from http import HTTPStatus
from typing import IO, Any, ClassVar

from portside.http._simple import SimpleHTTPRequestHandler
from portside.socketserver import run_in_thread

__all__ = ["CGIHTTPRequestHandler"]

# Script output is copied to the client in chunks of this size, as the script produces it.
CHUNK = 65536
# The request body is read in pieces of this size (each at most the read buffer's high water).
BODY_CHUNK = 16384


class CGIHTTPRequestHandler(SimpleHTTPRequestHandler):
    """Runs ``cgi_directories`` scripts (GET, HEAD, POST); serves other paths as files.

    A script must be an executable file (Python scripts, ``.py``/``.pyw``, are run with this
    interpreter). Path segments after the script name become ``PATH_INFO``; the query string
    becomes ``QUERY_STRING`` (and, without an ``=``, the script's argument, as CGI says).
    """

    cgi_directories: ClassVar[list[str]] = ["/cgi-bin", "/htbin"]
    cgi_info: tuple[str, str]

    def do_POST(self) -> None:
        """Run the script, or answer 501 for a POST to anything else."""
        if self.is_cgi():
            self.run_cgi()
        else:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, "Can only POST to CGI scripts")

    def send_head(self) -> IO[bytes] | None:
        """Run a script (its output is the whole answer), or serve the file."""
        if self.is_cgi():
            self.run_cgi()
            return None
        return super().send_head()

    def is_cgi(self) -> bool:
        """True if the collapsed path lies in one of ``cgi_directories``; sets ``cgi_info``.

        ``cgi_info`` is ``(directory, rest)``, e.g. ``("/cgi-bin", "script.py/extra?q=1")``.
        """
        collapsed = _collapse_path(self.path)
        sep = collapsed.find("/", 1)
        while sep > 0 and collapsed[:sep] not in self.cgi_directories:
            sep = collapsed.find("/", sep + 1)
        if sep > 0:
            self.cgi_info = collapsed[:sep], collapsed[sep + 1 :]
            return True
        return False

    def is_executable(self, path: str) -> bool:
        """True if ``path`` may be executed."""
        return os.access(path, os.X_OK)

    def is_python(self, path: str) -> bool:
        """True if ``path`` names a Python script (run with this interpreter)."""
        return os.path.splitext(path)[1].lower() in (".py", ".pyw")

    def run_cgi(self) -> None:
        """Run the script named by ``cgi_info`` and stream its output to the client."""
        directory, rest = self.cgi_info
        path = f"{directory}/{rest}"
        i = path.find("/", len(directory) + 1)
        while i >= 0 and os.path.isdir(self.translate_path(path[:i])):
            directory, rest = path[:i], path[i + 1 :]
            i = path.find("/", len(directory) + 1)
        rest, _, query = rest.partition("?")
        script, slash, extra = rest.partition("/")
        path_info = slash + extra
        script_name = f"{directory}/{script}"
        script_file = self.translate_path(script_name)
        if not os.path.exists(script_file):
            self.send_error(HTTPStatus.NOT_FOUND, f"No such CGI script ({script_name!r})")
            return
        if not os.path.isfile(script_file):
            self.send_error(
                HTTPStatus.FORBIDDEN, f"CGI script is not a plain file ({script_name!r})"
            )
            return
        python = self.is_python(script_name)
        if not python and not self.is_executable(script_file):
            self.send_error(HTTPStatus.FORBIDDEN, f"CGI script is not executable ({script_name!r})")
            return
        env = self._cgi_environment(script_name, path_info, query)
        self.send_response(HTTPStatus.OK, "Script output follows")
        self.flush_headers()
        argv = [sys.executable, "-u", script_file] if python else [script_file]
        if "=" not in query and query:
            argv.append(query.replace("+", " "))
        self._run_script(argv, env)
        self.close_connection = True  # the script's answer has no length we know

    def _run_script(self, argv: list[str], env: dict[str, str]) -> None:
        with tempfile.TemporaryFile() as body:
            self._spool_body(body)
            proc = subprocess.Popen(argv, stdin=body, stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        try:
            while chunk := run_in_thread(os.read, proc.stdout.fileno(), CHUNK):
                self.wfile.write(chunk)
        finally:
            proc.stdout.close()
            status = run_in_thread(proc.wait)
        if status:
            self.log_error("CGI script exit status %#x", status)
        else:
            self.log_message("CGI script exited OK")

    def _spool_body(self, spool: IO[bytes]) -> None:
        """Copy the ``Content-Length`` bytes of request body to ``spool``, rewound after.

        The body goes to a temporary file, not memory, and the script reads it as its stdin
        whatever it does first (a pipe would deadlock a script that writes before reading).
        """
        remaining = _content_length(self.headers.get("Content-Length"))
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, BODY_CHUNK))
            if not chunk:
                break
            spool.write(chunk)
            remaining -= len(chunk)
        spool.seek(0)

    def _cgi_environment(self, script_name: str, path_info: str, query: str) -> dict[str, str]:
        """The CGI/1.1 meta-variables for this request, over a copy of ``os.environ``."""
        env = dict(os.environ)
        server: Any = self.server
        path_info = urllib.parse.unquote(path_info)
        env.update(
            SERVER_SOFTWARE=self.version_string(),
            SERVER_NAME=str(server.server_name),
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL=self.protocol_version,
            SERVER_PORT=str(server.server_port),
            REQUEST_METHOD=str(self.command),
            PATH_INFO=path_info,
            PATH_TRANSLATED=self.translate_path(path_info),
            SCRIPT_NAME=script_name,
            QUERY_STRING=query,
            REMOTE_ADDR=str(self.client_address[0]),
            CONTENT_TYPE=self.headers.get("content-type") or self.headers.get_content_type(),
        )
        authorization = self.headers.get("authorization", "").split()
        if len(authorization) == 2:
            env["AUTH_TYPE"] = authorization[0]
            if authorization[0].lower() == "basic":
                try:
                    user = base64.b64decode(authorization[1].encode("ascii")).decode("ascii")
                except (binascii.Error, UnicodeError):
                    pass  # not a valid Basic credential: no REMOTE_USER, as the stdlib
                else:
                    env["REMOTE_USER"] = user.split(":")[0]
        for header, name in (
            ("content-length", "CONTENT_LENGTH"),
            ("referer", "HTTP_REFERER"),
            ("user-agent", "HTTP_USER_AGENT"),
        ):
            value = self.headers.get(header)
            if value:
                env[name] = value
        accept = self.headers.get_all("accept", ())
        env["HTTP_ACCEPT"] = ",".join(part.strip() for line in accept for part in line.split(","))
        cookies = self.headers.get_all("cookie", ())
        if cookies:
            env["HTTP_COOKIE"] = ", ".join(cookies)
        for name in ("REMOTE_HOST", "CONTENT_LENGTH", "HTTP_USER_AGENT", "HTTP_COOKIE"):
            env.setdefault(name, "")
        env.setdefault("HTTP_REFERER", "")
        return env


def _content_length(value: str | None) -> int:
    """The request's Content-Length as a count (0 when absent or malformed)."""
    if value is None or not value.strip().isdigit():
        return 0
    return int(value)


def _collapse_path(path: str) -> str:
    """The URL path (query kept) with ``.``/``..``/empty segments resolved, never above ``/``.

    ``/a/../cgi-bin/x.py`` -> ``/cgi-bin/x.py``; ``/cgi-bin/../../etc`` -> ``/etc``.
    """
    path, sep, query = path.partition("?")
    path = urllib.parse.unquote(path)
    parts = path.split("/")
    head: list[str] = []
    for part in parts[:-1]:
        if part == "..":
            if head:
                head.pop()
        elif part and part != ".":
            head.append(part)
    tail = parts[-1] if parts else ""
    if tail == "..":
        if head:
            head.pop()
        tail = ""
    elif tail == ".":
        tail = ""
    return "/" + "/".join([*head, tail]) + sep + query
