"""The server classes, the public surface, timeouts and TLS."""

from __future__ import annotations

import http.client
import http.server
import socket
from typing import Any

import pytest

from portside.http import server as ps_server
from portside.socketserver import GreenMixIn, TCPServer, ThreadingMixIn

from .support import CLIENT_TIMEOUT, MODES, Quiet, serving


class Hello(Quiet, ps_server.BaseHTTPRequestHandler):
    timeout = 0.3

    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_public_surface() -> None:
    stdlib_names = {"HTTPServer", "ThreadingHTTPServer", "BaseHTTPRequestHandler"}
    stdlib_names |= {"SimpleHTTPRequestHandler", "CGIHTTPRequestHandler"}
    assert stdlib_names <= set(ps_server.__all__)
    for name in ps_server.__all__:
        assert getattr(ps_server, name) is not None, name
    assert issubclass(ps_server.HTTPServer, TCPServer)
    assert issubclass(ps_server.ThreadingHTTPServer, ThreadingMixIn)
    assert issubclass(ps_server.GreenHTTPServer, GreenMixIn)
    assert ps_server.ThreadingHTTPServer.daemon_threads is True
    assert ps_server.HTTPServer.allow_reuse_address
    assert ps_server.SimpleHTTPRequestHandler.__module__ == "portside.http.server"
    stdlib_handler = http.server.BaseHTTPRequestHandler
    for name in dir(stdlib_handler):
        if not name.startswith("_"):
            assert hasattr(ps_server.BaseHTTPRequestHandler, name), name
    for name in ("directory", "extensions_map", "index_pages", "send_head", "list_directory"):
        assert name == "directory" or hasattr(ps_server.SimpleHTTPRequestHandler, name), name
    assert ps_server.CGIHTTPRequestHandler.cgi_directories == ["/cgi-bin", "/htbin"]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_server_name_and_port(mode: str, loop_kind: str) -> None:
    with MODES[mode](("127.0.0.1", 0), Hello, event_loop=loop_kind) as server:
        assert server.server_port == server.server_address[1] != 0
        assert server.server_name == socket.getfqdn("127.0.0.1")


@pytest.mark.parametrize("mode", ["thread", "green"])
def test_request_timeout_ends_the_connection(mode: str, loop_kind: str) -> None:
    """A client that stalls mid-request is dropped after ``timeout``; others are served."""
    server = MODES[mode](("127.0.0.1", 0), Hello, event_loop=loop_kind)
    with serving(server) as address:
        stalled = socket.create_connection(address, timeout=CLIENT_TIMEOUT)
        try:
            stalled.sendall(b"GET / HTTP/1.0\r\nHost: x")
            conn = http.client.HTTPConnection(address[0], address[1], timeout=CLIENT_TIMEOUT)
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"hello"
            conn.close()
            assert stalled.recv(1024) == b""  # closed by the server, no answer
        finally:
            stalled.close()


def test_https_server(loop_kind: str, tls_files: Any) -> None:
    server = ps_server.ThreadingHTTPSServer(
        ("127.0.0.1", 0),
        Hello,
        certfile=tls_files.cert,
        keyfile=tls_files.key,
        event_loop=loop_kind,
    )
    with serving(server) as (host, port):
        context = tls_files.client_context()
        conn = http.client.HTTPSConnection(host, port, timeout=CLIENT_TIMEOUT, context=context)
        conn.request("GET", "/")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"hello")
        conn.close()
        with socket.create_connection((host, port), timeout=CLIENT_TIMEOUT) as plain:
            plain.sendall(b"GET / HTTP/1.0\r\n\r\n")  # plain HTTP gets no HTTP answer
            try:
                answer = plain.recv(1024)
            except ConnectionResetError:
                answer = b""
        assert not answer.startswith(b"HTTP/")
