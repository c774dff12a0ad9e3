"""Code written for Twisted runs on portside once ``twisted.`` becomes ``portside.``.

The examples below are written as Twisted's documentation shows them, with ``twisted``
imports. Each test changes only the import prefix (and the port number, so parallel runs do
not collide) and runs the program in its own process, where ``reactor.run()`` blocks as usual.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import portside
from portside.internet import protocol

ECHO_SERVER = """
from twisted.internet import protocol, reactor

class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)

class EchoFactory(protocol.Factory):
    def buildProtocol(self, addr):
        return Echo()

reactor.listenTCP(PORT, EchoFactory())
reactor.run()
"""

ENDPOINT_ECHO_SERVER = """
from twisted.internet import endpoints, protocol, reactor

class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)

endpoints.serverFromString(reactor, "tcp:PORT").listen(protocol.Factory.forProtocol(Echo))
reactor.run()
"""

ECHO_CLIENT = """
from twisted.internet import reactor, protocol

class EchoClient(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(b"hello, world!")

    def dataReceived(self, data):
        print("Server said:", data)
        self.transport.loseConnection()

class EchoFactory(protocol.ClientFactory):
    def buildProtocol(self, addr):
        return EchoClient()

    def clientConnectionFailed(self, connector, reason):
        print("Connection failed.")
        reactor.stop()

    def clientConnectionLost(self, connector, reason):
        print("Connection lost.")
        reactor.stop()

reactor.connectTCP("localhost", PORT, EchoFactory())
reactor.run()
"""

# Installs a reactor on the loop under test, announces when it runs, then runs the example.
RUNNER = """
import runpy, sys
from portside.internet import reactor
from portside.internet.reactor import Reactor, install
install(Reactor(loop=sys.argv[2]))
reactor.callWhenRunning(print, "running", flush=True)
runpy.run_path(sys.argv[1], run_name="__main__")
"""

EXPECTED_CLIENT_OUTPUT = "Server said: b'hello, world!'\nConnection lost.\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_example(directory: Path, name: str, source: str, port: int, prefix: str) -> Path:
    """Write ``source`` with its imports under ``prefix`` and PORT set; returns the path."""
    text = source.replace("PORT", str(port)).replace("from twisted.", f"from {prefix}.")
    path = directory / f"{name}.py"
    path.write_text(text)
    return path


def portside_process(script: Path, loop_kind: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(script), loop_kind], text=True, **kw)


def start_server(tmp_path: Path, source: str, loop_kind: str) -> tuple[Any, int]:
    port = free_port()
    script = write_example(tmp_path, "server", source, port, "portside")
    server = portside_process(script, loop_kind, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert server.stdout is not None
    line = server.stdout.readline()  # the runner prints once the reactor runs
    assert line == "running\n", server.communicate(timeout=5)
    return server, port


def stop_server(server: Any, sig: int) -> None:
    server.send_signal(sig)
    _out, err = server.communicate(timeout=10)
    assert server.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("source", "sig"),
    [(ECHO_SERVER, signal.SIGTERM), (ENDPOINT_ECHO_SERVER, signal.SIGINT)],
    ids=["listenTCP", "serverFromString"],
)
def test_twisted_echo_server_and_client(
    tmp_path: Path, loop_kind: str, source: str, sig: int
) -> None:
    server, port = start_server(tmp_path, source, loop_kind)
    try:
        client = write_example(tmp_path, "client", ECHO_CLIENT, port, "portside")
        done = portside_process(client, loop_kind, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = done.communicate(timeout=20)
        assert done.returncode == 0, err
        assert out == "running\n" + EXPECTED_CLIENT_OUTPUT
    finally:
        if server.poll() is None:
            stop_server(server, sig)


@pytest.mark.asyncio_only
def test_the_same_client_under_twisted_says_the_same(tmp_path: Path, loop_kind: str) -> None:
    pytest.importorskip("twisted")
    server, port = start_server(tmp_path, ECHO_SERVER, loop_kind)
    try:
        client = write_example(tmp_path, "twisted_client", ECHO_CLIENT, port, "twisted")
        done = subprocess.run(
            [sys.executable, str(client)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == EXPECTED_CLIENT_OUTPUT
    finally:
        stop_server(server, signal.SIGTERM)


class Delayed(protocol.Protocol):
    """Answers after a reactor.callLater, the way a Twisted protocol waits."""

    def dataReceived(self, data: bytes) -> None:
        from portside.internet import reactor

        reactor.callLater(0.01, self.transport.write, data[::-1])


def test_a_factory_served_by_portside_server_uses_its_loop_for_the_reactor(run: Any) -> None:
    async def main() -> None:
        factory = protocol.Factory.forProtocol(Delayed)
        async with portside.Server(factory, "tcp:0:interface=127.0.0.1") as server:
            host, number = server.addresses[0][:2]
            reader, writer = await asyncio.open_connection(host, number)
            writer.write(b"abc")
            assert await asyncio.wait_for(reader.readexactly(3), 2) == b"cba"
            writer.close()

    run(main())


def test_import_forms() -> None:
    import portside.internet.reactor
    from portside.internet import reactor

    assert reactor is portside.internet.reactor
    assert callable(reactor.callLater) and callable(reactor.listenTCP)
    assert os.path.basename(reactor.__file__ or "") == "reactor.py"
