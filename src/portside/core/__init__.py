"""The engine: loop choice, endpoints, listeners, connections, limits, shutdown.

Front doors use the engine only through what this package exports.
"""

from portside.core.connection import Connection, ConnectionOwner
from portside.core.datagram import DatagramConnection
from portside.core.endpoints import Endpoint, parse_client_endpoint, parse_endpoint
from portside.core.loop import LOOP_KINDS, new_event_loop, run
from portside.core.metrics import Statistics
from portside.core.server import Handlers, Server

__all__ = [
    "LOOP_KINDS",
    "Connection",
    "ConnectionOwner",
    "DatagramConnection",
    "Endpoint",
    "Handlers",
    "Server",
    "Statistics",
    "new_event_loop",
    "parse_client_endpoint",
    "parse_endpoint",
    "run",
]
