"""Run a program under the 3.11 standard library or under portside (through the legacy
runner, so the program is unchanged) and record the bytes a scripted client receives."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROGRAMS = Path(__file__).parent / "programs"
HAS_STDLIB = sys.version_info < (3, 12)
"""Python 3.11 still ships asyncore, asynchat and smtpd; 3.12 removed them."""

Until = Callable[[bytes], bool]


def replies(n: int) -> Until:
    """Complete after ``n`` final SMTP reply lines (``NNN text``, not ``NNN-text``)."""

    def done(data: bytes) -> bool:
        return sum(1 for line in data.split(b"\r\n") if line[3:4] == b" ") >= n

    return done


def lines(n: int) -> Until:
    """Complete after ``n`` CRLF-terminated lines."""
    return lambda data: data.count(b"\r\n") >= n


def length(n: int) -> Until:
    """Complete after ``n`` bytes."""
    return lambda data: len(data) >= n


def closed(data: bytes) -> bool:
    """Read until the server closes the connection."""
    return False


@dataclass
class Step:
    """Send ``data`` (may be empty), then read until ``until`` says the answer is complete."""

    data: bytes
    until: Until = closed


@dataclass
class Transcript:
    """What the client received, step by step, whether the server closed, and its stdout."""

    received: list[bytes] = field(default_factory=list)
    eof: bool = False
    stdout: str = ""


def command(program: str, implementation: str, args: Sequence[str] = ()) -> list[str]:
    """The command line running ``program`` on ``stdlib`` or ``portside``."""
    path = str(PROGRAMS / program)
    if implementation == "stdlib":
        return [sys.executable, "-u", "-W", "ignore::DeprecationWarning", path, *args]
    return [sys.executable, "-u", "-m", "portside.legacy", path, *args]


def run(
    program: str,
    implementation: str,
    steps: Sequence[Step],
    args: Sequence[str] = (),
    timeout: float = 10.0,
    env: dict[str, str] | None = None,
) -> Transcript:
    """Start the program, play ``steps`` against it over one connection, stop it."""
    proc = subprocess.Popen(
        command(program, implementation, args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    transcript = Transcript()
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("PORT "), (first, proc.stderr.read() if proc.stderr else "")
        port = int(first.split()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            deadline = time.monotonic() + timeout
            for step in steps:
                if step.data:
                    try:
                        sock.sendall(step.data)
                    except (BrokenPipeError, ConnectionResetError):
                        transcript.eof = True
                        break
                got = b""
                while not step.until(got):
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    try:
                        chunk = sock.recv(65536)
                    except TimeoutError:
                        break
                    if not chunk:
                        transcript.eof = True
                        break
                    got += chunk
                transcript.received.append(got)
        time.sleep(0.05)  # let the server print what the last exchange made it print
    finally:
        proc.terminate()
        out, _err = proc.communicate(timeout=timeout)
    transcript.stdout = "\n".join(
        line for line in out.splitlines() if not line.startswith(("PORT ", "Incoming connection"))
    )
    return transcript


def compare(
    program: str, steps: Sequence[Step], args: Sequence[str] = ()
) -> tuple[Transcript, Transcript]:
    """The stdlib and portside transcripts of the same program and client."""
    return run(program, "stdlib", steps, args), run(program, "portside", steps, args)
