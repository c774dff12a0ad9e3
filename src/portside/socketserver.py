"""The stdlib ``socketserver`` on portside's engine: change the import, keep the code.

``from portside import socketserver`` gives every class the stdlib documents -- ``BaseServer``,
``TCPServer``, ``UDPServer``, ``UnixStreamServer``, ``UnixDatagramServer``, the
``ThreadingMixIn`` and ``ForkingMixIn`` mix-ins with every combination, and the request
handlers -- with the same hooks called at the same points. Underneath, ``serve_forever`` runs
an event loop instead of polling every half second, ``shutdown()`` returns promptly (and,
called from a handler, does not deadlock), the engine's :class:`~portside.Limits` apply
(``max_connections``, ``idle_timeout``, a graceful shutdown with a deadline) and
``statistics()`` reports what the server did. Two request modes are new:

- :class:`ThreadPoolMixIn`: a bounded pool of ``max_workers`` threads; connections beyond it
  wait their turn;
- :class:`GreenMixIn`: each handler on a greenlet whose socket calls suspend into the loop, so
  blocking-style handler code serves thousands of connections without a thread each.

Stream servers take ``ssl_context=`` for TLS. A server instance can also be served by
``portside.serve`` / ``portside.Server`` next to other portside servers on one loop.
See ``docs/socketserver.md``.
"""

from __future__ import annotations

from portside._socketserver.handlers import (
    BaseRequestHandler,
    DatagramRequestHandler,
    StreamRequestHandler,
)
from portside._socketserver.mixins import ForkingMixIn, GreenMixIn, ThreadingMixIn, ThreadPoolMixIn
from portside._socketserver.servers import (
    BaseServer,
    TCPServer,
    UDPServer,
    UnixDatagramServer,
    UnixStreamServer,
)
from portside._socketserver.waiting import run_in_thread

__all__ = [
    "BaseRequestHandler",
    "BaseServer",
    "DatagramRequestHandler",
    "ForkingMixIn",
    "ForkingTCPServer",
    "ForkingUDPServer",
    "ForkingUnixDatagramServer",
    "ForkingUnixStreamServer",
    "GreenMixIn",
    "GreenTCPServer",
    "GreenUDPServer",
    "GreenUnixDatagramServer",
    "GreenUnixStreamServer",
    "StreamRequestHandler",
    "TCPServer",
    "ThreadPoolMixIn",
    "ThreadPoolTCPServer",
    "ThreadPoolUDPServer",
    "ThreadPoolUnixDatagramServer",
    "ThreadPoolUnixStreamServer",
    "ThreadingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "ThreadingUnixDatagramServer",
    "ThreadingUnixStreamServer",
    "UDPServer",
    "UnixDatagramServer",
    "UnixStreamServer",
    "run_in_thread",
]


class ForkingTCPServer(ForkingMixIn, TCPServer):
    """A TCP server that forks a child per request."""


class ForkingUDPServer(ForkingMixIn, UDPServer):
    """A UDP server that forks a child per datagram."""


class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
    """A Unix stream server that forks a child per request."""


class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
    """A Unix datagram server that forks a child per datagram."""


class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    """A TCP server with a thread per request."""


class ThreadingUDPServer(ThreadingMixIn, UDPServer):
    """A UDP server with a thread per datagram."""


class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer):
    """A Unix stream server with a thread per request."""


class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer):
    """A Unix datagram server with a thread per datagram."""


class ThreadPoolTCPServer(ThreadPoolMixIn, TCPServer):
    """A TCP server serving requests on at most ``max_workers`` threads."""


class ThreadPoolUDPServer(ThreadPoolMixIn, UDPServer):
    """A UDP server serving datagrams on at most ``max_workers`` threads."""


class ThreadPoolUnixStreamServer(ThreadPoolMixIn, UnixStreamServer):
    """A Unix stream server serving requests on at most ``max_workers`` threads."""


class ThreadPoolUnixDatagramServer(ThreadPoolMixIn, UnixDatagramServer):
    """A Unix datagram server serving datagrams on at most ``max_workers`` threads."""


class GreenTCPServer(GreenMixIn, TCPServer):
    """A TCP server running each handler on a greenlet of its event loop."""


class GreenUDPServer(GreenMixIn, UDPServer):
    """A UDP server running each datagram's handler on a greenlet."""


class GreenUnixStreamServer(GreenMixIn, UnixStreamServer):
    """A Unix stream server running each handler on a greenlet."""


class GreenUnixDatagramServer(GreenMixIn, UnixDatagramServer):
    """A Unix datagram server running each datagram's handler on a greenlet."""


for _public in (
    BaseRequestHandler,
    BaseServer,
    DatagramRequestHandler,
    ForkingMixIn,
    GreenMixIn,
    StreamRequestHandler,
    TCPServer,
    ThreadPoolMixIn,
    ThreadingMixIn,
    UDPServer,
    UnixDatagramServer,
    UnixStreamServer,
    run_in_thread,
):
    _public.__module__ = __name__
del _public
