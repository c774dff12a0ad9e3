"""Running a dispatcher map on the engine's event loop.

asyncore's select() loop asks every dispatcher ``readable()`` and ``writable()`` before each
select call, so an iteration costs in proportion to the whole map. A :class:`MapDriver`
registers a dispatcher's descriptor with the map's poller (epoll) only for what its predicates
want, and asks the predicates of a dispatcher again:

- just before it delivers an event to it (an event is delivered only while the predicate
  holds, as in asyncore), and right after the dispatcher handled it;
- after a dispatcher method that changes its state was called on it (``connect``, ``send``,
  ``push``, ...; batched: once per batch of events, before the poller is waited on again);
- in a full sweep of the map: at least every ``timeout`` seconds while idle (as asyncore's
  select would time out and look again), and while busy as often as costs at most
  1/``SWEEP_BUDGET`` of the loop's time; with ``loop(count=...)``, in every iteration unless
  the map holds more than ``COUNT_SWEEP_EVERY`` dispatchers. This catches predicates that
  depend on state held elsewhere (a shared queue mutated in place) or on an attribute set by
  plain assignment.

So a running ``loop()`` costs in proportion to the dispatchers that are active, not to the
map's size (and so does ``loop(count=...)`` on a map too large for select()).
Events of one descriptor are delivered read, then write, then priority, before the next
descriptor's (asyncore delivers all reads of an iteration before all writes).

Who waits on the poller:

- *direct mode*: the blocking API (``loop()``, ``poll()``) on a thread whose engine loop
  holds no other map -- the usual legacy program -- waits in the poller itself: one
  ``epoll_wait`` per wake-up (or one ``poll()``, while most watched descriptors turn out
  ready: see ``_poll``), no event loop and no callback in between, and no event loop
  running while handlers run (as under asyncore). Timers the loop would keep (the sweep, TLS
  plaintext that OpenSSL holds) are kept by the driver.
- *loop mode*: otherwise (``attach()``/``loop_async()``, or several maps run on one thread),
  the poller's descriptor is registered with the event loop (uvloop or asyncio), which calls
  the driver when it is readable, so the maps share the loop with everything else on it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from portside._asyncore.poller import (
    EPOLLERR,
    EPOLLHUP,
    EPOLLIN,
    EPOLLOUT,
    EPOLLPRI,
    POLL_ALL_MAX,
    POLLNVAL,
    new_poller,
    watch,
)
from portside._asyncore.registration import OUT_BUFFER as _OUT_BUFFER
from portside._asyncore.registration import PRODUCER_FIFO as _PRODUCER_FIFO
from portside._asyncore.registration import TLS_HANDSHAKE as _TLS_HANDSHAKE
from portside._asyncore.registration import TLS_READY as _TLS_READY
from portside._asyncore.registration import TLS_UNCONNECTED as _TLS_UNCONNECTED
from portside._asyncore.registration import WANT_READ, WANT_WRITE
from portside._asyncore.registration import Registration as _Reg
from portside._asyncore.shared import DISCONNECTED, DRIVERS, ExitNow, Map, handling

__all__ = ["MapDriver"]

# While busy, full sweeps take at most 1/SWEEP_BUDGET of the loop's time (2%) ...
SWEEP_BUDGET = 50
# ... and come no more often than this, so a small map is not swept on every event.
SWEEP_MIN_INTERVAL = 0.01
# loop(count=...) sweeps a map of up to this many dispatchers in every iteration, as asyncore
# asks every predicate (about 1 ms of CPU at most); larger maps on the budget above. A count,
# not the sweep's measured cost: a collection or a page fault during one sweep must not make
# the next iteration miss a change.
COUNT_SWEEP_EVERY = 1500
# Ready events taken per wake-up: bounds how long other work on the loop waits for a busy map.
BATCH = 1024

# What select() counts as readable and as writable: an error is both, a hang-up only readable
# (a socket that can no longer send is reported writable by the kernel itself; the read end of
# a pipe whose writer is gone is not).
_READ_READY = EPOLLIN | EPOLLERR | EPOLLHUP
_WRITE_READY = EPOLLOUT | EPOLLERR

# where run_once is: not in an iteration, waiting for the iteration's batch, had it
_FREE, _WANT_BATCH, _HAD_BATCH = 0, 1, 2


_RERAISED = (ExitNow, KeyboardInterrupt, SystemExit)


class MapDriver:
    """Runs one dispatcher map on one event loop; see the module docstring for the rules."""

    def __init__(self, map: Map, loop: asyncio.AbstractEventLoop) -> None:
        self.map = map
        self.lookup: Any = map.get  # typed Any: "lookup(fd) is d" must not narrow d
        self.loop = loop
        self.regs: dict[int, _Reg] = {}
        self.dirty: dict[int, Any] = {}
        self.always: dict[int, _Reg] = {}
        self.watched = 0  # descriptors with a non-empty mask
        self.timeout = 30.0
        self.failure: BaseException | None = None
        self.running = False  # inside loop(): stop the event loop when the map empties
        self.iteration = _FREE  # run_once: waiting for its batch, or had it
        self.halted = False  # attached run failed: deliver nothing more
        self.waiter: asyncio.Future[None] | None = None  # attached to a running loop
        self.events = 0  # events since the last sweep
        self.sweep_cost = 0.0
        self.next_sweep = 0.0
        self.sweep_idle = False
        self._in_batch = False
        self.stop_batch = False  # a handler failed: deliver nothing more in this batch
        self.parked = 0  # events of the batch that were hang-ups nobody reads (not delivered)
        self.direct = False  # run()/run_once() poll the poller themselves: the loop is idle
        self.tls_reads: list[_Reg] = []  # direct mode: TLS plaintext waiting inside OpenSSL
        self._flush_handle: asyncio.Handle | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None
        self.poller = new_poller()
        # direct mode: wait with poller.poll_all, not poller.poll (set by _poll)
        self.poll_all: Callable[[float], list[tuple[int, int]]] | None = None
        loop.add_reader(self.poller.fileno(), self._on_ready)

    # -- state changes reported by dispatchers --------------------------------------------

    def touch(self, dispatcher: Any) -> None:
        """``dispatcher`` may have changed: ask its predicates again before the loop waits."""
        self.dirty[id(dispatcher)] = dispatcher
        if not self._in_batch and not self.direct and self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self.flush)

    def forget(self, fd: int) -> None:
        """``fd`` left the map (and may be closed next): stop watching it now."""
        reg = self.regs.get(fd)
        if reg is not None:
            self._unregister(reg)
        self._check_empty()

    def want(self, dispatcher: Any, want: int) -> None:
        """A TLS recv/send needs the other direction before it can make progress."""
        reg = self.regs.get(dispatcher._fileno)
        if reg is not None and reg.dispatcher is dispatcher:
            reg.want = want
            self.touch(dispatcher)

    # -- keeping registrations in step with the predicates ----------------------------------

    def flush(self) -> None:
        """Re-ask the predicates of every dispatcher that changed since the last flush."""
        handle, self._flush_handle = self._flush_handle, None
        if handle is not None:
            handle.cancel()
        try:
            dirty = self.dirty
            while dirty:
                self._sync(dirty.popitem()[1], touched=True)
        except BaseException as exc:
            self._fail(exc)
        self._check_empty()

    def sweep(self) -> None:
        """Re-ask the predicates of every dispatcher in the map.

        Its cost, which spaces the sweeps, is this thread's CPU time: time the thread spent
        preempted by others is not the sweep's, and must not put off the next one.
        """
        start = time.thread_time()
        regs, map = self.regs, self.map
        for reg in list(regs.values()):
            if map.get(reg.fd) is not reg.dispatcher:
                self._unregister(reg)
        self.dirty.clear()
        for fd, d in list(map.items()):
            known = regs.get(fd)
            if known is not None and known.just_reads and known.dispatcher is d and d._fileno == fd:
                # _sync() made short for the common case: only writable() can change the mask
                if d.writable() and not d.accepting:
                    self._watch(known, EPOLLIN | EPOLLOUT)
            else:
                self._sync(d)
        self.sweep_cost = time.thread_time() - start

    def _sync(self, d: Any, touched: bool = False) -> None:
        """Watch ``d``'s descriptor for what its predicates want now.

        ``touched``: a method was called on ``d``, so look again for methods assigned on it
        (not done by sweeps, for their cost; see Registration.classify).
        """
        fd: int | None = getattr(d, "_fileno", None)
        if fd is None or self.lookup(fd) is not d:
            return
        reg = self.regs.get(fd)
        if reg is None or reg.dispatcher is not d:
            if reg is not None:
                self._unregister(reg)
            reg = self.regs[fd] = _Reg(d, fd)
        elif touched:
            reg.classify()
        if reg.tls == _TLS_UNCONNECTED and d.connected:
            if d.socket.version() is None:
                reg.tls, reg.want = _TLS_HANDSHAKE, WANT_WRITE
            else:
                reg.tls = _TLS_READY
        if reg.tls == _TLS_HANDSHAKE:
            mask = EPOLLIN if reg.want == WANT_READ else EPOLLOUT
        else:
            mask = self._mask(reg, d)
        if mask != reg.mask:
            self._watch(reg, mask)

    @staticmethod
    def _mask(reg: _Reg, d: Any) -> int:
        mask = EPOLLIN if reg.const_read or d.readable() else 0
        if d.writable() and not d.accepting:  # asked even when accepting, as asyncore does
            mask |= EPOLLOUT
        if reg.want:
            mask |= EPOLLIN if reg.want == WANT_READ else EPOLLOUT
        if mask and reg.expt:
            mask |= EPOLLPRI
        return mask

    def _watch(self, reg: _Reg, mask: int) -> None:
        old = reg.mask
        if not reg.always:
            try:
                watch(self.poller, reg.fd, old, mask)
            except PermissionError:  # epoll cannot watch regular files; select says "ready"
                reg.always = True
        if reg.always:
            if mask:
                self.always[reg.fd] = reg
                if not self.direct:
                    self.loop.call_soon(self._on_ready)
            else:
                self.always.pop(reg.fd, None)
        self.watched += (mask != 0) - (old != 0)
        reg.update(mask)

    def _unregister(self, reg: _Reg) -> None:
        reg.live = False
        if reg.mask:
            self._watch(reg, 0)
        if self.regs.get(reg.fd) is reg:
            del self.regs[reg.fd]

    # -- events ----------------------------------------------------------------------------

    def _on_ready(self) -> None:
        """The event loop saw the poller readable: dispatch a batch of events."""
        if self.iteration == _HAD_BATCH or self.halted:
            return
        events = self.poller.poll(0, BATCH)
        self._dispatch(events)
        if self.iteration == _WANT_BATCH and not self._only_parked(events):
            self.iteration = _HAD_BATCH
            self.loop.stop()
        if self.sweep_idle and self._sweep_handle is not None:
            self._arm_sweep(busy=True)
        if self.always:
            self.loop.call_soon(self._on_ready)

    def _only_parked(self, events: list[tuple[int, int]]) -> bool:
        """Whether the batch just dispatched was only hang-ups nobody reads: to asyncore, whose
        select() would not have returned for them, that was no iteration yet."""
        return bool(events) and self.parked == len(events)

    def _dispatch(self, events: list[tuple[int, int]]) -> None:
        now = handling
        self.parked = 0
        if self.always:
            events += [(fd, EPOLLIN | EPOLLOUT) for fd in self.always]
        self._in_batch = True
        self.stop_batch = False
        regs, map = self.regs, self.map
        try:
            for fd, ev in events:
                try:
                    reg = regs[fd]
                    current: Any = map[fd]
                except KeyError:  # unregistered earlier in this batch, or left the map by hand
                    stale = regs.get(fd)
                    if stale is not None:
                        self._unregister(stale)
                    continue
                d: Any = reg.dispatcher
                if current is not d:
                    self._unregister(reg)
                    self.dirty[id(current)] = current
                    continue
                # The general case first, out of line: so the comparison is followed by a short
                # conditional jump, the only kind after which CPython 3.11 specializes it.
                if ev != EPOLLIN or not reg.just_reads:
                    self._deliver(reg, d, ev)
                    if self.stop_batch:
                        break
                    continue
                # the common case, the rules of _deliver() made short
                now.dispatcher = d
                try:
                    if d.connected and not d.accepting:
                        d.handle_read()  # what asyncore's handle_read_event would call
                    else:
                        d.handle_read_event()
                except _RERAISED as exc:
                    self._fail(exc)
                    break
                except BaseException:
                    self._handle_error(d)
                    if self.stop_batch:  # handle_error() raised
                        break
                try:
                    if reg.live:
                        queue = reg.queue  # writable(), evaluated here when it is a known one
                        if queue == _OUT_BUFFER:
                            writable = not (d.connected and not d.out_buffer)
                        elif queue == _PRODUCER_FIFO:
                            writable = not (d.connected and not d.producer_fifo)
                        else:
                            writable = d.writable()
                        if writable and not d.accepting:
                            self._watch(reg, EPOLLIN | EPOLLOUT)
                except BaseException as exc:  # a predicate raised: it leaves loop()
                    self._fail(exc)
                    break
        finally:
            now.dispatcher = None
        self._in_batch = False
        self.events += len(events)
        if self.dirty:
            self.flush()
        else:
            self._check_empty()

    def _deliver(self, reg: _Reg, d: Any, ev: int) -> None:
        """Deliver events ``ev`` of ``reg``'s descriptor to ``d``, then re-ask its predicates."""
        if ev & POLLNVAL:  # poll()'s word for closed while registered; epoll says nothing
            self.poller.drop(reg.fd)
            self.parked += 1
            return
        tls = reg.tls
        if tls and (tls == _TLS_HANDSHAKE or reg.want):
            self._tls_event(reg)
            return
        fd, mask, lookup = reg.fd, reg.mask, self.lookup
        # d's own method calls need no touch() while it handles events (and until the
        # next dispatcher's turn: the mask is recomputed below anyway)
        handling.dispatcher = d
        try:
            if ev & _READ_READY and mask & EPOLLIN and (reg.const_read or d.readable()):
                self._handle(d, d.handle_read_event)
                if tls:
                    self._tls_pending(reg)
            if (
                ev & _WRITE_READY
                and mask & EPOLLOUT
                and lookup(fd) is d
                and d.writable()
                and not d.accepting
            ):
                self._handle(d, d.handle_write_event)
            if ev & EPOLLPRI and lookup(fd) is d:
                self._handle(d, d.handle_expt_event)
            # Still registered (a dispatcher that left the map through del_channel is
            # not; one deleted from the map by hand is caught by its next event).
            if reg.live:
                if tls:
                    self.dirty[id(d)] = d
                elif ev & EPOLLHUP and not mask & EPOLLIN and not ev & _WRITE_READY:
                    # A hang-up nobody asked to read about: select() would not report
                    # it, and epoll would on every wait. Stop watching until the next
                    # sweep or state change asks the predicates again.
                    self._watch(reg, 0)
                    self.parked += 1
                else:
                    new = self._mask(reg, d)
                    if new != mask:
                        self._watch(reg, new)
        except BaseException as exc:  # a predicate raised: it leaves loop(), as in asyncore
            self._fail(exc)

    def _handle(self, d: Any, handler: Any) -> None:
        """Call ``handler``, one of ``d``'s: what it raises goes to ``d.handle_error()``, except
        ExitNow, KeyboardInterrupt and SystemExit, which end the run."""
        try:
            handler()
        except _RERAISED as exc:
            self._fail(exc)
        except BaseException:
            self._handle_error(d)

    def _handle_error(self, d: Any) -> None:
        try:
            d.handle_error()
        except BaseException as exc:
            self._fail(exc)

    # -- TLS: the handshake, want-read/want-write, and plaintext buffered inside OpenSSL ----

    def _tls_event(self, reg: _Reg) -> None:
        d = reg.dispatcher
        handling.dispatcher = d
        try:
            if reg.tls == _TLS_HANDSHAKE:
                self._handshake_step(reg)
            else:
                reg.want = 0
                readable, writable = d.readable(), d.writable()
                if readable:
                    d.handle_read_event()
                if writable and self.lookup(reg.fd) is d:
                    d.handle_write_event()
                self._tls_pending(reg)
        except _RERAISED as exc:
            self._fail(exc)
        except BaseException:
            self._handle_error(d)
        handling.dispatcher = None
        self.touch(d)

    def _handshake_step(self, reg: _Reg) -> None:
        ssl = sys.modules["ssl"]
        d = reg.dispatcher
        try:
            d.socket.do_handshake()
        except ssl.SSLWantReadError:
            reg.want = WANT_READ
        except ssl.SSLWantWriteError:
            reg.want = WANT_WRITE
        except OSError as exc:
            reg.want = 0
            if exc.errno in DISCONNECTED:
                d.handle_close()
                return
            raise
        else:
            reg.tls, reg.want = _TLS_READY, 0

    def _tls_pending(self, reg: _Reg) -> None:
        d = reg.dispatcher
        if self.lookup(reg.fd) is d and d.socket.pending():
            # OpenSSL holds decrypted bytes the poller cannot see: deliver another read now
            if self.direct:
                self.tls_reads.append(reg)
            else:
                self.loop.call_soon(self._pending_read, reg)

    def _pending_read(self, reg: _Reg) -> None:
        d = reg.dispatcher
        if self.lookup(reg.fd) is not d or not d.readable():
            return
        handling.dispatcher = d
        self._handle(d, d.handle_read_event)
        handling.dispatcher = None
        self._tls_pending(reg)
        self.touch(d)

    # -- ending, failing, sweeping -----------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        self.stop_batch = True
        if self.waiter is not None:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise exc
            if not self.waiter.done():
                self.waiter.set_exception(exc)
            self.halted = True
            return
        if self.failure is None:
            self.failure = exc
        if not self.direct and (self.running or self.iteration != _FREE):
            self.loop.stop()

    def _check_empty(self) -> None:
        if self.map:
            return
        if self.waiter is not None:
            if not self.waiter.done():
                self.waiter.set_result(None)
        elif self.running and not self.direct:
            self.loop.stop()

    def raise_failure(self) -> None:
        """Raise what a handler or predicate let out of the last run, if anything."""
        exc, self.failure = self.failure, None
        if exc is not None:
            raise exc

    def arm_sweep(self, timeout: float) -> None:
        """Start the periodic sweep; ``timeout`` is its interval while idle."""
        self.timeout = timeout
        self.events = 0
        self._arm_sweep(busy=False)

    def _arm_sweep(self, busy: bool) -> None:
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        idle = max(self.timeout, SWEEP_MIN_INTERVAL)
        interval = min(idle, max(SWEEP_MIN_INTERVAL, SWEEP_BUDGET * self.sweep_cost))
        self.sweep_idle = not busy
        self._sweep_handle = self.loop.call_later(interval if busy else idle, self._timed_sweep)

    def _timed_sweep(self) -> None:
        self._sweep_handle = None
        busy, self.events = self.events > 0, 0
        try:
            self.sweep()
        except BaseException as exc:
            self._fail(exc)
            return
        self._check_empty()
        self._arm_sweep(busy)

    def stop_sweeping(self) -> None:
        """Cancel the periodic sweep."""
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        self.sweep_idle = False

    # -- one iteration, or until empty --------------------------------------------------------

    def run_once(self, timeout: float) -> None:
        """One asyncore iteration: wait up to ``timeout`` for readiness, dispatch one batch."""
        self.timeout = timeout
        now = time.monotonic()
        if now >= self.next_sweep:
            self._sweep_now(now, timeout)
            # asyncore asks every predicate in every iteration, and so does this for a map of
            # ordinary size; a larger one is swept when that costs at most 1/SWEEP_BUDGET of
            # the time
            if len(self.map) > COUNT_SWEEP_EVERY:
                self.next_sweep = now + SWEEP_BUDGET * self.sweep_cost
            else:
                self.next_sweep = now
        self.flush()
        self.raise_failure()
        if not self.watched and not self.tls_reads:
            time.sleep(timeout)
            return
        if self.shares_loop():
            self.iteration = _WANT_BATCH
            timer = self.loop.call_later(timeout, self.loop.stop)
            try:
                self.loop.run_forever()
            finally:
                timer.cancel()
                self.iteration = _FREE
        else:
            self.direct = True
            deadline = now + timeout
            try:
                while self._only_parked(self._poll(timeout)) and self.failure is None:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
            finally:
                self.direct = False
        self.raise_failure()

    def run(self, timeout: float) -> None:
        """Run until the map is empty (asyncore's ``loop()`` without a count)."""
        self.sweep()
        self.raise_failure()
        if not self.map:
            return
        self.running = True
        try:
            if self.shares_loop():
                self.arm_sweep(timeout)
                self.loop.run_forever()
            else:
                self._run_direct(timeout)
        finally:
            self.running = False
            self.stop_sweeping()
        self.raise_failure()

    def shares_loop(self) -> bool:
        """Whether another map's driver is on this driver's loop.

        Then the blocking API runs the event loop, which serves every map on it; otherwise
        nothing but this map uses the loop and the driver waits on its poller directly.
        """
        return any(d is not self and d.loop is self.loop for d in DRIVERS.values())

    # -- direct mode: the blocking API waits on the poller itself, no event loop in between --

    def _run_direct(self, timeout: float) -> None:
        self.direct = True
        self.events = 0
        now = time.monotonic()
        self.next_sweep = now + max(timeout, SWEEP_MIN_INTERVAL)  # run() has just swept
        idle = True
        try:
            while self.map and self.failure is None:
                now = time.monotonic()
                if now >= self.next_sweep:
                    idle = self._sweep_now(now, timeout)
                    continue
                if self.dirty:
                    self.flush()
                self._poll(self.next_sweep - now)
                if idle and self.events:  # the first events after a quiet spell
                    idle = False
                    pause = max(SWEEP_MIN_INTERVAL, SWEEP_BUDGET * self.sweep_cost)
                    self.next_sweep = min(self.next_sweep, time.monotonic() + pause)
        finally:
            self.direct = False

    def _sweep_now(self, now: float, timeout: float) -> bool:
        """Sweep the map and plan the next sweep; returns whether the map was idle."""
        idle, self.events = self.events == 0, 0
        try:
            self.sweep()
        except BaseException as exc:
            self._fail(exc)
        pause = max(SWEEP_MIN_INTERVAL, SWEEP_BUDGET * self.sweep_cost)
        self.next_sweep = now + (max(timeout, pause) if idle else pause)
        return idle

    def _poll(self, wait: float) -> list[tuple[int, int]]:
        """Wait on the poller up to ``wait`` seconds, dispatch what it reports; return that."""
        if self.always or self.tls_reads:
            wait = 0.0
        poll_all = self.poll_all
        events = self.poller.poll(wait, BATCH) if poll_all is None else poll_all(wait * 1000)
        # Wait with poll() next time if most watched descriptors were ready this time: then it
        # costs the kernel less than epoll (see the poller module).
        watched = self.watched
        if len(events) * 2 >= watched and watched <= POLL_ALL_MAX:
            self.poll_all = self.poller.poll_all
        else:
            self.poll_all = None
        self._dispatch(events)
        if self.tls_reads:
            reads, self.tls_reads = self.tls_reads, []
            for reg in reads:
                self._pending_read(reg)
        return events

    def close(self) -> None:
        """Drop every registration, close the poller and forget this driver."""
        self.stop_sweeping()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.dirty.clear()
        self.regs.clear()
        self.always.clear()
        self.tls_reads.clear()
        if not self.loop.is_closed():
            self.loop.remove_reader(self.poller.fileno())
        self.poller.close()
        if DRIVERS.get(id(self.map)) is self:
            del DRIVERS[id(self.map)]
