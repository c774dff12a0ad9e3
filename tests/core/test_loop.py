"""Loop choice: auto, uvloop, asyncio; uvloop is optional and never imported up front."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import textwrap

import pytest

from portside.core.loop import LOOP_KINDS, new_event_loop, run

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


def python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_loop_kinds() -> None:
    assert LOOP_KINDS == ("auto", "uvloop", "asyncio")
    loop = new_event_loop("asyncio")
    try:
        assert isinstance(loop, asyncio.BaseEventLoop)
    finally:
        loop.close()
    with pytest.raises(ValueError, match="unknown loop 'trio'"):
        new_event_loop("trio")


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop not installed")
def test_auto_and_uvloop_pick_uvloop_when_installed() -> None:
    import uvloop

    for kind in ("auto", "uvloop"):
        loop = new_event_loop(kind)
        try:
            assert isinstance(loop, uvloop.Loop)
        finally:
            loop.close()


def test_run_runs_a_coroutine_on_the_chosen_loop() -> None:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run(which(), loop="asyncio").startswith("asyncio")


def test_importing_portside_does_not_import_uvloop() -> None:
    out = python(
        """
        import sys
        import portside, portside.core, portside.internet.protocol, portside.testing
        print('uvloop' in sys.modules)
        """
    )
    assert out == "False"


def test_everything_works_without_uvloop() -> None:
    out = python(
        """
        import asyncio, sys
        sys.modules["uvloop"] = None  # as if it were not installed
        from portside.core import Connection, Handlers, Server
        from portside.core.loop import new_event_loop, run

        class Echo(Connection):
            def _on_data(self, data):
                self.write(data)

        async def main():
            async with Server(Handlers(stream=Echo), "tcp:0:interface=127.0.0.1") as server:
                reader, writer = await asyncio.open_connection(*server.addresses[0])
                writer.write(b"hi")
                reply = await reader.readexactly(2)
                writer.close()
                return reply, type(asyncio.get_running_loop()).__module__

        print(run(main(), loop="auto"))
        try:
            new_event_loop("uvloop")
        except RuntimeError as exc:
            print("refused:", exc)
        """
    )
    first, second = out.splitlines()
    assert first == "(b'hi', 'asyncio.unix_events')"
    assert second.startswith("refused:") and "not installed" in second
