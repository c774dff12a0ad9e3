"""Connection and ConnectionOwner driven over in-memory transports (no sockets, no timers)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from portside.config import Limits
from portside.core import ConnectionOwner
from portside.core.connection import SWEEPS_PER_TIMEOUT
from portside.testing.memory import MemoryTransport, connect

from .support import Echo

# An idle timeout long enough that the real sweep timer never fires during a test: the tests
# run the sweep themselves.
MANUAL = Limits(idle_timeout=3600)


class Recorder(Echo):
    """An echo that records the hook calls it gets."""

    def __init__(self, owner: ConnectionOwner, peer: Any = None) -> None:
        super().__init__(owner, peer)
        self.calls: list[Any] = []

    def _on_start(self) -> None:
        self.calls.append("start")

    def _on_eof(self) -> bool | None:
        self.calls.append("eof")
        return None

    def _on_lost(self, exc: Exception | None) -> None:
        self.calls.append(("lost", exc))

    def _on_pause_writing(self) -> None:
        self.calls.append("pause")

    def _on_resume_writing(self) -> None:
        self.calls.append("resume")


def start(owner: ConnectionOwner | None = None) -> tuple[Recorder, MemoryTransport]:
    connection = Recorder(owner or ConnectionOwner(MANUAL))
    return connection, connect(connection)


def test_bytes_are_counted_and_folded_into_the_totals(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(MANUAL)
        connection, transport = start(owner)
        assert connection.peer == ("127.0.0.1", 54321)
        transport.feed(b"hello")
        transport.feed(b"!")
        assert transport.take() == b"hello!"
        assert (connection.bytes_received, connection.bytes_sent) == (6, 6)
        assert owner.counters.bytes_received == 0, "live connections keep their own counts"
        connection.close()
        await transport.wait_lost()
        assert (owner.counters.bytes_received, owner.counters.bytes_sent) == (6, 6)
        assert owner.counters.connections_total == 1
        assert not owner.live
        assert connection.calls == ["start", ("lost", None)]

    run(main())


def test_write_after_close_is_dropped(run: Any) -> None:
    async def main() -> None:
        connection, transport = start()
        connection.write(b"before")
        connection.close()
        assert connection.closing
        connection.write(b"after")
        assert transport.take() == b"before"
        assert connection.bytes_sent == 6
        await transport.wait_lost()
        connection.write(b"later")
        assert transport.take() == b""

    run(main())


def test_close_waits_for_the_buffer_abort_does_not(run: Any) -> None:
    async def main() -> None:
        closing, t1 = start()
        t1.stall()
        closing.write(b"pending")
        closing.close()
        await asyncio.sleep(0)
        assert not t1.lost
        assert t1.drain() == b"pending"
        await t1.wait_lost()

        aborting, t2 = start()
        t2.stall()
        aborting.write(b"pending")
        aborting.abort()
        await t2.wait_lost()
        assert t2.aborted and t2.drain() == b""

    run(main())


def test_error_in_on_data_aborts_and_counts(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Echo):
        def _on_data(self, data: bytes) -> None:
            raise KeyError(data)

    async def main() -> None:
        owner = ConnectionOwner(MANUAL)
        transport = connect(Broken(owner))
        transport.feed(b"x")
        transport.feed(b"y")  # ignored: the connection is already aborted
        assert transport.aborted
        assert await transport.wait_lost() is None
        assert owner.counters.errors == 1
        assert owner.counters.connection_errors == 0
        assert not owner.live

    with caplog.at_level(logging.ERROR, "portside"):
        run(main())
    assert len(caplog.records) == 1
    assert "handling received data" in caplog.records[0].getMessage()


def test_peer_reset_counts_a_connection_error(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(MANUAL)
        connection, transport = start(owner)
        transport.reset()
        exc = await transport.wait_lost()
        assert isinstance(exc, ConnectionResetError)
        assert connection.calls[-1] == ("lost", exc)
        assert owner.counters.connection_errors == 1
        assert owner.counters.errors == 0

    run(main())


def test_eof_closes_unless_the_connection_keeps_it_open(run: Any) -> None:
    class HalfOpen(Recorder):
        def _on_eof(self) -> bool | None:
            super()._on_eof()
            self.write(b"bye")
            return True

    async def main() -> None:
        connection, transport = start()
        transport.feed_eof()
        await transport.wait_lost()
        assert connection.calls == ["start", "eof", ("lost", None)]

        half = HalfOpen(ConnectionOwner(MANUAL))
        transport = connect(half)
        transport.feed_eof()
        await asyncio.sleep(0)
        assert not transport.lost
        assert transport.take() == b"bye"
        half.close()
        await transport.wait_lost()

    run(main())


def test_write_pauses_are_counted_and_hooks_called(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(Limits(write_buffer_high=100, write_buffer_low=10))
        connection, transport = start(owner)
        assert transport.get_write_buffer_limits() == (10, 100)
        transport.stall()
        connection.write(b"a" * 100)
        assert not connection.writing_paused
        connection.write(b"a")
        assert connection.writing_paused
        assert connection.write_buffer_size() == 101
        transport.drain(50)
        assert connection.writing_paused
        transport.drain(41)
        assert not connection.writing_paused
        assert connection.calls == ["start", "pause", "resume"]
        connection.write(b"b" * 200)
        assert owner.counters.write_pauses == 2
        transport.unstall()
        assert transport.take().endswith(b"b" * 200)

    run(main())


def test_close_or_abort_from_resume_writing_is_deferred(run: Any) -> None:
    class Finisher(Recorder):
        def _on_resume_writing(self) -> None:
            super()._on_resume_writing()
            self.write(b"last")
            self.close()

    async def main() -> None:
        owner = ConnectionOwner(Limits(write_buffer_high=4, write_buffer_low=0))
        connection = Finisher(owner)
        transport = connect(connection)
        transport.stall()
        connection.write(b"12345")
        transport.unstall()
        assert connection.closing and not transport.is_closing()  # asked, not yet done
        await transport.wait_lost()
        assert transport.take() == b"12345last"

    run(main())


def test_error_in_a_flow_control_hook_aborts(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    class BadProducer(Echo):
        def _on_pause_writing(self) -> None:
            raise RuntimeError("producer broke")

    async def main() -> None:
        owner = ConnectionOwner(Limits(write_buffer_high=1, write_buffer_low=0))
        transport = connect(BadProducer(owner))
        transport.stall()
        transport.feed(b"abc")
        await transport.wait_lost()
        assert owner.counters.errors == 1

    with caplog.at_level(logging.ERROR, "portside"):
        run(main())


def test_idle_sweep_closes_after_sweeps_per_timeout_quiet_passes(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(MANUAL)
        quiet, t_quiet = start(owner)
        busy, t_busy = start(owner)
        try:
            for _ in range(SWEEPS_PER_TIMEOUT):  # the first pass only marks them quiet
                owner.sweep_idle()
                t_busy.feed(b".")
            assert not t_quiet.is_closing()
            owner.sweep_idle()
            assert t_quiet.is_closing() and not t_quiet.aborted
            assert not t_busy.is_closing()
            assert owner.counters.timeouts == 1
        finally:
            owner.stop_sweeping()
        await t_quiet.wait_lost()
        assert quiet.calls[-1] == ("lost", None)
        busy.close()

    run(main())


def test_writing_counts_as_activity(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(MANUAL)
        connection, transport = start(owner)
        for _ in range(SWEEPS_PER_TIMEOUT * 2):
            owner.sweep_idle()
            connection.write(b"tick")
        assert not transport.is_closing()
        owner.stop_sweeping()
        connection.close()

    run(main())


def test_idle_sweep_aborts_a_connection_whose_peer_stopped_reading(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(MANUAL)
        connection, transport = start(owner)
        transport.stall()
        connection.write(b"unread")
        for _ in range(SWEEPS_PER_TIMEOUT + 1):
            owner.sweep_idle()
        assert transport.aborted
        owner.stop_sweeping()

    run(main())


def test_error_in_idle_timed_out_is_contained(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Rude(Echo):
        def idle_timed_out(self) -> None:
            raise RuntimeError("no goodbye")

    async def main() -> None:
        owner = ConnectionOwner(MANUAL)
        transport = connect(Rude(owner))
        for _ in range(SWEEPS_PER_TIMEOUT + 1):
            owner.sweep_idle()
        assert transport.aborted
        assert (owner.counters.errors, owner.counters.timeouts) == (1, 1)
        owner.stop_sweeping()

    with caplog.at_level(logging.ERROR, "portside"):
        run(main())


def test_sweep_timer_runs_only_while_connections_are_open(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(Limits(idle_timeout=0.04))
        assert owner._sweep is None
        connection, transport = start(owner)
        assert owner._sweep is not None
        connection.close()
        await transport.wait_lost()
        await asyncio.sleep(0.04)  # one more sweep finds nothing open and stops
        assert owner._sweep is None
        _, again = start(owner)
        assert owner._sweep is not None
        assert await again.wait_lost() is None  # timed out by the real timer
        assert owner.counters.timeouts == 1
        await asyncio.sleep(0.04)
        assert owner._sweep is None

    run(main())


def test_no_idle_timeout_means_no_sweep(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(Limits(idle_timeout=None))
        connection, _ = start(owner)
        assert owner._sweep is None
        connection.close()

    run(main())


def test_capacity_callbacks_fire_only_when_the_count_drops_below_the_cap(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(Limits(max_connections=2, idle_timeout=None))
        woken: list[int] = []
        owner.on_capacity(lambda: woken.append(len(owner.live) + len(owner.pending)))
        first, t1 = start(owner)
        assert not owner.at_capacity
        pending = Recorder(owner)
        owner.admitting(pending)
        assert owner.at_capacity
        t2 = connect(pending)  # pending -> live: still two, no wake-up
        assert owner.at_capacity and not owner.pending
        first.close()
        await t1.wait_lost()
        assert woken == [1]
        pending.close()
        await t2.wait_lost()
        assert woken == [1], "below the cap already: nobody to wake"

        owner.admitting(third := Recorder(owner))
        owner.admitting(Recorder(owner))
        owner.admission_failed(third)
        assert woken == [1, 1]
        owner.admission_failed(third)  # twice is harmless
        assert woken == [1, 1]

    run(main())


def test_no_cap_never_calls_capacity_callbacks(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(Limits(max_connections=None, idle_timeout=None))
        owner.on_capacity(lambda: pytest.fail("called without a cap"))
        connection, transport = start(owner)
        assert not owner.at_capacity
        connection.close()
        await transport.wait_lost()

    run(main())


def test_remove_on_capacity() -> None:
    owner = ConnectionOwner()

    def callback() -> None:
        pass

    owner.on_capacity(callback)
    owner.remove_on_capacity(callback)
    owner.remove_on_capacity(callback)
    assert owner._capacity_waiters == []


def test_wait_empty(run: Any) -> None:
    async def main() -> None:
        owner = ConnectionOwner(MANUAL)
        await owner.wait_empty()
        connection, _ = start(owner)
        waiter = asyncio.ensure_future(owner.wait_empty())
        await asyncio.sleep(0)
        assert not waiter.done()
        connection.close()
        await asyncio.wait_for(waiter, 1)
        _, again = start(owner)  # the event is re-armed by the next connection
        waiter = asyncio.ensure_future(owner.wait_empty())
        await asyncio.sleep(0)
        assert not waiter.done()
        again.reset()
        await asyncio.wait_for(waiter, 1)
        owner.stop_sweeping()

    run(main())


def test_begin_shutdown_closes_by_default(run: Any) -> None:
    async def main() -> None:
        connection, transport = start()
        connection.begin_shutdown()
        await transport.wait_lost()
        connection.owner.stop_sweeping()

    run(main())
