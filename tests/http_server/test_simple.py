"""SimpleHTTPRequestHandler serving a temporary directory, compared with the stdlib's."""

from __future__ import annotations

import functools
import http.client
import http.server
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.http import server as ps_server

from .support import CLIENT_TIMEOUT, MODES, Quiet, exchange, serving, without_date


class Files(Quiet, ps_server.SimpleHTTPRequestHandler):
    pass


class StdlibFiles(Quiet, http.server.SimpleHTTPRequestHandler):
    pass


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small tree: files, a subdirectory with an index, an empty one, a secret outside."""
    (tmp_path / "secret.txt").write_text("do not serve")
    docs = tmp_path / "www"
    docs.mkdir()
    (docs / "hello.txt").write_bytes(b"hello, world\n")
    (docs / "B & <c>.html").write_text("<p>b</p>")
    (docs / "data.json.gz").write_bytes(b"\x1f\x8b")
    (docs / "site").mkdir()
    (docs / "site" / "index.html").write_text("<h1>index</h1>")
    (docs / "empty").mkdir()
    os.utime(docs / "hello.txt", (1_700_000_000, 1_700_000_000))
    return docs


@pytest.fixture(params=["thread", "green"])
def address(request: pytest.FixtureRequest, root: Path, loop_kind: str) -> Iterator[Any]:
    """A portside server of each mode serving ``root``."""
    handler = functools.partial(Files, directory=root)
    server = MODES[request.param](("127.0.0.1", 0), handler, event_loop=loop_kind)
    with serving(server) as served:
        yield served


def _get(address: Any, path: str, **headers: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection(address[0], address[1], timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def test_file(address: Any) -> None:
    status, headers, body = _get(address, "/hello.txt")
    assert (status, body) == (200, b"hello, world\n")
    assert headers["Content-type"] == "text/plain"
    assert headers["Content-Length"] == "13"
    assert headers["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert headers["Server"].startswith("SimpleHTTP/0.6 Python/")
    assert _get(address, "/data.json.gz")[1]["Content-type"] == "application/gzip"


def test_urllib_client(address: Any) -> None:
    url = f"http://{address[0]}:{address[1]}/hello.txt"
    with urllib.request.urlopen(url, timeout=CLIENT_TIMEOUT) as response:
        assert response.read() == b"hello, world\n"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url + ".missing", timeout=CLIENT_TIMEOUT)
    assert info.value.code == 404
    info.value.close()


def test_index_listing_and_redirect(address: Any) -> None:
    assert _get(address, "/site/")[::2] == (200, b"<h1>index</h1>")
    status, headers, _ = _get(address, "/site?x=1")
    assert (status, headers["Location"]) == (301, "/site/?x=1")
    status, headers, body = _get(address, "/")
    assert status == 200 and headers["Content-type"] == "text/html; charset=utf-8"
    assert b"<title>Directory listing for /</title>" in body
    assert b'<li><a href="B%20%26%20%3Cc%3E.html">B &amp; &lt;c&gt;.html</a></li>' in body
    assert b'<a href="empty/">empty/</a>' in body
    assert body.index(b"B%20") < body.index(b"data.json") < body.index(b"hello.txt")


def test_not_found_and_traversal(address: Any) -> None:
    assert _get(address, "/nope.txt")[0] == 404
    assert _get(address, "/hello.txt/")[0] == 404
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/a/../../secret.txt"):
        status, _, body = _get(address, path)
        assert status == 404 and b"do not serve" not in body, path


def test_if_modified_since(address: Any) -> None:
    stamp = "Tue, 14 Nov 2023 22:13:20 GMT"
    status, _, body = _get(address, "/hello.txt", **{"If-Modified-Since": stamp})
    assert (status, body) == (304, b"")
    earlier = "Tue, 14 Nov 2023 22:13:19 GMT"
    assert _get(address, "/hello.txt", **{"If-Modified-Since": earlier})[0] == 200
    assert _get(address, "/hello.txt", **{"If-Modified-Since": "garbage"})[0] == 200
    both = {"If-Modified-Since": stamp, "If-None-Match": '"x"'}
    assert _get(address, "/hello.txt", **both)[0] == 200


def test_head(address: Any) -> None:
    answer = exchange(address, b"HEAD /hello.txt HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n") and answer.endswith(b"\r\n\r\n")
    assert b"Content-Length: 13\r\n" in answer


COMPARED = [
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET /hello.txt HTTP/1.0\r\n\r\n",
    b"HEAD /hello.txt HTTP/1.0\r\n\r\n",
    b"GET /site HTTP/1.0\r\n\r\n",
    b"GET //evil.example/site HTTP/1.0\r\n\r\n",
    b"GET /site/ HTTP/1.0\r\n\r\n",
    b"GET /B%20%26%20%3Cc%3E.html HTTP/1.0\r\n\r\n",
    b"GET /nope HTTP/1.0\r\n\r\n",
    b"GET /hello.txt HTTP/1.0\r\nIf-Modified-Since: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\n",
    b"POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    b"GET /?q=<b>&r=%3Cx%3E HTTP/1.0\r\n\r\n",
    b"GET /%3Cx%3E/../ HTTP/1.0\r\n\r\n",
    b"GET /empty/ HTTP/1.0\r\n\r\n",
    b"GET /%2e%2e/secret.txt HTTP/1.0\r\n\r\n",
    b"GET /hello.txt?x#frag HTTP/1.0\r\n\r\n",
    b"GET /data.json.gz HTTP/1.0\r\n\r\n",
    b"GET /hello.txt HTTP/1.0\r\nIf-Modified-Since: Tue, 14 Nov 2023 22:13:20\r\n\r\n",
    b"GET /hello.txt HTTP/1.0\r\nIf-Modified-Since: Tue, 14 Nov 2023 23:13:20 +0100\r\n\r\n",
]


def test_same_answers_as_stdlib(root: Path, loop_kind: str) -> None:
    stdlib = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(StdlibFiles, directory=str(root))
    )
    with serving(stdlib) as address:
        expected = [without_date(exchange(address, data)) for data in COMPARED]
    ours = ps_server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Files, directory=root), event_loop=loop_kind
    )
    with serving(ours) as address:
        for data, answer in zip(COMPARED, expected, strict=True):
            assert without_date(exchange(address, data)) == answer, data
