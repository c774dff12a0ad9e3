"""What a map's driver keeps per descriptor, and what the compat modules tell it about
their own classes."""

from __future__ import annotations

import sys
from typing import Any

from portside._asyncore.poller import EPOLLIN

__all__ = [
    "OUT_BUFFER",
    "PLAIN",
    "PRODUCER_FIFO",
    "TLS_HANDSHAKE",
    "TLS_READY",
    "TLS_UNCONNECTED",
    "WANT_READ",
    "WANT_WRITE",
    "Registration",
    "always_readable",
    "default_expt",
    "default_read_event",
    "queue_writable",
]

# the direction a TLS recv/send (or handshake) needs before it can make progress
WANT_READ, WANT_WRITE = 1, 2
# TLS states of a registration
PLAIN, TLS_UNCONNECTED, TLS_HANDSHAKE, TLS_READY = 0, 1, 2, 3

default_expt: tuple[Any, Any] = (None, None)
"""asyncore's own handle_expt/handle_expt_event: dispatchers that keep both get no EPOLLPRI."""

default_read_event: Any = None
"""asyncore's own handle_read_event: for a connected dispatcher that keeps it, a read event
is a ``handle_read()`` call, which the driver makes itself."""

always_readable: set[Any] = set()
"""``readable`` methods known to return true whatever the state (asyncore's, asynchat's):
a dispatcher using one of them is not asked before and after each event."""

# what the writable() of dispatcher_with_send and of async_chat answer from: "not connected,
# or this output queue is not empty"
OUT_BUFFER, PRODUCER_FIFO = 1, 2

queue_writable: dict[Any, int] = {}
"""``writable`` methods of that form, and which queue each reads: the driver evaluates them
itself after each event (the same expression, without a Python call)."""


class Registration:
    """One descriptor as the poller knows it: which dispatcher, which event mask."""

    __slots__ = (
        "always",
        "const_read",
        "dispatcher",
        "expt",
        "fd",
        "just_reads",
        "live",
        "mask",
        "plain_read_event",
        "queue",
        "tls",
        "want",
    )

    def __init__(self, dispatcher: Any, fd: int) -> None:
        self.dispatcher = dispatcher
        self.fd = fd
        self.mask = 0
        self.live = True  # false once unregistered (the dispatcher left the map)
        self.always = False  # epoll refuses the descriptor (a regular file): always ready
        ssl = sys.modules.get("ssl")
        tls = ssl is not None and isinstance(dispatcher.socket, ssl.SSLSocket)
        self.tls = TLS_UNCONNECTED if tls else PLAIN
        self.want = 0
        # the common case, checked first for each event: a plain socket whose readable() is
        # constant and whose read event is asyncore's own, without priority events,
        # registered for reads only (the driver keeps it)
        self.just_reads = False
        self.classify()

    def classify(self) -> None:
        """Work out which of the dispatcher's methods the driver may take as known.

        From its class, unless the method is assigned on the dispatcher itself (then it is
        called like any other). Looked for when the dispatcher is registered and whenever
        its predicates are asked again after a method call, not by the periodic sweeps
        (which call ``writable()`` itself, so an assigned one counts from the next sweep).
        """
        d = self.dispatcher
        cls = type(d)
        self.expt = (
            (cls.handle_expt, cls.handle_expt_event) != default_expt
            or _own(d, "handle_expt")
            or _own(d, "handle_expt_event")
        )
        self.const_read = cls.readable in always_readable and not _own(d, "readable")
        self.plain_read_event = cls.handle_read_event is default_read_event and not _own(
            d, "handle_read_event"
        )
        queue = queue_writable.get(cls.writable, 0)
        self.queue = 0 if queue and _own(d, "writable") else queue  # OUT_BUFFER, PRODUCER_FIFO
        self.update(self.mask)

    def update(self, mask: int) -> None:
        """Record ``mask`` as what the poller watches for this descriptor."""
        self.mask = mask
        self.just_reads = (
            mask == EPOLLIN
            and self.const_read
            and self.plain_read_event
            and not self.expt
            and self.tls == PLAIN
        )


def _own(d: Any, name: str) -> bool:
    """Whether method ``name`` of ``d`` was assigned on ``d`` itself, not defined by its class.

    Asked through the bound method, not ``d.__dict__``: reading ``__dict__`` would make
    CPython 3.11+ keep the dispatcher's attributes in a dict, the slower way to read them.
    """
    bound: Any = getattr(d, name, None)
    if getattr(bound, "__self__", None) is not d:
        return True
    return bool(bound.__func__ is not getattr(type(d), name, None))
