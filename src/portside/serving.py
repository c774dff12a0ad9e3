"""The native entry points: ``portside.serve`` for scripts, ``portside.Server`` for asyncio.

Both take anything :func:`portside.app.as_handlers` accepts and any number of endpoints::

    portside.serve(EchoFactory(), "tcp:7007", "unix:/tmp/echo.sock")

    async with portside.Server(handler, "tcp:0") as server:
        print(server.addresses)
        await server.serve_forever()
"""

from __future__ import annotations

import asyncio
from typing import Any

from portside.app import as_handlers
from portside.config import Limits
from portside.core import server as core_server
from portside.core.endpoints import Endpoint
from portside.core.loop import loop_factory, run
from portside.core.signals import shutdown_signals

__all__ = ["Server", "serve"]


class Server(core_server.Server):
    """An engine server for any servable application (see :mod:`portside.app`)."""

    def __init__(self, app: Any, *endpoints: Endpoint | str, limits: Limits | None = None) -> None:
        super().__init__(as_handlers(app), *endpoints, limits=limits)


async def serve_until_signalled(server: core_server.Server) -> None:
    """Serve until SIGINT/SIGTERM: the first drains gracefully, a second aborts what is left.

    The handlers are in place before the server starts, so a signal sent as soon as the
    "listening" line appears is already a graceful stop. It also returns when the
    application shuts the server down itself.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    with shutdown_signals(loop, stop.set, server.force):
        await server.start()
        signalled = loop.create_task(stop.wait())
        serving = loop.create_task(server.serve_forever())
        await asyncio.wait({signalled, serving}, return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        await server.shutdown()  # returns at once if the application already shut it down
        await serving


def serve(
    app: Any, *endpoints: Endpoint | str, limits: Limits | None = None, loop: str = "auto"
) -> None:
    """Serve ``app`` on ``endpoints`` until SIGINT/SIGTERM, then shut down gracefully.

    ``loop`` is ``auto`` (uvloop when installed), ``uvloop`` or ``asyncio``. Endpoints are bound
    before this returns control to the loop, so a taken port raises at once.
    """
    loop_factory(loop)  # an unknown or missing loop fails before any port is taken
    server = Server(app, *endpoints, limits=limits)
    server.bind()
    try:
        run(serve_until_signalled(server), loop=loop)
    finally:
        server.stop_accepting()  # releases the ports if serving never got going
