"""System event triggers: ``reactor.addSystemEventTrigger`` and the three phases of an event.

An event (``"startup"``, ``"shutdown"``, or any name) fires in three phases, ``before``,
``during`` and ``after``; each phase runs its triggers in the order they were added, then waits
for every awaitable they returned (where Twisted waits for returned Deferreds) before the next
phase starts. A trigger added to a phase while that phase runs still runs in it; one removed
before its turn does not.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PHASES", "SystemEventTriggers", "TriggerID"]

log = logging.getLogger("portside.internet")

PHASES = ("before", "during", "after")

TriggerID = tuple[str, int]
"""What ``addSystemEventTrigger`` returns: the event type and a serial number."""


@dataclass(frozen=True, slots=True)
class _Trigger:
    id: TriggerID
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kw: dict[str, Any]


class SystemEventTriggers:
    """The triggers registered for each event and phase."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], list[_Trigger]] = {}
        self._serial = itertools.count(1)

    def add(
        self,
        phase: str,
        eventType: str,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> TriggerID:
        """Register ``func(*args, **kw)`` for ``phase`` of ``eventType`` (KeyError: bad phase)."""
        if phase not in PHASES:
            raise KeyError(f"invalid phase {phase!r}: use one of {', '.join(PHASES)}")
        if not callable(func):
            raise TypeError(f"{func!r} is not callable")
        trigger = _Trigger((eventType, next(self._serial)), func, args, kw)
        self._phases.setdefault((eventType, phase), []).append(trigger)
        return trigger.id

    def remove(self, triggerID: TriggerID) -> None:
        """Unregister a trigger; ValueError if it is not (or no longer) registered."""
        for (event, _), triggers in self._phases.items():
            if event != triggerID[0]:
                continue
            for trigger in triggers:
                if trigger.id == triggerID:
                    triggers.remove(trigger)
                    return
        raise ValueError(f"no system event trigger {triggerID!r}")

    async def fire(self, eventType: str) -> None:
        """Fire all three phases of ``eventType``, one after the other."""
        for phase in PHASES:
            await self.fire_phase(eventType, phase)

    async def fire_phase(self, eventType: str, phase: str) -> None:
        """Run one phase's triggers, then wait for the awaitables they returned."""
        triggers = self._phases.setdefault((eventType, phase), [])
        done: set[TriggerID] = set()
        waits: list[Awaitable[Any]] = []
        while True:
            trigger = next((t for t in triggers if t.id not in done), None)
            if trigger is None:
                break
            done.add(trigger.id)
            try:
                result = trigger.func(*trigger.args, **trigger.kw)
            except Exception:
                log.exception("Unhandled error in %s %s trigger %r", phase, eventType, trigger.func)
                continue
            if inspect.isawaitable(result):
                waits.append(result)
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error(
                    "Unhandled error in a %s %s trigger",
                    phase,
                    eventType,
                    exc_info=outcome,
                )
