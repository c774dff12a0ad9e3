"""The servers bench/socketserver/run.py compares: one line-echo handler, several frameworks.

    python servers.py KIND PORT

KIND is one of ``stdlib`` (the stdlib's ThreadingTCPServer), ``stdlib128`` (the same with a
listen backlog of 128, as portside's), ``threading``, ``pool`` and
``green`` (portside's ThreadingTCPServer, ThreadPoolTCPServer, GreenTCPServer on uvloop), and
``gevent`` (gevent's StreamServer with the same readline/write loop). Every socketserver
variant runs the very same ``StreamRequestHandler`` code. SIGTERM ends the process at once.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from typing import Any

HOST = "127.0.0.1"


def line_echo(base: type) -> type:
    """The benchmark's handler: read a line, write it back, until the client closes."""

    class LineEcho(base):  # type: ignore[misc, valid-type]
        def handle(self) -> None:
            while line := self.rfile.readline():
                self.wfile.write(line)

    return LineEcho


def socketserver_main(kind: str, port: int) -> None:
    if kind in ("stdlib", "stdlib128"):
        import socketserver as module

        server: Any = module.ThreadingTCPServer
        if kind == "stdlib128":  # the same backlog as portside's: every client gets in

            class Backlog128(server):  # type: ignore[misc]
                request_queue_size = 128

            server = Backlog128
        options: dict[str, Any] = {}
    else:
        from portside import socketserver as module  # type: ignore[no-redef]

        server = {
            "threading": module.ThreadingTCPServer,
            "pool": module.ThreadPoolTCPServer,
            "green": module.GreenTCPServer,
        }[kind]
        options = {"event_loop": "uvloop"}
    server.daemon_threads = True
    with server((HOST, port), line_echo(module.StreamRequestHandler), **options) as running:
        running.serve_forever()


def gevent_main(port: int) -> None:
    from gevent.server import StreamServer

    def handle(sock: Any, address: Any) -> None:
        rfile = sock.makefile("rb")
        while line := rfile.readline():
            sock.sendall(line)

    StreamServer((HOST, port), handle).serve_forever()


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if kind == "gevent":
        gevent_main(port)
    else:
        socketserver_main(kind, port)


if __name__ == "__main__":
    main()
