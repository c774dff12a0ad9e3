"""Test helpers shipped with portside: in-memory transports that drive the engine without sockets.

See :mod:`portside.testing.memory`.
"""

from portside.testing.memory import (
    MemoryDatagramTransport,
    MemoryTransport,
    connect,
    connect_datagram,
)

__all__ = ["MemoryDatagramTransport", "MemoryTransport", "connect", "connect_datagram"]
