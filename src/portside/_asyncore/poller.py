"""The private readiness poller of a dispatcher map: an epoll object (or kqueue, elsewhere).

A map's sockets are registered with its own poller, and the poller's single descriptor is
registered with the engine's event loop. When the loop sees it readable, the driver takes up to
a batch of ready events in one call, so events cost no per-event loop callback and the event
loop itself holds one registration per map.

On Linux the poller also keeps a ``poll()`` twin of its registrations (:attr:`Poller.poll_all`).
Waking up with ``poll()`` costs the kernel less than epoll's callbacks and ready list when most
watched descriptors are ready at once, as on a busy map (1-2 % of an echo server's CPU at 100
and at 1,000 busy connections, measured side by side); it costs more when few are, as
``poll()`` looks at every descriptor (13 % more with 1 busy connection and 119 idle). The
driver chooses per wake-up (see ``MapDriver._poll``).
"""

from __future__ import annotations

import errno
import select
import selectors
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "EPOLLERR",
    "EPOLLHUP",
    "EPOLLIN",
    "EPOLLOUT",
    "EPOLLPRI",
    "POLLNVAL",
    "POLL_ALL_MAX",
    "Poller",
    "new_poller",
]

# The epoll bit values (the same on every Linux architecture), which poll() shares; POLLNVAL
# is poll()'s report of a descriptor closed while registered (epoll just forgets it).
EPOLLIN, EPOLLPRI, EPOLLOUT, EPOLLERR, EPOLLHUP = 0x001, 0x002, 0x004, 0x008, 0x010
POLLNVAL = 0x020

# Most watched descriptors worth waiting on with poll() rather than epoll_wait() (and at most
# the events a poll() returns, which must fit in one of the driver's batches).
POLL_ALL_MAX = 1024

# A descriptor that is gone: unregistering it has nothing to undo.
_GONE = frozenset({errno.ENOENT, errno.EBADF})


class Poller(Protocol):
    """What the driver needs: epoll's interface, with its bit values."""

    def fileno(self) -> int: ...
    def register(self, fd: int, eventmask: int) -> None: ...
    def modify(self, fd: int, eventmask: int) -> None: ...
    def unregister(self, fd: int) -> None: ...
    def poll(self, timeout: float, maxevents: int) -> list[tuple[int, int]]: ...

    poll_all: Callable[[float], list[tuple[int, int]]] | None
    """The twin's ``poll(timeout_ms)``, every ready event at once; None where there is none."""

    def drop(self, fd: int) -> None:
        """``fd`` was reported closed while registered (``POLLNVAL``): stop watching it."""
        ...

    def close(self) -> None: ...


class LinuxPoller:
    """epoll, with a ``poll()`` twin of its registrations.

    epoll stays the record: a registration it refuses (a regular file) is not made in the
    twin either, and its descriptor is what an event loop watches.
    """

    def __init__(self) -> None:
        self._epoll = epoll = select.epoll()
        self._twin = twin = select.poll()
        self.fileno = epoll.fileno
        self.poll = epoll.poll
        self.poll_all: Callable[[float], list[tuple[int, int]]] | None = twin.poll

    def register(self, fd: int, eventmask: int) -> None:
        self._epoll.register(fd, eventmask)
        self._twin.register(fd, eventmask)

    def modify(self, fd: int, eventmask: int) -> None:
        self._epoll.modify(fd, eventmask)
        self._twin.register(fd, eventmask)

    def unregister(self, fd: int) -> None:
        try:
            self._epoll.unregister(fd)
        finally:
            self.drop(fd)

    def drop(self, fd: int) -> None:
        try:
            self._twin.unregister(fd)
        except KeyError:
            pass  # never registered: epoll refused it

    def close(self) -> None:
        self._epoll.close()


class SelectorPoller:
    """epoll's interface over a ``selectors`` selector that has a descriptor (kqueue).

    Priority data (``EPOLLPRI``) is not reported through it.
    """

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector

    def fileno(self) -> int:
        return self._selector.fileno()  # type: ignore[attr-defined, no-any-return]

    @staticmethod
    def _events(eventmask: int) -> int:
        events = selectors.EVENT_READ if eventmask & EPOLLIN else 0
        return events | (selectors.EVENT_WRITE if eventmask & EPOLLOUT else 0)

    def register(self, fd: int, eventmask: int) -> None:
        try:
            self._selector.register(fd, self._events(eventmask))
        except KeyError:
            raise FileExistsError(errno.EEXIST, "already registered") from None

    def modify(self, fd: int, eventmask: int) -> None:
        try:
            self._selector.modify(fd, self._events(eventmask))
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "not registered") from None

    def unregister(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "not registered") from None

    def poll(self, timeout: float, maxevents: int) -> list[tuple[int, int]]:
        ready = self._selector.select(timeout)
        return [
            (
                key.fd,
                (EPOLLIN if mask & selectors.EVENT_READ else 0)
                | (EPOLLOUT if mask & selectors.EVENT_WRITE else 0),
            )
            for key, mask in ready[:maxevents]
        ]

    poll_all: Callable[[float], list[tuple[int, int]]] | None = None

    def drop(self, fd: int) -> None:
        """Nothing to do: a selector never reports ``POLLNVAL``."""

    def close(self) -> None:
        self._selector.close()


def new_poller() -> Poller:
    """A :class:`LinuxPoller` where there is epoll, else a kqueue behind :class:`SelectorPoller`."""
    if hasattr(select, "epoll"):
        return LinuxPoller()
    selector = selectors.DefaultSelector()
    if not hasattr(selector, "fileno"):
        selector.close()
        raise RuntimeError("portside.asyncore needs epoll or kqueue")
    return SelectorPoller(selector)


def forget(poller: Poller, fd: int) -> None:
    """Unregister ``fd``; a descriptor already closed (so already dropped) is fine."""
    try:
        poller.unregister(fd)
    except OSError as exc:
        if exc.errno not in _GONE:
            raise


def watch(poller: Poller, fd: int, old: int, new: int) -> None:
    """Change ``fd``'s registration from mask ``old`` to ``new`` (0 = not registered).

    A descriptor number can be closed and reused behind the poller's back; registering then
    modifying (or the reverse) covers both ways that can surprise it.
    """
    if new == 0:
        forget(poller, fd)
    elif old == 0:
        try:
            poller.register(fd, new)
        except FileExistsError:
            poller.modify(fd, new)
    else:
        try:
            poller.modify(fd, new)
        except FileNotFoundError:
            poller.register(fd, new)
