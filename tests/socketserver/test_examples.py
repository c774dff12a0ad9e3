"""The stdlib documentation's examples run unchanged on portside and print the same.

Each example runs in a subprocess twice: as published (stdlib) and with ``import
socketserver`` replaced by ``from portside import socketserver``. The fixed port 9999 becomes a
free port so parallel runs do not collide. Servers are stopped with SIGINT, as the examples
say (Ctrl-C); both implementations must then have printed the same lines.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent / "examples"
PORTSIDE_IMPORT = "from portside import socketserver"
STARTUP_TIMEOUT = 10.0
RUN_TIMEOUT = 20.0


def _source(name: str, implementation: str, port: int) -> str:
    text = (EXAMPLES / f"{name}.py.txt").read_text()
    text = text.replace('"localhost", 9999', f'"localhost", {port}')
    if implementation == "portside":
        assert "import socketserver\n" in text
        text = text.replace("import socketserver\n", PORTSIDE_IMPORT + "\n", 1)
    return text


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("localhost", 0))
        return int(probe.getsockname()[1])


def _script(tmp_path: Path, name: str, implementation: str, port: int) -> Path:
    path = tmp_path / f"{implementation}_{name}.py"
    path.write_text(_source(name, implementation, port))
    return path


def _wait_listening(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
        except ConnectionRefusedError:
            time.sleep(0.02)  # the server process is still starting: nothing to await
            continue
        return
    raise AssertionError("the example server did not start listening")


def _run_pair(
    tmp_path: Path, server: str, client: str, implementation: str, kind: int, messages: list[str]
) -> tuple[str, list[str]]:
    port = _free_port(kind)
    server_script = _script(tmp_path, server, implementation, port)
    client_script = _script(tmp_path, client, "stdlib", port)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, str(server_script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        if kind == socket.SOCK_STREAM:
            _wait_listening(port, process)
        else:
            time.sleep(0.5)  # a UDP server cannot be probed; the client retries below anyway
        outputs = []
        for message in messages:
            result = subprocess.run(
                [sys.executable, str(client_script), *message.split()],
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=True,
            )
            outputs.append(result.stdout)
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    assert "KeyboardInterrupt" in stderr, stderr
    return stdout, outputs


MESSAGES = ["hello world with TCP", "python is nice"]


@pytest.mark.parametrize("server", ["tcp_server", "tcp_server_streams"])
def test_tcp_example(tmp_path: Path, server: str) -> None:
    stdlib = _run_pair(tmp_path, server, "tcp_client", "stdlib", socket.SOCK_STREAM, MESSAGES)
    ours = _run_pair(tmp_path, server, "tcp_client", "portside", socket.SOCK_STREAM, MESSAGES)
    assert ours == stdlib
    assert "Received: HELLO WORLD WITH TCP" in ours[1][0]
    # (the first lines come from the connection that probed whether the server was up)
    assert ours[0].endswith(
        "wrote:\nb'hello world with TCP'\n127.0.0.1 wrote:\nb'python is nice'\n"
    )


def test_udp_example(tmp_path: Path) -> None:
    stdlib = _run_pair(tmp_path, "udp_server", "udp_client", "stdlib", socket.SOCK_DGRAM, MESSAGES)
    ours = _run_pair(tmp_path, "udp_server", "udp_client", "portside", socket.SOCK_DGRAM, MESSAGES)
    assert ours == stdlib
    assert "Received: PYTHON IS NICE" in ours[1][1]


def test_threading_mixin_example(tmp_path: Path) -> None:
    outputs = {}
    for implementation in ("stdlib", "portside"):
        script = _script(tmp_path, "threaded_server", implementation, 0)
        result = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=True,
        )
        outputs[implementation] = result.stdout
    assert outputs["portside"] == outputs["stdlib"]
    assert "Received: Thread-2 (process_request_thread): Hello World 1" in outputs["portside"]
