"""BaseHTTPRequestHandler and SimpleHTTPRequestHandler under hypothesis, against the stdlib's:
any bytes a client sends on a connection (request lines, headers, bodies, pipelined requests,
malformed all of them) get the very same bytes back, and any URL path the very same file,
listing, redirect or error from the same directory tree.

Both handlers run in memory: the connection is a fake socket whose reads come from the bytes
and whose writes are recorded, so thousands of cases take seconds.
"""

from __future__ import annotations

import http.server
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portside.http import server as ps_server

from .test_base import _handler

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

METHODS = ["GET", "POST", "DELETE", "HEAD", "BREW", "get", "G\x00T", ""]
TARGETS = ["/", "/a?b=1", "//evil.example/x", "/teapot", "*", "/\x1b[31m", "/%2e%2e/", "x"]
VERSIONS = ["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/0.9", "HTTP/1.x", "HTTP/1.0.1"]
VERSIONS += ["FOO/1.0", "HTTP/01.01", "HTTP/1." + "1" * 11, "HTTP/\u00b9.0", "http/1.0", ""]
HEADERS = [
    "Host: h",
    "X-Test: v",
    "Connection: close",
    "Connection: keep-alive",
    "Connection: Keep-Alive",
    "Expect: 100-continue",
    "Content-Length: 5",
    "Content-Length: 0",
    "Content-Length: x",
    "X-Folded: a\r\n b",
    " leading-space: v",
    "no-colon",
    "X-Empty:",
    "X-Latin: \u00e9",
]

request_line_st = st.builds(
    lambda method, gap, target, version: f"{method}{gap}{target}{gap}{version}".rstrip(" "),
    st.sampled_from(METHODS),
    st.sampled_from([" ", "  ", "\t"]),
    st.sampled_from(TARGETS),
    st.sampled_from(VERSIONS),
)
request_st = st.builds(
    lambda line, headers, end, body: (line + end + "".join(h + end for h in headers) + end) + body,
    request_line_st,
    st.lists(st.sampled_from(HEADERS), max_size=5),
    st.sampled_from(["\r\n", "\r\n", "\n"]),
    st.sampled_from(["", "hello", "hel"]),
)
stream_st = st.one_of(
    st.lists(request_st, min_size=1, max_size=4).map("".join),
    st.text(alphabet="GET /HTP1.0\r\n: \x00\u00e9", max_size=80),
).map(lambda text: text.encode("latin-1"))


class Connection:
    """A fake request socket: reads come from ``data``, what is sent is recorded."""

    def __init__(self, data: bytes) -> None:
        self.rfile = io.BytesIO(data)
        self.sent = bytearray()

    def makefile(self, mode: str, buffering: int | None = None) -> io.BytesIO:
        assert mode == "rb"
        return self.rfile

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def setsockopt(self, *args: Any) -> None:
        """portside's handler asks for TCP_NODELAY (a documented difference)."""


def answer(handler: type, data: bytes, **kwargs: Any) -> tuple[bytes, Any]:
    """What ``handler`` sends for ``data``, and the exception it ends with, if any."""

    class Handler(handler):  # type: ignore[misc, valid-type]
        def date_time_string(self, timestamp: float | None = None) -> str:
            return "Thu, 26 Nov 2026 00:00:00 GMT"

        def log_message(self, format: str, *args: Any) -> None:
            pass

    connection = Connection(data)
    try:
        Handler(connection, ("127.0.0.1", 5000), object(), **kwargs)
    except Exception as exc:  # a do_* method's own error (bad Content-Length): both must agree
        return bytes(connection.sent), type(exc)
    return bytes(connection.sent), None


@FUZZ
@given(data=stream_st, protocol=st.sampled_from(["HTTP/1.0", "HTTP/1.1"]))
def test_same_bytes_as_the_stdlib(data: bytes, protocol: str) -> None:
    expected = answer(_handler(http.server.BaseHTTPRequestHandler, protocol), data)
    assert answer(_handler(ps_server.BaseHTTPRequestHandler, protocol), data) == expected


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small site: files, a directory with an index page, one without, odd names."""
    root = tmp_path_factory.mktemp("site")
    (root / "a.txt").write_bytes(b"a\n")
    (root / "page.html").write_bytes(b"<p>page</p>")
    (root / "data.gz").write_bytes(b"\x1f\x8b")
    (root / "with index").mkdir()
    (root / "with index" / "index.html").write_bytes(b"<p>index</p>")
    (root / "listed").mkdir()
    (root / "listed" / "<b>&amp;.txt").write_bytes(b"odd")
    (root / "listed" / "sub").mkdir()
    (root / "listed" / "\u00e9t\u00e9.TXT").write_bytes(b"summer")
    return str(root)


SEGMENTS = ["a.txt", "page.html", "data.gz", "with%20index", "with index", "listed", "sub"]
SEGMENTS += ["..", ".", "%2e%2e", "%2F", "%2f..", "", "%00", "%ff", "%C3%A9t%C3%A9.TXT", "nope"]
SEGMENTS += ["%3Cb%3E%26amp;.txt", "a.txt/", "\\..", "PAGE.HTML"]
target_st = st.builds(
    lambda segments, slash, tail: "/" + "/".join(segments) + slash + tail,
    st.lists(st.sampled_from(SEGMENTS), max_size=4),
    st.sampled_from(["", "/", "//"]),
    st.sampled_from(["", "?q=1", "?", "#frag", "?a/b"]),
)


@FUZZ
@given(
    target=target_st,
    method=st.sampled_from(["GET", "HEAD"]),
    since=st.sampled_from([None, "Thu, 01 Jan 2099 00:00:00 GMT", "yesterday", "0"]),
)
def test_same_files_and_listings_as_the_stdlib(
    tree: str, target: str, method: str, since: str | None
) -> None:
    request = f"{method} {target} HTTP/1.0\r\n"
    if since is not None:
        request += f"If-Modified-Since: {since}\r\n"
    data = (request + "\r\n").encode("latin-1")
    expected = answer(http.server.SimpleHTTPRequestHandler, data, directory=tree)
    got = answer(ps_server.SimpleHTTPRequestHandler, data, directory=tree)
    assert got == expected
