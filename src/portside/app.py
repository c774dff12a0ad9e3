"""Turning whatever a user hands to ``portside.serve`` into the engine's :class:`Handlers`.

Accepted, in this order:

- a :class:`~portside.core.server.Handlers` (used as it is);
- an object with ``__portside_handlers__()`` — how front doors plug in (a Twisted ``Factory``
  or ``DatagramProtocol``, a socketserver server, a service);
- an ``async def handler(reader, writer)`` (run once per connection, as ``asyncio.start_server``);
- any other callable: an ``asyncio.Protocol`` factory (``lambda: MyProtocol()``, or the class).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from portside.aioprotocol import ProtocolConnection
from portside.core.server import Handlers
from portside.streams import stream_factory

__all__ = ["as_handlers"]


def as_handlers(app: Any) -> Handlers:
    """The engine handlers that serve ``app``; TypeError names what was expected."""
    if isinstance(app, Handlers):
        return app
    adapt = getattr(app, "__portside_handlers__", None)
    if adapt is not None and not isinstance(app, type):
        handlers = adapt()
        assert isinstance(handlers, Handlers)
        return handlers
    name = getattr(app, "__qualname__", type(app).__name__)
    if inspect.iscoroutinefunction(app):
        return Handlers(stream=stream_factory(app), name=name)
    if isinstance(app, type) and issubclass(app, asyncio.DatagramProtocol):
        raise TypeError("serve a datagram protocol through a Twisted DatagramProtocol instance")
    if callable(app):
        return Handlers(stream=ProtocolConnection.factory(app), name=name)
    raise TypeError(
        f"cannot serve {app!r}: pass a Protocol factory, an asyncio.Protocol factory, "
        "or an async def handler(reader, writer)"
    )
