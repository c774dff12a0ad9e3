"""The stdlib ``http.server`` on portside: change the import, keep the handler code.

``from portside.http import server`` (or ``from portside.http.server import …``) gives
:class:`HTTPServer`, :class:`ThreadingHTTPServer`, :class:`BaseHTTPRequestHandler`,
:class:`SimpleHTTPRequestHandler` and :class:`CGIHTTPRequestHandler` with the stdlib's
documented attributes, hooks and answers. The servers are :mod:`portside.socketserver`
servers, so they serve on portside's engine (limits, ``statistics()``, prompt
``shutdown()``, ``ssl_context=``, ``event_loop=``); :class:`GreenHTTPServer` runs each
connection's handler on a greenlet instead of a thread. ``python -m portside.http.server``
takes the stdlib's command line. See ``docs/http-server.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import ssl
import sys
import threading
from collections.abc import Sequence
from typing import Any

from portside.http._base import (
    DEFAULT_ERROR_CONTENT_TYPE,
    DEFAULT_ERROR_MESSAGE,
    BaseHTTPRequestHandler,
)
from portside.http._cgi import CGIHTTPRequestHandler
from portside.http._simple import SimpleHTTPRequestHandler
from portside.socketserver import GreenMixIn, TCPServer, ThreadingMixIn

__all__ = [
    "DEFAULT_ERROR_CONTENT_TYPE",
    "DEFAULT_ERROR_MESSAGE",
    "BaseHTTPRequestHandler",
    "CGIHTTPRequestHandler",
    "GreenHTTPServer",
    "HTTPSServer",
    "HTTPServer",
    "SimpleHTTPRequestHandler",
    "ThreadingHTTPSServer",
    "ThreadingHTTPServer",
    "main",
    "test",
]


class HTTPServer(TCPServer):
    """A TCP server for HTTP handlers; it knows its ``server_name`` and ``server_port``.

    It serves one connection at a time (as the stdlib's does): use
    :class:`ThreadingHTTPServer` or :class:`GreenHTTPServer` for concurrent clients.
    """

    allow_reuse_address = True
    server_name: str
    server_port: int

    def server_bind(self) -> None:
        """Bind, then record the host's fully qualified name and the port."""
        super().server_bind()
        host, port = self.server_address[:2]
        self.server_name = socket.getfqdn(host)
        self.server_port = port


class ThreadingHTTPServer(ThreadingMixIn, HTTPServer):
    """An HTTP server with a (daemon) thread per connection."""

    daemon_threads = True


class GreenHTTPServer(GreenMixIn, HTTPServer):
    """An HTTP server with a greenlet per connection, all on the server's event loop.

    Handler code stays blocking-style; file and socket I/O on the request suspends only its
    greenlet. Code that blocks otherwise should use :func:`portside.socketserver.run_in_thread`.
    """


class HTTPSServer(HTTPServer):
    """An HTTP server over TLS, built from certificate files (as Python 3.14's).

    ``certfile`` (and ``keyfile``, ``password`` if the key is separate or encrypted) is
    loaded into a server context that offers ``alpn_protocols`` (default ``http/1.1``).
    """

    def __init__(
        self,
        server_address: Any,
        RequestHandlerClass: Any,
        bind_and_activate: bool = True,
        *,
        certfile: str | os.PathLike[str],
        keyfile: str | os.PathLike[str] | None = None,
        password: str | bytes | None = None,
        alpn_protocols: Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        context = _server_context(certfile, keyfile, password, alpn_protocols)
        super().__init__(
            server_address, RequestHandlerClass, bind_and_activate, ssl_context=context, **options
        )


class ThreadingHTTPSServer(ThreadingMixIn, HTTPSServer):
    """An HTTPS server with a (daemon) thread per connection."""

    daemon_threads = True


def _server_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None,
    password: str | bytes | None,
    alpn_protocols: Sequence[str] | None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile, password)
    context.set_alpn_protocols(list(alpn_protocols or ["http/1.1"]))
    return context


class _DualStack:
    """The command line's server: IPv4 too on an IPv6 socket, and the ``-d`` directory."""

    directory: str | None = None
    socket: Any
    RequestHandlerClass: Any

    def server_bind(self) -> None:
        if self.socket.family == socket.AF_INET6:
            # Where the platform has no dual stack, the socket just stays IPv6-only.
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()  # type: ignore[misc]

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.RequestHandlerClass(request, client_address, self, directory=self.directory)


def _best_family(host: str | None, port: int) -> tuple[int, Any]:
    """The address family and socket address to bind for ``host`` (None: all interfaces)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def test(
    HandlerClass: type[BaseHTTPRequestHandler] = BaseHTTPRequestHandler,
    ServerClass: type[TCPServer] = ThreadingHTTPServer,
    protocol: str = "HTTP/1.0",
    port: int = 8000,
    bind: str | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve ``HandlerClass`` on ``port`` until interrupted (the stdlib's ``test``).

    Prints ``Serving HTTP on <host> port <port> (<url>) ...``; Ctrl-C (SIGINT) shuts the
    server down (``shutdown()``, then ``server_close()``) and exits with status 0.
    """
    family, address = _best_family(bind, port)
    HandlerClass.protocol_version = protocol
    ServerClass.address_family = family
    scheme = "HTTP" if ssl_context is None else "HTTPS"
    options: dict[str, Any] = {} if ssl_context is None else {"ssl_context": ssl_context}
    with ServerClass(address, HandlerClass, **options) as httpd:
        host, port = httpd.socket.getsockname()[:2]
        url_host = f"[{host}]" if ":" in host else host
        print(
            f"Serving {scheme} on {host} port {port} ({scheme.lower()}://{url_host}:{port}/) ...",
            flush=True,
        )
        try:
            _serve_until_interrupted(httpd)
        except KeyboardInterrupt:
            print("\nKeyboard interrupt received, exiting.", flush=True)
            sys.exit(0)


def _serve_until_interrupted(httpd: Any) -> None:
    """``httpd.serve_forever()`` in a thread, while this (main) thread waits for Ctrl-C.

    SIGINT is delivered to the main thread only; serving elsewhere means the
    KeyboardInterrupt lands here, never inside the event loop's own work, and the server
    then stops through its documented ``shutdown()``.
    """
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            httpd.serve_forever()
        except BaseException as exc:  # handed to the main thread, raised there
            failure.append(exc)

    thread = threading.Thread(target=serve, name="serve_forever")
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:
        httpd.shutdown()
        thread.join()
        raise
    if failure:
        raise failure[0]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m portside.http.server")
    parser.add_argument("--cgi", action="store_true", help="run as CGI server")
    parser.add_argument(
        "-b", "--bind", metavar="ADDRESS", help="bind to this address (default: all interfaces)"
    )
    parser.add_argument(
        "-d",
        "--directory",
        default=os.getcwd(),
        help="serve this directory (default: current directory)",
    )
    parser.add_argument(
        "-p",
        "--protocol",
        metavar="VERSION",
        default="HTTP/1.0",
        help="conform to this HTTP version (default: HTTP/1.0)",
    )
    parser.add_argument("--tls-cert", metavar="PATH", help="serve HTTPS with this certificate")
    parser.add_argument("--tls-key", metavar="PATH", help="the certificate's private key")
    parser.add_argument(
        "--tls-password-file", metavar="PATH", help="a file holding the key's password"
    )
    parser.add_argument(
        "--green", action="store_true", help="a greenlet per connection instead of a thread"
    )
    parser.add_argument(
        "port", default=8000, type=int, nargs="?", help="bind to this port (default: 8000)"
    )
    return parser


def _tls_context(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> ssl.SSLContext | None:
    if args.tls_cert is None:
        if args.tls_key or args.tls_password_file:
            parser.error("--tls-key and --tls-password-file require --tls-cert")
        return None
    password = None
    if args.tls_password_file:
        with open(args.tls_password_file, encoding="utf-8") as f:
            password = f.read().strip()
    return _server_context(args.tls_cert, args.tls_key, password, None)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m portside.http.server [--cgi] [-b ADDRESS] [-d DIR] [-p VERSION] [port]``."""
    parser = _parser()
    args = parser.parse_args(argv)
    context = _tls_context(args, parser)
    handler: type[BaseHTTPRequestHandler] = (
        CGIHTTPRequestHandler if args.cgi else SimpleHTTPRequestHandler
    )
    base: type[TCPServer] = GreenHTTPServer if args.green else ThreadingHTTPServer
    server_class = type("DualStackServer", (_DualStack, base), {"directory": args.directory})
    test(handler, server_class, args.protocol, args.port, args.bind, ssl_context=context)


for _public in (BaseHTTPRequestHandler, CGIHTTPRequestHandler, SimpleHTTPRequestHandler):
    _public.__module__ = "portside.http.server"
del _public

if __name__ == "__main__":
    main()
