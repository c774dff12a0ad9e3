"""``BaseHTTPRequestHandler``: the stdlib's HTTP/1.x request handler, on portside's sockets.

One handler object serves one connection; :meth:`~BaseHTTPRequestHandler.handle` serves
requests on it until ``close_connection`` is set. Per request::

    handle_one_request -> parse_request [-> handle_expect_100] -> do_<COMMAND> -> wfile.flush
    (send_error(400/414/431/501/505) instead of do_<COMMAND> when the request is malformed)

The answers to malformed requests (which status, which message, whether a status line is
sent at all for an HTTP/0.9-shaped request) are the stdlib's, observed and matched.
"""

from __future__ import annotations

import email.utils
import html
import http.client
import sys
import time
from http import HTTPStatus
from typing import Any, ClassVar

from portside.socketserver import StreamRequestHandler

__all__ = [
    "DEFAULT_ERROR_CONTENT_TYPE",
    "DEFAULT_ERROR_MESSAGE",
    "MAX_REQUEST_LINE",
    "BaseHTTPRequestHandler",
]

__version__ = "0.6"

# The request line limit is the stdlib's: a longer line is answered 414. Headers are read by
# http.client.parse_headers, as the stdlib does: a line over 64 KiB, or more than 100 lines,
# is answered 431.
MAX_REQUEST_LINE = 65536

DEFAULT_ERROR_MESSAGE = """\
<!DOCTYPE HTML>
<html lang="en">
    <head>
        <meta charset="utf-8">
        <title>Error response</title>
    </head>
    <body>
        <h1>Error response</h1>
        <p>Error code: %(code)d</p>
        <p>Message: %(message)s.</p>
        <p>Error code explanation: %(code)s - %(explain)s.</p>
    </body>
</html>
"""

DEFAULT_ERROR_CONTENT_TYPE = "text/html;charset=utf-8"

# Log lines escape C0 and C1 control characters (and the backslash, so escapes stay
# unambiguous): a request line cannot forge log entries or drive a terminal.
_LOG_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_LOG_ESCAPES[ord("\\")] = "\\\\"
_BODYLESS = frozenset({HTTPStatus.NO_CONTENT, HTTPStatus.RESET_CONTENT, HTTPStatus.NOT_MODIFIED})


class BaseHTTPRequestHandler(StreamRequestHandler):
    """Parses HTTP/1.x requests and calls ``do_<COMMAND>`` (``do_GET``, ``do_POST``…).

    Subclass it and define ``do_*`` methods; each reads the request from ``self.command``,
    ``self.path``, ``self.headers`` and ``self.rfile``, and answers with
    :meth:`send_response`, :meth:`send_header`, :meth:`end_headers` and ``self.wfile``.
    Set ``protocol_version = "HTTP/1.1"`` for keep-alive (every response then needs a
    ``Content-Length``).
    """

    # Headers and body go out in separate writes; with Nagle's algorithm a keep-alive
    # client's delayed ACK would hold the body back ~40 ms per response.
    disable_nagle_algorithm = True
    sys_version: ClassVar[str] = "Python/" + sys.version.split()[0]
    server_version: ClassVar[str] = "BaseHTTP/" + __version__
    error_message_format: ClassVar[str] = DEFAULT_ERROR_MESSAGE
    error_content_type: ClassVar[str] = DEFAULT_ERROR_CONTENT_TYPE
    protocol_version: ClassVar[str] = "HTTP/1.0"
    default_request_version: ClassVar[str] = "HTTP/0.9"
    MessageClass: ClassVar[type[http.client.HTTPMessage]] = http.client.HTTPMessage
    responses: ClassVar[dict[int, tuple[str, str]]] = {
        status: (status.phrase, status.description) for status in HTTPStatus
    }
    weekdayname: ClassVar[list[str]] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    monthname: ClassVar[list[str | None]] = [
        None, "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]  # fmt: skip

    close_connection: bool
    raw_requestline: bytes
    requestline: str
    command: str | None
    path: str
    request_version: str
    headers: http.client.HTTPMessage
    _headers_buffer: list[bytes]

    # -- reading requests ------------------------------------------------------------------

    def handle(self) -> None:
        """Serve requests on the connection until ``close_connection`` is set."""
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()

    def handle_one_request(self) -> None:
        """Read, parse and dispatch one request (a timeout ends the connection quietly)."""
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            method = getattr(self, "do_" + str(self.command), None)
            if method is None:
                self.send_error(
                    HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})"
                )
                return
            method()
            self.wfile.flush()
        except TimeoutError as exc:
            self.log_error("Request timed out: %r", exc)
            self.close_connection = True

    def parse_request(self) -> bool:
        """Parse ``raw_requestline`` and the headers; on failure answer the error, return False.

        Sets ``command``, ``path``, ``request_version``, ``headers`` and
        ``close_connection`` (from the version and any ``Connection`` header).
        """
        self.command = None
        self.request_version = version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if not words:
            return False
        if len(words) >= 3:
            version = words[-1]
            number = _parse_version(version)
            if number is None:
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
                return False
            if number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if number >= (2, 0):
                self.send_error(
                    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                    f"Invalid HTTP version ({version.split('/', 1)[1]})",
                )
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({self.requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command = command
        # "//host/x" would make a directory redirect's Location an open redirect to "host".
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        try:
            self.headers = http.client.parse_headers(self.rfile, _class=self.MessageClass)
        except http.client.LineTooLong as exc:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(exc))
            return False
        except http.client.HTTPException as exc:
            self.send_error(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(exc)
            )
            return False
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = self.headers.get("Expect", "")
        if (
            expect.lower() == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and self.request_version >= "HTTP/1.1"
        ):
            return self.handle_expect_100()
        return True

    def handle_expect_100(self) -> bool:
        """Answer ``Expect: 100-continue`` with ``100 Continue``; return False to refuse."""
        self.send_response_only(HTTPStatus.CONTINUE)
        self.end_headers()
        return True

    # -- writing responses -----------------------------------------------------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer an error: status, ``Connection: close`` and (most codes) a small HTML page."""
        short, long = self.responses.get(code, ("???", "???"))
        if message is None:
            message = short
        if explain is None:
            explain = long
        self.log_error("code %d, message %s", code, message)
        self.send_response(code, message)
        self.send_header("Connection", "close")
        body = None
        if code >= 200 and code not in _BODYLESS:
            content = self.error_message_format % {
                "code": code,
                "message": html.escape(message, quote=False),
                "explain": html.escape(explain, quote=False),
            }
            body = content.encode("utf-8", "replace")
            self.send_header("Content-Type", self.error_content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Log the request, then buffer the status line, ``Server`` and ``Date``."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string())

    def send_response_only(self, code: int, message: str | None = None) -> None:
        """Buffer the status line alone (none for an HTTP/0.9 request)."""
        if self.request_version == "HTTP/0.9":
            return
        if message is None:
            message = self.responses[code][0] if code in self.responses else ""
        self._buffer(f"{self.protocol_version} {code:d} {message}\r\n")

    def send_header(self, keyword: str, value: str) -> None:
        """Buffer one header line; ``Connection: close``/``keep-alive`` also decide the reuse."""
        if self.request_version != "HTTP/0.9":
            self._buffer(f"{keyword}: {value}\r\n")
        if keyword.lower() == "connection":
            if value.lower() == "close":
                self.close_connection = True
            elif value.lower() == "keep-alive":
                self.close_connection = False

    def end_headers(self) -> None:
        """End the header block and send everything buffered."""
        if self.request_version != "HTTP/0.9":
            self._buffer("\r\n")
        self.flush_headers()

    def flush_headers(self) -> None:
        """Write the buffered status line and headers to ``wfile``."""
        if hasattr(self, "_headers_buffer"):
            self.wfile.write(b"".join(self._headers_buffer))
            self._headers_buffer = []

    def _buffer(self, line: str) -> None:
        if not hasattr(self, "_headers_buffer"):
            self._headers_buffer = []
        self._headers_buffer.append(line.encode("latin-1", "strict"))

    # -- logging ---------------------------------------------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log an answered request: ``"<request line>" <code> <size>``."""
        if isinstance(code, HTTPStatus):
            code = code.value
        self.log_message('"%s" %s %s', self.requestline, str(code), str(size))

    def log_error(self, format: str, *args: Any) -> None:
        """Log an error (the default: as :meth:`log_message`)."""
        self.log_message(format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        """Write ``<address> - - [<time>] <message>`` to stderr, control characters escaped."""
        message = format % args
        sys.stderr.write(
            f"{self.address_string()} - - [{self.log_date_time_string()}] "
            f"{message.translate(_LOG_ESCAPES)}\n"
        )

    # -- helpers ---------------------------------------------------------------------------

    def version_string(self) -> str:
        """The ``Server`` header: ``server_version`` and ``sys_version``."""
        return f"{self.server_version} {self.sys_version}"

    def date_time_string(self, timestamp: float | None = None) -> str:
        """``timestamp`` (default: now) as an HTTP date, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
        return email.utils.formatdate(timestamp, usegmt=True)

    def log_date_time_string(self) -> str:
        """The local time for log lines, e.g. ``27/Nov/2026 04:05:06``."""
        now = time.localtime()
        return (
            f"{now.tm_mday:02d}/{self.monthname[now.tm_mon]:3s}/{now.tm_year:04d} "
            f"{now.tm_hour:02d}:{now.tm_min:02d}:{now.tm_sec:02d}"
        )

    def address_string(self) -> str:
        """The client's host for log lines."""
        return str(self.client_address[0])


def _parse_version(version: str) -> tuple[int, int] | None:
    """``HTTP/<major>.<minor>`` as numbers (each at most 10 digits), or None if malformed."""
    if not version.startswith("HTTP/"):
        return None
    parts = version[5:].split(".")
    if len(parts) != 2 or not all(p.isdigit() and p.isascii() and len(p) <= 10 for p in parts):
        return None
    return int(parts[0]), int(parts[1])
