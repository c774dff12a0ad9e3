"""The ``portside`` command: options derived from dataclasses, usage errors, and real processes.

The subprocess tests start ``python -m portside`` and learn its port from the startup log line,
so they are few; everything that can be checked in-process is.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import portside
from portside import Limits
from portside.app import as_handlers
from portside.cli import (
    add_options,
    build_parser,
    main,
    options_markdown,
    options_of,
    raise_open_file_limit,
    servable,
)
from portside.internet.protocol import DatagramProtocol, Factory, Protocol
from portside.services.builtins import QotdOptions

REPO = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (tcp|udp) 127\.0\.0\.1:(\d+)")

# -- options derived from the dataclasses -----------------------------------------------------


def test_every_limits_field_is_an_option() -> None:
    options = {o.name: o for o in options_of(Limits)}
    assert list(options) == [f.name for f in dataclasses.fields(Limits)]
    assert options["idle_timeout"].flag == "--idle-timeout"
    assert options["idle_timeout"].optional and not options["shutdown_timeout"].optional
    assert options["max_connections"].kind is int
    assert options["max_connections"].default == Limits().max_connections


@dataclasses.dataclass(frozen=True)
class Knobs:
    """Options of an imaginary service, one of each supported kind."""

    verbose: bool = dataclasses.field(default=False, metadata={"help": "Say more."})
    listing: bool = dataclasses.field(default=True, metadata={"help": "List directories."})
    root: Path = dataclasses.field(default=Path("."), metadata={"help": "Where."})
    name: str | None = dataclasses.field(default=None, metadata={"help": "Who."})


def test_options_of_each_kind() -> None:
    options = {o.name: o for o in options_of(Knobs)}
    assert options["verbose"].usage == "--verbose, --no-verbose"
    assert options["verbose"].shown_default() == "--no-verbose"
    assert options["listing"].shown_default() == "--listing"
    assert options["root"].usage == "--root PATH"
    assert options["name"].usage == "--name TEXT|none"
    parser = argparse.ArgumentParser()
    add_options(parser, options.values(), "")
    given = vars(parser.parse_args(["--verbose", "--no-listing", "--root", "/srv", "--name", "x"]))
    assert Knobs(**given) == Knobs(True, False, Path("/srv"), "x")
    assert vars(parser.parse_args([])) == {}  # absent: the dataclass default applies


def test_unsupported_fields_are_refused() -> None:
    @dataclasses.dataclass
    class Bad:
        when: list[int] = dataclasses.field(default_factory=list, metadata={"help": "No."})

    @dataclasses.dataclass
    class Silent:
        size: int = 1

    with pytest.raises(TypeError, match=r"Bad\.when: no command-line form"):
        options_of(Bad)
    with pytest.raises(TypeError, match=r"Silent\.size has no metadata"):
        options_of(Silent)


def test_limits_from_the_command_line() -> None:
    argv = ["serve", "--idle-timeout", "none", "--max-connections", "5", "--shutdown-timeout", "2"]
    args = build_parser().parse_args(argv)
    given = {k.split(":", 1)[1]: v for k, v in vars(args).items() if k.startswith("limit:")}
    assert Limits(**given) == Limits(idle_timeout=None, max_connections=5, shutdown_timeout=2.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--shutdown-timeout", "none"], "'none' is not a number"),
        (["serve", "--max-connections", "lots"], "'lots' is not an integer"),
        (["serve", "--loop", "trio"], "invalid choice: 'trio'"),
        (["run", "mod:app"], "the following arguments are required: --listen"),
    ],
)
def test_argument_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["serve", "--listen", "tcp:http"],
            "bad endpoint 'tcp:http': port: 'http' is not a number",
        ),
        (["serve", "gopher"], "unknown service 'gopher' (known: http, echo, discard"),
        (["serve", "echo", "--quote-file", "q"], "--quote-file is an option of qotd, not of echo"),
        (["serve", "--write-buffer-low", "100000"], "bad limits: need 0 <= write_buffer_low"),
        (["serve", "qotd", "--quote-file", "/nonexistent/q"], "cannot serve qotd: [Errno 2]"),
        (["run", "no_such_module:app", "--listen", "tcp:0"], "no module named 'no_such_module'"),
        (["run", "json:nothing", "--listen", "tcp:0"], "module 'json' has no attribute 'nothing'"),
        (["run", "json", "--listen", "tcp:0"], "'json' is not MODULE:ATTR"),
        (["run", "json:__doc__", "--listen", "tcp:0"], "cannot serve json:__doc__: cannot serve"),
    ],
)
def test_usage_errors_print_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"portside {argv[0]}: error: ")
    assert message in err


def test_udp_endpoint_for_a_tcp_only_application_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "asyncio:Protocol", "--listen", "udp:0:interface=127.0.0.1"]) == 2
    assert "does not speak UDP" in capsys.readouterr().err


def test_version_and_listing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"portside {portside.__version__}\n"
    assert main(["services"]) == 0
    listing = capsys.readouterr().out
    assert main(["serve", "--list"]) == 0
    assert capsys.readouterr().out == listing
    lines = listing.splitlines()
    assert [line.split()[0] for line in lines] == [
        "http",
        "echo",
        "discard",
        "daytime",
        "qotd",
        "chargen",
        "smtp",
        "time",
    ]
    assert "RFC 864  tcp+udp 127.0.0.1:7019" in lines[5]
    assert "(options: --quote-file)" in lines[4]
    assert main([]) == 2


def test_servable_run_targets() -> None:
    class Upper(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data.upper())

    class UpperFactory(Factory):
        protocol = Upper

    class Answer(DatagramProtocol):
        pass

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    factory = servable(Upper)
    assert isinstance(factory, Factory) and factory.protocol is Upper
    assert isinstance(servable(UpperFactory), UpperFactory)
    assert isinstance(servable(Answer), Answer)
    instance = UpperFactory()
    assert servable(instance) is instance
    assert servable(handler) is handler
    assert servable(asyncio.Protocol) is asyncio.Protocol
    for target in (Upper, UpperFactory, handler, asyncio.Protocol):
        assert as_handlers(servable(target)).stream is not None
    assert as_handlers(servable(Answer)).datagram is not None


def test_docs_list_every_option_with_its_default() -> None:
    text = (REPO / "docs" / "cli.md").read_text()
    begin, end = "<!-- options: begin -->\n", "<!-- options: end -->"
    generated = text[text.index(begin) + len(begin) : text.index(end)].strip("\n")
    assert generated == options_markdown().strip("\n"), (
        "docs/cli.md is out of date; replace the options block with the output of\n"
        "python -c 'from portside.cli import options_markdown; print(options_markdown())'"
    )
    for option in [*options_of(Limits), *options_of(QotdOptions)]:
        assert f"`{option.usage.replace('|', chr(92) + '|')}`" in generated
        assert f"`{option.shown_default()}`" in generated


# -- real processes ---------------------------------------------------------------------------


class Process:
    """``python -m portside ARGS`` with its stderr read line by line on a thread."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "portside", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """The first stderr line matching ``pattern``; fails if the process ends first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no {pattern!r} in time; stderr so far: {self.seen}"
                ) from None
            if not line:
                raise AssertionError(f"exited before {pattern!r}; stderr: {self.seen}")
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def port(self) -> int:
        return int(self.wait_for(LISTENING).group(2))

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 10.0) -> int:
        """Send ``sig``; the exit status, which must come within ``timeout`` seconds."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """Kill the process if it still runs, and release its pipe."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.close()


def echo_once(port: int, payload: bytes = b"hello\r\n") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        return got


def test_serve_echo_then_sigint_exits_0(processes: list[Process]) -> None:
    process = Process("serve", "echo", "--listen", "tcp:0:interface=127.0.0.1")
    processes.append(process)
    port = process.port()
    assert echo_once(port) == b"hello\r\n"
    started = time.monotonic()
    assert process.stop(signal.SIGINT) == 0
    assert time.monotonic() - started < 5
    process.wait_for("received SIGINT: shutting down gracefully")


def test_sigterm_closes_open_connections_gracefully(processes: list[Process]) -> None:
    process = Process(
        "serve", "echo", "--loop", "asyncio", "--listen", "tcp:0:interface=127.0.0.1", "--listen",
        "udp:0:interface=127.0.0.1",
    )  # fmt: skip
    processes.append(process)
    tcp_port = process.port()
    process.wait_for(r"listening on udp")
    with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as idle:
        idle.sendall(b"x")
        assert idle.recv(1) == b"x"
        assert process.stop(signal.SIGTERM) == 0
        assert idle.recv(1) == b""  # the server closed it on the way out


def test_a_second_sigint_forces_a_stalled_shutdown(
    processes: list[Process], tmp_path: Path
) -> None:
    # 32 MB written at once: far more than the kernel buffers hold, so while the client does
    # not read, the server holds unsent data and its graceful close cannot finish
    (tmp_path / "blob.py").write_text(
        "from portside.internet.protocol import Protocol\n"
        "\n"
        "class Blob(Protocol):\n"
        "    def connectionMade(self):\n"
        "        self.transport.write(b'x' * 32_000_000)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    listen = ["--listen", "tcp:0:interface=127.0.0.1"]
    process = Process("run", "blob:Blob", *listen, "--shutdown-timeout", "60", env=env)
    processes.append(process)
    port = process.port()
    with socket.socket() as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        assert stalled.recv(1) == b"x"  # connected, and the server's buffer is full
        process.proc.send_signal(signal.SIGINT)
        process.wait_for("shutting down gracefully")
        assert process.proc.poll() is None
        started = time.monotonic()
        assert process.stop(signal.SIGINT) == 0
        assert time.monotonic() - started < 5
        process.wait_for("aborting open connections")


def test_a_taken_port_exits_1(processes: list[Process]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = Process("serve", "--listen", f"tcp:{port}:interface=127.0.0.1")
        processes.append(process)
        assert process.proc.wait(timeout=10) == 1
        line = process.wait_for("error")
        assert line.string.startswith(
            f"portside serve: error: cannot listen on 'tcp:{port}:interface=127.0.0.1': "
        )
        assert "in use" in line.string


def test_run_serves_a_users_protocol(processes: list[Process], tmp_path: Path) -> None:
    (tmp_path / "shout.py").write_text(
        "from portside.internet.protocol import Protocol\n"
        "\n"
        "class Shout(Protocol):\n"
        "    def dataReceived(self, data):\n"
        "        self.transport.write(data.upper())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    process = Process("run", "shout:Shout", "--listen", "tcp:0:interface=127.0.0.1", env=env)
    processes.append(process)
    assert echo_once(process.port()) == b"HELLO\r\n"
    assert process.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize(
    ("limits", "soft", "hard", "expected"),
    [
        (Limits(), 1024, 524288, (10_064, 524288)),  # room for max_connections
        (Limits(), 65536, 524288, None),  # already enough
        (Limits(max_connections=None), 1024, 4096, (4096, 4096)),  # no cap: all there is
        (Limits(), 1024, 2048, (2048, 2048)),  # the hard limit is the ceiling
    ],
)
def test_open_file_limit_is_raised_for_max_connections(
    monkeypatch: pytest.MonkeyPatch,
    limits: Limits,
    soft: int,
    hard: int,
    expected: tuple[int, int] | None,
) -> None:
    import resource

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (soft, hard))
    monkeypatch.setattr(resource, "setrlimit", lambda _which, value: calls.append(value))
    raise_open_file_limit(limits)
    assert calls == ([] if expected is None else [expected])


@pytest.mark.parametrize("how", [["http"], []])
def test_serve_defaults_to_the_file_server_of_a_directory(
    processes: list[Process], tmp_path: Path, how: list[str]
) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello from disk\n")
    process = Process("serve", *how, str(tmp_path), "--listen", "tcp:0:interface=127.0.0.1")
    processes.append(process)
    port = process.port()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/hello.txt")
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"hello from disk\n")
    connection.close()
    assert process.stop(signal.SIGINT) == 0


def test_dir_is_only_for_http(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve", "echo", str(tmp_path)]) == 2
    assert "echo takes no DIR argument" in capsys.readouterr().err
