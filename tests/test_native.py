"""The native API: ``portside.serve`` and ``portside.Server`` with asyncio protocols, buffered
protocols, Twisted protocols and ``async def handler(reader, writer)``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import portside
from portside.internet import protocol as twisted
from portside.testing import connect


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if data == b"boom":
            raise ValueError("protocol bug")
        self.transport.write(data)  # type: ignore[attr-defined]


class BufferedEcho(asyncio.BufferedProtocol):
    """Reads into a bytearray that it resizes in buffer_updated, as asyncio allows."""

    def __init__(self) -> None:
        self.buffer = bytearray(256)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = bytes(self.buffer[:nbytes])
        del self.buffer[:]  # resizing: fails if anyone still holds a view of the buffer
        self.buffer.extend(b"\0" * 256)
        self.transport.write(data)  # type: ignore[attr-defined]


class TwistedEcho(twisted.Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        if data == b"boom":
            raise ValueError("handler bug")
        writer.write(data)
        await writer.drain()


APPS = {
    "asyncio.Protocol": EchoProtocol,
    "asyncio.BufferedProtocol": BufferedEcho,
    "twisted Factory": twisted.Factory.forProtocol(TwistedEcho),
    "async handler": echo_handler,
}


async def roundtrip(address: Any, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(address[0], address[1])
    writer.write(payload)
    reply = await reader.readexactly(len(payload))
    writer.close()
    return reply


@pytest.mark.parametrize("app", APPS.values(), ids=list(APPS))
def test_server_serves_every_kind_of_app(run: Any, app: Any) -> None:
    async def main() -> None:
        async with portside.Server(app, "tcp:0:interface=127.0.0.1") as server:
            assert await roundtrip(server.addresses[0], b"hello, world") == b"hello, world"
            big = os.urandom(300_000)
            assert await roundtrip(server.addresses[0], big) == big
            assert server.statistics().connections_total == 2

    run(main())


@pytest.mark.parametrize("app", [EchoProtocol, echo_handler], ids=["protocol", "handler"])
def test_an_app_error_aborts_only_its_connection(
    run: Any, app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with portside.Server(app, "tcp:0:interface=127.0.0.1") as server:
            reader, writer = await asyncio.open_connection(*server.addresses[0])
            writer.write(b"boom")
            try:
                assert await reader.read() == b""
            except ConnectionResetError:
                pass
            writer.close()
            assert await roundtrip(server.addresses[0], b"others") == b"others"
            assert server.statistics().errors == 1

    with caplog.at_level(logging.ERROR, "portside"):
        run(main())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is ValueError


def test_drain_applies_back_pressure(run: Any) -> None:
    chunk, total = 32 * 1024, 8 * 1024 * 1024
    largest: list[int] = []

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        largest.append(0)
        for _ in range(total // chunk):
            writer.write(b"d" * chunk)
            largest[0] = max(largest[0], writer.transport.get_write_buffer_size())
            await writer.drain()

    async def main() -> None:
        async with portside.Server(flood, "tcp:0:interface=127.0.0.1") as server:
            reader, writer = await asyncio.open_connection(*server.addresses[0])
            await asyncio.sleep(0.05)  # the client does not read for a while
            received = 0
            while data := await reader.read(1 << 20):
                received += len(data)
            assert received == total
            assert 0 < largest[0] <= server.limits.write_buffer_high + chunk
            assert server.statistics().write_pauses >= 1
            writer.close()

    run(main())


def test_protocol_transport_surface(run: Any) -> None:
    async def main() -> None:
        seen: list[Any] = []

        class Inspect(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport
                seen.append(transport.get_extra_info("peername"))
                transport.pause_reading()
                seen.append(transport.is_reading())
                transport.resume_reading()
                transport.set_write_buffer_limits(high=10)
                seen.append(transport.get_write_buffer_limits())
                seen.append(transport.get_protocol() is self)

            def data_received(self, data: bytes) -> None:
                self.transport.write(data)
                self.transport.write_eof()
                seen.append(self.transport.can_write_eof())

            def eof_received(self) -> bool:
                seen.append("eof")
                return True

        transport = connect(Inspect)
        transport.feed(b"x")
        assert transport.take() == b"x" and transport.eof_written
        assert seen == [("127.0.0.1", 54321), False, (2, 10), True, True]
        transport.feed_eof()
        assert not transport.is_closing(), "eof_received returned True: stay open"
        transport.get_protocol().close()  # type: ignore[attr-defined]
        await transport.wait_lost()

    run(main())


def test_set_protocol_sends_later_data_to_the_new_protocol(run: Any) -> None:
    class Upper(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data.upper())

    class Switcher(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            upper = Upper()
            upper.connection_made(self.transport)
            self.transport.set_protocol(upper)

    async def main() -> None:
        transport = connect(Switcher)
        transport.feed(b"switch")
        transport.feed(b"abc")
        assert transport.take() == b"ABC"
        transport.abort()
        await transport.wait_lost()

    run(main())


def test_unservable_things_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot serve"):
        portside.Server(42, "tcp:0")
    with pytest.raises(TypeError, match="DatagramProtocol"):
        portside.Server(asyncio.DatagramProtocol, "udp:0")


SERVE_SCRIPT = """
import asyncio, logging, sys
import portside

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
portside.serve(Echo, "unix:" + sys.argv[1], loop=sys.argv[2])
print("returned", flush=True)
"""


def test_serve_blocks_until_sigint_then_shuts_down(tmp_path: Path, loop_kind: str) -> None:
    path = str(tmp_path / "serve.sock")
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SERVE_SCRIPT), path, loop_kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # the "listening on" log line: the server is up
        assert "listening on unix:" in line, line + process.stderr.read()

        async def client() -> bytes:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"over a socket")
            reply = await reader.readexactly(13)
            writer.close()
            return reply

        assert asyncio.run(client()) == b"over a socket"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out == "returned\n"
    assert "Traceback" not in err
    assert not os.path.exists(path)


def test_serve_reports_a_taken_port_at_once(loop_kind: str) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(portside.BindError):
            portside.serve(EchoProtocol, f"tcp:{port}:interface=127.0.0.1", loop=loop_kind)


def test_serve_with_an_unknown_loop_binds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "never.sock"
    with pytest.raises(ValueError, match="unknown loop"):
        portside.serve(EchoProtocol, f"unix:{path}", loop="twisted")
    assert not path.exists()
