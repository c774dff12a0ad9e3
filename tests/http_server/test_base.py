"""BaseHTTPRequestHandler: the same handler under stdlib http.server and portside, compared."""

from __future__ import annotations

import http.client
import http.server
import io
import socket
from typing import Any

import pytest

from portside.http import server as ps_server

from .support import CLIENT_TIMEOUT, MODES, Quiet, exchange, serving, without_date


class Behaviour:
    """The handler code under test; combined with each library's BaseHTTPRequestHandler."""

    headers: Any
    rfile: Any
    wfile: Any
    command: str
    path: str
    request_version: str
    client_address: Any

    def _reply(self: Any, code: int, body: bytes, **headers: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self: Any) -> None:
        if self.path == "/teapot":
            self.send_error(418, "Short and stout", "<tip> & <spout>")
            return
        if self.path == "/port":
            self._reply(200, str(self.client_address[1]).encode())
            return
        test_header = self.headers.get("X-Test")
        body = f"{self.command} {self.path} {self.request_version} {test_header}".encode()
        self._reply(200, body, X_Custom="yes")

    def do_POST(self: Any) -> None:
        length = int(self.headers["Content-Length"])
        self._reply(201, self.rfile.read(length)[::-1])

    def do_DELETE(self: Any) -> None:
        self.send_response(204)
        self.end_headers()


def _handler(base: type, protocol: str = "HTTP/1.0") -> type:
    return type("Handler", (Quiet, Behaviour, base), {"protocol_version": protocol})


REQUESTS = {
    "get": b"GET /a?b=1 HTTP/1.0\r\nX-Test: v\r\n\r\n",
    "get-1.1": b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n",
    "post": b"POST /p HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
    "delete": b"DELETE /d HTTP/1.0\r\n\r\n",
    "send_error": b"GET /teapot HTTP/1.0\r\n\r\n",
    "head-unsupported": b"HEAD /x HTTP/1.0\r\n\r\n",
    "unsupported": b"BREW /pot HTTP/1.0\r\n\r\n",
    "http-0.9": b"GET /nine\r\n",
    "http-0.9-post": b"POST /nine\r\n",
    "one-word": b"GET\r\n\r\n",
    "four-words": b"GET / x HTTP/1.0\r\n\r\n",
    "bad-version": b"GET / FOO/1.0\r\n\r\n",
    "bad-version-number": b"GET / HTTP/1.x\r\n\r\n",
    "three-part-version": b"GET / HTTP/1.0.1\r\n\r\n",
    "http-2": b"GET / HTTP/2.0\r\n\r\n",
    "empty": b"\r\n",
    "double-slash": b"GET //evil.example/x HTTP/1.0\r\n\r\n",
    "long-line": b"G" * 65537,
    "long-header": b"GET / HTTP/1.0\r\nX: " + b"a" * 65534,
    "many-headers": b"GET / HTTP/1.0\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(101)),
    "control-chars": b"GET /\x1b[31m HTTP/1.0\r\n\r\n",
}


@pytest.fixture(scope="module")
def stdlib_answers() -> dict[str, bytes]:
    """What the stdlib's ThreadingHTTPServer answers to each request of ``REQUESTS``."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), _handler(http.server.BaseHTTPRequestHandler)
    )
    with serving(server) as address:
        return {name: without_date(exchange(address, data)) for name, data in REQUESTS.items()}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_same_answers_as_stdlib(
    mode: str, loop_kind: str, stdlib_answers: dict[str, bytes]
) -> None:
    server = MODES[mode](
        ("127.0.0.1", 0), _handler(ps_server.BaseHTTPRequestHandler), event_loop=loop_kind
    )
    with serving(server) as address:
        for name, data in REQUESTS.items():
            assert without_date(exchange(address, data)) == stdlib_answers[name], name


def test_answers_worth_comparing(stdlib_answers: dict[str, bytes]) -> None:
    """The stdlib answers are the documented ones (so the comparison cannot pass vacuously)."""
    assert stdlib_answers["get"].startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"X-Custom: yes\r\n" in stdlib_answers["get"]
    assert stdlib_answers["post"].endswith(b"\r\n\r\nolleh")
    assert stdlib_answers["unsupported"].startswith(b"HTTP/1.0 501 ")
    assert stdlib_answers["long-line"].startswith(b"HTTP/1.0 414 ")
    assert stdlib_answers["long-header"].startswith(b"HTTP/1.0 431 ")
    assert stdlib_answers["many-headers"].startswith(b"HTTP/1.0 431 ")
    assert b"Error code: 400" in stdlib_answers["bad-version"]
    assert b"Error code: 505" in stdlib_answers["http-2"]
    assert stdlib_answers["http-0.9"] == b"GET /nine HTTP/0.9 None"
    assert stdlib_answers["empty"] == b""


@pytest.mark.parametrize("mode", ["thread", "green"])
def test_keep_alive_http_1_1(mode: str, loop_kind: str) -> None:
    handler = _handler(ps_server.BaseHTTPRequestHandler, "HTTP/1.1")
    server = MODES[mode](("127.0.0.1", 0), handler, event_loop=loop_kind)
    with serving(server) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=CLIENT_TIMEOUT)
        try:
            ports = set()
            for _ in range(3):
                conn.request("GET", "/port")
                response = conn.getresponse()
                assert response.status == 200
                assert response.version == 11
                ports.add(response.read())
                assert not response.will_close
            conn.request("POST", "/", body=b"abc")
            response = conn.getresponse()
            assert (response.status, response.read()) == (201, b"cba")
        finally:
            conn.close()
    assert len(ports) == 1, "the requests did not share one connection"


@pytest.mark.parametrize("mode", ["thread", "green"])
def test_expect_100_continue(mode: str, loop_kind: str) -> None:
    handler = _handler(ps_server.BaseHTTPRequestHandler, "HTTP/1.1")
    server = MODES[mode](("127.0.0.1", 0), handler, event_loop=loop_kind)
    request = (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
        b"Connection: close\r\n\r\nok"
    )
    with serving(server) as address:
        answer = exchange(address, request)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n")
    assert answer.endswith(b"\r\n\r\nko")


class _Probe(ps_server.BaseHTTPRequestHandler):
    """A handler that is never run on a socket: for the helpers' unit tests."""

    def __init__(self) -> None:
        self.client_address = ("192.0.2.1", 1234)
        self.request_version = "HTTP/1.1"
        self.requestline = "GET / HTTP/1.1"
        self.wfile = io.BytesIO()


def test_helpers_and_attributes(capsys: pytest.CaptureFixture[str]) -> None:
    probe = _Probe()
    assert probe.MessageClass is http.client.HTTPMessage
    assert probe.responses == http.server.BaseHTTPRequestHandler.responses
    assert probe.server_version == "BaseHTTP/0.6"
    assert probe.sys_version == http.server.BaseHTTPRequestHandler.sys_version
    assert probe.version_string() == http.server.BaseHTTPRequestHandler.version_string(probe)  # type: ignore[arg-type]
    assert probe.date_time_string(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert probe.address_string() == "192.0.2.1"
    assert probe.error_message_format == http.server.DEFAULT_ERROR_MESSAGE  # type: ignore[attr-defined]
    assert probe.error_content_type == http.server.DEFAULT_ERROR_CONTENT_TYPE  # type: ignore[attr-defined]
    probe.log_request(http.HTTPStatus.OK, 12)
    probe.log_message("evil %s", "\x1b[2J\n\\")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("192.0.2.1 - - [") and err[0].endswith('] "GET / HTTP/1.1" 200 12')
    assert err[1].endswith("] evil \\x1b[2J\\x0a\\\\")
    probe.send_response_only(200)
    reuse = []
    for value in ("keep-alive", "close"):
        probe.send_header("Connection", value)
        reuse.append(probe.close_connection)
    assert reuse == [False, True]
    assert probe.wfile.getvalue() == b""
    probe.end_headers()
    assert probe.wfile.getvalue() == (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
    )


PERSISTENCE_REQUESTS = {
    "1.0": b"GET /x HTTP/1.0\r\n\r\n",
    "1.0-keep-alive": b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "1.1": b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n",
    "1.1-keep-alive": b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
    "1.1-close": b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
}


def _persists(address: Any, request: bytes) -> bool:
    """Whether the server answers a second request on the connection of a first one."""
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(request)
        first = http.client.HTTPResponse(sock)
        first.begin()
        assert first.read().startswith(b"GET /x")
        try:
            sock.sendall(request)
            return sock.recv(5) == b"HTTP/"
        except (BrokenPipeError, ConnectionResetError):
            return False


@pytest.mark.parametrize("protocol", ["HTTP/1.0", "HTTP/1.1"])
def test_connection_reuse_as_stdlib(protocol: str, loop_kind: str) -> None:
    results = []
    for server_class, base in (
        (http.server.ThreadingHTTPServer, http.server.BaseHTTPRequestHandler),
        (ps_server.ThreadingHTTPServer, ps_server.BaseHTTPRequestHandler),
    ):
        options: dict[str, Any] = {}
        if base is ps_server.BaseHTTPRequestHandler:
            options["event_loop"] = loop_kind
        server = server_class(("127.0.0.1", 0), _handler(base, protocol), **options)
        with serving(server) as address:
            results.append(
                {name: _persists(address, r) for name, r in PERSISTENCE_REQUESTS.items()}
            )
    assert results[0] == results[1]
    assert any(results[0].values()) == (protocol == "HTTP/1.1")
