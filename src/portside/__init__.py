"""portside: every classic Python server model on one fast asyncio/uvloop engine.

The native API is :func:`serve` (blocking, for scripts) and :class:`Server` (an async context
manager, for asyncio programs); both serve a Twisted-style ``Factory``, an ``asyncio.Protocol``
factory or an ``async def handler(reader, writer)`` under one :class:`Limits`.

The engine is imported on first use of those names, so ``import portside.proto.http`` (a
sans-I/O machine) stays free of asyncio and sockets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from portside.config import Limits
from portside.errors import BindError, EndpointError, PortsideError, ProtocolError

if TYPE_CHECKING:
    from portside.core.metrics import Statistics
    from portside.serving import Server, serve

__version__ = "0.1.0"

__all__ = [
    "BindError",
    "EndpointError",
    "Limits",
    "PortsideError",
    "ProtocolError",
    "Server",
    "Statistics",
    "__version__",
    "serve",
]

_LAZY = {
    "Server": "portside.serving",
    "serve": "portside.serving",
    "Statistics": "portside.core.metrics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'portside' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
