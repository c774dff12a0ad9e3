"""The default reactor: ``from portside.internet import reactor``, as in Twisted.

This module stands for the default :class:`Reactor` instance: any attribute it does not define
itself is looked up on that instance at the moment of use, so ``reactor.run()``,
``reactor.running`` and ``reactor.callLater(...)`` behave as Twisted's. (Twisted puts the
reactor object itself in ``sys.modules``; delegating keeps this a real module, so
``from portside.internet.reactor import Reactor`` works and type checkers see it.)

Tests, and programs that want a particular loop, make their own reactor, and may make it the
default::

    from portside.internet.reactor import Reactor, install

    install(Reactor(loop="asyncio"))    # before the program calls reactor.run()
"""

from typing import Any

from portside.internet._delayed import DelayedCall
from portside.internet._reactor import Reactor

__all__ = ["DelayedCall", "Reactor", "install", "installed"]

_reactor = Reactor()


def install(reactor: Reactor) -> None:
    """Make ``reactor`` the one this module stands for, from now on."""
    global _reactor
    _reactor = reactor


def installed() -> Reactor:
    """The reactor this module stands for (the object itself, e.g. for ``isinstance``)."""
    return _reactor


def __getattr__(name: str) -> Any:
    return getattr(_reactor, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | {n for n in dir(_reactor) if not n.startswith("_")})
