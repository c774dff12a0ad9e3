"""Shared fixtures: every integration test runs once per loop kind, bounded in time, and fails
if the loop's exception handler was called (an error something swallowed)."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import ssl
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from portside.core.loop import new_event_loop

T = TypeVar("T")

LOOP_KINDS = ["asyncio", "uvloop"] if importlib.util.find_spec("uvloop") else ["asyncio"]

# A run started in the background of a script (``cmd &``) has SIGINT ignored, and children
# would inherit that: the servers the tests stop with SIGINT would never stop. A handler is
# not inherited (exec resets it), so each child starts with Python's own.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

Run = Callable[..., Any]


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    """The loop this test runs on: ``asyncio``, then ``uvloop`` (when installed)."""
    if request.param != "asyncio" and request.node.get_closest_marker("asyncio_only"):
        pytest.skip("asyncio only")
    return str(request.param)


@pytest.fixture
def run(loop_kind: str) -> Iterator[Run]:
    """``run(coro, timeout=10)`` runs ``coro`` on a fresh loop of ``loop_kind``; returns its result.

    The loop is closed afterwards; any call of its exception handler fails the test.
    """
    loops: list[asyncio.AbstractEventLoop] = []
    errors: list[dict[str, Any]] = []

    def runner(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        loop = new_event_loop(loop_kind)
        loops.append(loop)
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, timeout))
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    yield runner
    assert not errors, f"the loop's exception handler was called: {errors}"


class TLSFiles:
    """A throwaway CA and a server certificate for 127.0.0.1, ::1 and localhost, as PEM files."""

    def __init__(self, directory: Path) -> None:
        trustme = pytest.importorskip("trustme")
        self.ca = trustme.CA()
        server = self.ca.issue_cert("127.0.0.1", "::1", "localhost")
        self.cert = directory / "server.crt"
        self.key = directory / "server.key"
        self.ca_cert = directory / "ca.pem"
        server.private_key_pem.write_to_path(str(self.key))
        server.cert_chain_pems[0].write_to_path(str(self.cert))
        for extra in server.cert_chain_pems[1:]:
            with self.cert.open("ab") as chain:
                chain.write(extra.bytes())
        self.ca.cert_pem.write_to_path(str(self.ca_cert))

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the throwaway CA."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def endpoint(self, port: int = 0, interface: str = "127.0.0.1") -> str:
        """An ``ssl:`` endpoint string serving this certificate."""
        return f"ssl:{port}:interface={interface}:certKey={self.cert}:privateKey={self.key}"


@pytest.fixture
def tls_files(tmp_path: Path) -> TLSFiles:
    """PEM files for a TLS server on loopback, and a client context that trusts them."""
    return TLSFiles(tmp_path)
