"""Loop choice: ``auto`` (uvloop when importable), ``uvloop`` or ``asyncio``.

uvloop is imported only when a loop is made, never at module import, so portside runs
wherever asyncio does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["LOOP_KINDS", "LoopKind", "loop_factory", "new_event_loop", "run"]

LoopKind = Literal["auto", "uvloop", "asyncio"]
LOOP_KINDS: tuple[LoopKind, ...] = ("auto", "uvloop", "asyncio")

T = TypeVar("T")


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_factory(kind: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """Return a callable that makes a new loop of ``kind``; ``uvloop`` raises if it is missing."""
    if kind == "asyncio":
        return asyncio.new_event_loop
    if kind not in LOOP_KINDS:
        raise ValueError(f"unknown loop {kind!r}; choose one of {', '.join(LOOP_KINDS)}")
    factory = _uvloop_factory()
    if factory is not None:
        return factory
    if kind == "uvloop":
        raise RuntimeError("loop 'uvloop' was asked for but the uvloop package is not installed")
    return asyncio.new_event_loop


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """Make a new event loop of ``kind``."""
    return loop_factory(kind)()


def run(main: Coroutine[Any, Any, T], *, loop: str = "auto", debug: bool | None = None) -> T:
    """Run ``main`` to completion on a new loop of kind ``loop`` and close the loop."""
    with asyncio.Runner(loop_factory=loop_factory(loop), debug=debug) as runner:
        return runner.run(main)
