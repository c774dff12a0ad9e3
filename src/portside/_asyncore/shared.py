"""What the asyncore/asynchat modules and the map drivers share.

Which driver runs each map, which dispatcher is handling an event right now, and
:func:`touch`, the way a dispatcher method tells its map's driver that the dispatcher's
predicates may have changed; also :class:`ExitNow` and the errnos that mean the peer is gone.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portside._asyncore.driver import MapDriver

__all__ = ["DISCONNECTED", "DRIVERS", "ExitNow", "Handling", "Map", "handling", "touch"]

# errnos meaning the peer is gone: the dispatcher is closed rather than reported as an error
DISCONNECTED = frozenset(
    {
        errno.ECONNRESET,
        errno.ENOTCONN,
        errno.ESHUTDOWN,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.EBADF,
    }
)


class ExitNow(Exception):
    """Raised by a handler to leave :func:`portside.asyncore.loop` at once (it propagates)."""


Map = dict[int, Any]

DRIVERS: dict[int, MapDriver] = {}
"""The driver of each map being run, by ``id(map)``."""


class Handling:
    """Which dispatcher is handling an event right now: its own calls need no touch().

    One shared object whose attribute the driver sets per event, so that no function needs
    a ``global`` statement to update it and readers elsewhere see the current value.
    """

    __slots__ = ("dispatcher",)

    def __init__(self) -> None:
        self.dispatcher: Any = None


handling = Handling()


def touch(d: Any) -> None:
    """Tell the driver of ``d``'s map that ``d``'s predicates may have changed.

    Dispatcher methods that change what ``readable()``/``writable()`` answer call this (the
    dispatcher handling an event is re-checked after it anyway).
    """
    if d is not handling.dispatcher:
        driver = DRIVERS.get(id(getattr(d, "_map", None)))
        if driver is not None:
            driver.touch(d)
