"""The reactor's core: delayed calls, threads, system event triggers, run and stop."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from portside.internet import error
from portside.internet.reactor import DelayedCall, Reactor

from .conftest import MakeReactor, run_bounded

# -- DelayedCall -------------------------------------------------------------------------------


def test_call_later_passes_arguments_and_runs_in_time_order(run: Any) -> None:
    async def main() -> list[Any]:
        reactor = Reactor()
        calls: list[Any] = []
        done = asyncio.get_running_loop().create_future()
        reactor.callLater(0.03, done.set_result, None)
        reactor.callLater(0.02, calls.append, "second")
        call = reactor.callLater(0.01, lambda *a, **kw: calls.append((a, kw)), 1, 2, key="v")
        assert isinstance(call, DelayedCall) and call.active()
        assert call.getTime() == pytest.approx(reactor.seconds() + 0.01, abs=0.01)
        assert call in reactor.getDelayedCalls()
        await done
        assert (call.called, call.cancelled, call.active()) == (1, 0, False)
        assert reactor.getDelayedCalls() == []
        return calls

    assert run(main()) == [((1, 2), {"key": "v"}), "second"]


def test_cancel_reset_and_delay(run: Any) -> None:
    async def main() -> list[str]:
        reactor = Reactor()
        calls: list[str] = []
        done = asyncio.get_running_loop().create_future()
        cancelled = reactor.callLater(0.01, calls.append, "cancelled")
        cancelled.cancel()
        assert (cancelled.active(), cancelled.cancelled, cancelled.called) == (False, 1, 0)
        later = reactor.callLater(0.01, calls.append, "delayed")
        before = later.getTime()
        later.delay(0.03)
        assert later.getTime() == pytest.approx(before + 0.03)
        sooner = reactor.callLater(60, calls.append, "reset")
        sooner.reset(0.02)
        assert sooner.getTime() == pytest.approx(reactor.seconds() + 0.02, abs=0.01)
        reactor.callLater(0.06, done.set_result, None)
        await done
        for method, args in (("cancel", ()), ("reset", (1,)), ("delay", (1,))):
            with pytest.raises(error.AlreadyCancelled):
                getattr(cancelled, method)(*args)
            with pytest.raises(error.AlreadyCalled):
                getattr(later, method)(*args)
        return calls

    assert run(main()) == ["reset", "delayed"]


def test_an_error_in_a_delayed_call_is_logged_and_the_loop_goes_on(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        reactor = Reactor()
        done = asyncio.get_running_loop().create_future()
        failing = reactor.callLater(0, lambda: 1 / 0)
        reactor.callLater(0.01, done.set_result, None)
        await done
        assert failing.called

    with caplog.at_level(logging.ERROR, "portside.internet"):
        run(main())
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_call_later_checks_its_arguments() -> None:
    reactor = Reactor()
    with pytest.raises(ValueError):
        reactor.callLater(-1, print)
    with pytest.raises(TypeError):
        reactor.callLater(1, "not callable")


def test_calls_made_before_run_wait_for_it(make_reactor: MakeReactor) -> None:
    reactor = make_reactor()
    calls: list[str] = []
    reactor.callLater(0, calls.append, "delayed")
    never = reactor.callLater(0, calls.append, "cancelled before run")
    never.cancel()
    moved = reactor.callLater(60, calls.append, "reset before run")
    moved.reset(0.01)
    reactor.callLater(0.02, reactor.stop)
    assert calls == []
    run_bounded(reactor)
    assert calls == ["delayed", "reset before run"]


# -- triggers, run and stop ------------------------------------------------------------------


def test_startup_and_shutdown_phases_run_in_order(make_reactor: MakeReactor) -> None:
    reactor = make_reactor()
    calls: list[Any] = []

    def note(name: str) -> None:
        calls.append((name, reactor.running))

    for event in ("startup", "shutdown"):
        for phase in ("after", "during", "before"):
            reactor.addSystemEventTrigger(phase, event, note, f"{phase} {event}")
    reactor.callWhenRunning(note, "when running")
    removed = reactor.addSystemEventTrigger("before", "startup", note, "removed")
    reactor.removeSystemEventTrigger(removed)
    with pytest.raises(ValueError):
        reactor.removeSystemEventTrigger(removed)
    with pytest.raises(KeyError):
        reactor.addSystemEventTrigger("sometime", "startup", note)

    def started() -> None:
        note("started")
        assert reactor.callWhenRunning(note, "at once") is None
        reactor.stop()
        with pytest.raises(error.ReactorNotRunning):
            reactor.stop()

    reactor.callWhenRunning(started)
    run_bounded(reactor)
    assert calls == [
        ("before startup", False),
        ("during startup", True),
        ("after startup", True),
        ("when running", True),
        ("started", True),
        ("at once", True),
        ("before shutdown", True),
        ("during shutdown", False),
        ("after shutdown", False),
    ]


def test_a_trigger_returning_an_awaitable_holds_its_phase(make_reactor: MakeReactor) -> None:
    reactor = make_reactor()
    calls: list[str] = []

    async def slow_goodbye() -> None:
        await asyncio.sleep(0.05)
        calls.append("goodbye said")

    reactor.addSystemEventTrigger("before", "shutdown", slow_goodbye)
    reactor.addSystemEventTrigger("during", "shutdown", calls.append, "during")
    reactor.callWhenRunning(reactor.stop)
    run_bounded(reactor)
    assert calls == ["goodbye said", "during"]


def test_run_once_only_and_stop_only_while_running(make_reactor: MakeReactor) -> None:
    reactor = make_reactor()
    with pytest.raises(error.ReactorNotRunning):
        reactor.stop()
    inner: list[BaseException] = []

    def nested() -> None:
        try:
            reactor.run()
        except error.ReactorAlreadyRunning as exc:
            inner.append(exc)
        reactor.stop()

    reactor.callWhenRunning(nested)
    run_bounded(reactor)
    assert len(inner) == 1
    assert not reactor.running
    with pytest.raises(error.ReactorNotRestartable):
        reactor.run()
    with pytest.raises(error.ReactorNotRunning):
        reactor.stop()


def test_run_refuses_inside_a_running_loop(run: Any) -> None:
    async def main() -> None:
        with pytest.raises(error.ReactorAlreadyRunning):
            Reactor().run()

    run(main())


def test_inside_a_foreign_loop_call_when_running_calls_at_once(run: Any) -> None:
    async def main() -> list[str]:
        reactor = Reactor()
        calls: list[str] = []
        assert reactor.callWhenRunning(calls.append, "now") is None
        assert not reactor.running  # the reactor itself was not run
        with pytest.raises(error.ReactorNotRunning):
            reactor.stop()
        return calls

    assert run(main()) == ["now"]


# -- threads ---------------------------------------------------------------------------------


def test_call_in_thread_and_back_with_call_from_thread(make_reactor: MakeReactor) -> None:
    reactor = make_reactor()
    main_thread = threading.get_ident()
    seen: dict[str, int] = {}

    def in_thread(value: int) -> None:
        seen["worker"] = threading.get_ident()
        reactor.callFromThread(back_home, value * 2)

    def back_home(value: int) -> None:
        seen["home"] = threading.get_ident()
        seen["value"] = value
        reactor.stop()

    reactor.callWhenRunning(reactor.callInThread, in_thread, 21)
    run_bounded(reactor)
    assert seen["worker"] != main_thread
    assert seen["home"] == main_thread
    assert seen["value"] == 42


def test_call_from_thread_before_run_waits_for_the_loop(make_reactor: MakeReactor) -> None:
    reactor = make_reactor()
    calls: list[str] = []
    thread = threading.Thread(target=reactor.callFromThread, args=(calls.append, "from thread"))
    thread.start()
    thread.join()
    reactor.callWhenRunning(calls.append, "startup")
    reactor.callLater(0.01, reactor.stop)
    run_bounded(reactor)
    assert calls == ["startup", "from thread"]


def test_errors_in_thread_calls_are_logged(
    make_reactor: MakeReactor, caplog: pytest.LogCaptureFixture
) -> None:
    reactor = make_reactor()

    def fail() -> None:
        reactor.callFromThread(reactor.stop)
        raise RuntimeError("worker failed")

    reactor.callWhenRunning(reactor.callInThread, fail)
    with caplog.at_level(logging.ERROR, "portside.internet"):
        run_bounded(reactor)
    assert any("worker failed" in str(r.exc_info and r.exc_info[1]) for r in caplog.records)


def test_the_module_stands_for_the_installed_reactor() -> None:
    from portside.internet import reactor as module
    from portside.internet.reactor import install, installed

    previous = installed()
    mine = Reactor()
    install(mine)
    try:
        assert module.installed() is mine
        assert module.running is False
        assert module.seconds() == pytest.approx(mine.seconds(), abs=1)
        assert "callLater" in dir(module)
        call = module.callLater(60, print)
        assert mine.getDelayedCalls() == [call]
        call.cancel()
    finally:
        install(previous)


def test_threads_inside_a_foreign_loop(run: Any) -> None:
    async def main() -> tuple[int, int]:
        reactor = Reactor()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[int, int]] = loop.create_future()

        def work() -> None:
            worker = threading.get_ident()
            reactor.callFromThread(lambda: answer.set_result((worker, threading.get_ident())))

        reactor.callInThread(work)
        return await answer

    worker, home = run(main())
    assert worker != home == threading.get_ident()
