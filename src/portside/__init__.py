"""portside: every classic Python server model on one fast asyncio/uvloop engine.

The native API is :func:`serve` (blocking, for scripts) and :class:`Server` (an async context
manager, for asyncio programs); both serve a Twisted-style ``Factory``, an ``asyncio.Protocol``
factory or an ``async def handler(reader, writer)`` under one :class:`Limits`.
"""

from portside.config import Limits
from portside.core.metrics import Statistics
from portside.errors import BindError, EndpointError, PortsideError, ProtocolError
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
