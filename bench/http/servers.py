"""The static file servers the HTTP benchmark runs, one per ``python servers.py NAME ...``.

    python bench/http/servers.py portside DIR PORT     portside's FileServer (uvloop)
    python bench/http/servers.py twisted DIR PORT      twisted.web.static.File, default reactor
    python bench/http/servers.py aiohttp DIR PORT      aiohttp's web.static on uvloop

Each binds 127.0.0.1:PORT, logs nothing per request (nginx runs with access_log off), and
stops on SIGTERM. The stdlib server and nginx are started by run.py as users run them.
"""

from __future__ import annotations

import signal
import sys


def portside(root: str, port: int) -> None:
    import portside as ps
    from portside.services.fileserver import FileServer

    ps.serve(
        FileServer(root=root, access_log=False), f"tcp:{port}:interface=127.0.0.1", loop="uvloop"
    )


def twisted(root: str, port: int) -> None:
    from twisted.internet import reactor
    from twisted.web.server import Site
    from twisted.web.static import File

    site = Site(File(root))
    site.noisy = False
    reactor.listenTCP(port, site, interface="127.0.0.1")
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    reactor.run()


def aiohttp(root: str, port: int) -> None:
    import uvloop
    from aiohttp import web

    app = web.Application()
    app.router.add_static("/", root)
    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )


SERVERS = {"portside": portside, "twisted": twisted, "aiohttp": aiohttp}

if __name__ == "__main__":
    name, directory, port_text = sys.argv[1:4]
    SERVERS[name](directory, int(port_text))
