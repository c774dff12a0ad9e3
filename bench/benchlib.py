"""Plumbing shared by the benchmark scripts under bench/.

The scripts (bench/paired.py and bench/*/run.py) start servers and load generators as child
processes pinned to CPUs, find them free ports, read their CPU time from /proc and build the
C load generator; this module holds one version of each of those steps. Scripts in
subfolders are run by path, so they put this folder on ``sys.path`` before importing it.
Linux only: ``cpu_seconds`` reads /proc.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent  # servers run from the repository root
BUILD = BENCH / ".build"  # compiled C helpers; not tracked by git
SERVER_CPU, CLIENT_CPU = "0", "1"  # servers run on CPU 0, load generators on CPU 1
HOST = "127.0.0.1"  # every benchmark runs over loopback
CLK_TCK = os.sysconf("SC_CLK_TCK")  # the unit of the CPU times in /proc/PID/stat
STARTUP_TIMEOUT = 20.0  # seconds for a server to listen and echo PROBE
PROBE = b"portside-bench-probe\n"  # one line: both byte and line echo servers return it


class BenchError(Exception):
    """A server, a client or a build step did not work; the message says why."""


def build_c(name: str) -> Path:
    """Compile bench/echo/NAME.c into bench/.build/NAME unless the binary is up to date.

    Returns the binary's path. Raises BenchError when gcc is missing or the build fails (with
    gcc's complaints); compiler warnings of a successful build go to stderr.
    """
    src, out = BENCH / "echo" / f"{name}.c", BUILD / name
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    if shutil.which("gcc") is None:
        raise BenchError(f"gcc not found: cannot build {src.name}")
    BUILD.mkdir(parents=True, exist_ok=True)
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(out), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BenchError(f"building {src.name} failed:\n{done.stderr}")
    if done.stderr.strip():
        print(done.stderr, file=sys.stderr)
    return out


def build_client() -> Path:
    """The C epoll load generator (bench/echo/echo_client.c), built if needed: its path."""
    return build_c("echo_client")


def byte_compile_portside(python: str = sys.executable) -> None:
    """Write the bytecode of the portside package ``python`` imports, as pip does at install.

    Servers must import portside as they import its peers (installed packages, compiled
    already), not compile its source afresh in every process: with PYTHONDONTWRITEBYTECODE
    set, a source checkout is never cached, and what the compiler leaves in the heap cost
    every server that imported portside about 2 % of its messages per CPU-second, even a
    server that never used it (bench/asyncore/README.md). Raises BenchError when it fails.
    """
    script = (
        "import compileall, os, sys, portside\n"
        "sys.exit(not compileall.compile_dir(os.path.dirname(portside.__file__), quiet=1))"
    )
    try:
        done = subprocess.run(
            [python, "-c", script], capture_output=True, text=True, timeout=300, check=False
        )
    except OSError as exc:
        raise BenchError(f"cannot run {python} to byte-compile portside: {exc}") from exc
    if done.returncode != 0:
        raise BenchError(f"byte-compiling portside failed:\n{done.stdout}{done.stderr}")


def pinned(cpu: str, argv: list[str]) -> list[str]:
    """``argv`` run on CPU ``cpu`` via taskset, or unpinned where taskset is missing.

    taskset execs the command, so the child's PID is the program's own PID (what
    ``cpu_seconds`` and /proc reads need).
    """
    return ["taskset", "-c", cpu, *argv] if shutil.which("taskset") else argv


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on HOST a moment ago.

    All are bound at once before any is released, so they differ from each other; another
    process may still take one before the caller's server binds it.
    """
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    """One TCP port that was free on HOST a moment ago."""
    return free_ports(1)[0]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all its threads) so far, in seconds.

    Read from /proc/PID/stat, which stays readable until the process is reaped.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stop_process(proc: subprocess.Popen[Any], name: str, timeout: float = 10.0) -> None:
    """SIGTERM ``proc`` by its PID if it still runs; SIGKILL it after ``timeout`` seconds.

    Returns once the process is reaped. A kill is reported on stderr, naming ``name``.
    """
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  ! {name} ignored SIGTERM for {timeout:g} s; killing it", file=sys.stderr)
        proc.kill()
        proc.wait(timeout=timeout)


def busy_seconds() -> float:
    """CPU time all cores have spent busy so far, in seconds, from /proc/stat.

    Busy is user + nice + system + irq + softirq + steal: neither idle nor iowait, and guest
    time is left out because /proc/stat already counts it within user and nice.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass
class ServerProcess:
    """A server process a benchmark started, its stdout and stderr captured in ``log``.

    ``name`` labels it in messages; ``port`` is where it listens on HOST.
    """

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    @classmethod
    def launch(cls, name: str, port: int, argv: list[str], cwd: Path) -> ServerProcess:
        """Start ``argv`` (pinned already, if wanted) in ``cwd``; do not wait for it to listen.

        Raises BenchError when the program cannot be run at all.
        """
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        except OSError as exc:
            log.close()
            raise BenchError(f"{name}: cannot run {shlex.join(argv)}: {exc}") from exc
        return cls(name, port, proc, log)

    def tail(self, limit: int = 1500) -> str:
        """The last ``limit`` characters of the server's output, or ``(no output)``."""
        self.log.seek(0)
        text = self.log.read().decode(errors="replace").strip()
        return text[-limit:] if text else "(no output)"

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process (all its threads) so far."""
        return cpu_seconds(self.proc.pid)

    def status(self, key: str) -> int:
        """The number in field ``key`` of its /proc/PID/status (``VmRSS`` in KiB, ``Threads``)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise BenchError(f"no {key} in /proc/{self.proc.pid}/status")

    def wait_echoing(self, deadline: float) -> None:
        """Return once the server accepts on HOST:``port`` and echoes PROBE back.

        ``deadline`` is a ``time.monotonic()`` value. Raises BenchError, with the server's
        output, when it exits first, does not listen by the deadline or does not echo the
        probe; the caller stops the server.
        """
        while True:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with status {self.proc.returncode} before listening on"
                    f" port {self.port}; its output ends:\n{self.tail()}"
                )
            try:
                sock = socket.create_connection((HOST, self.port), timeout=2.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{self.name} did not listen on port {self.port} in time;"
                        f" its output ends:\n{self.tail()}"
                    ) from None
                time.sleep(0.05)  # polling interval only: readiness is the successful connect
        with sock:
            sock.settimeout(max(1.0, deadline - time.monotonic()))
            echoed = b""
            try:
                sock.sendall(PROBE)
                while len(echoed) < len(PROBE) and not echoed.endswith(b"\n"):
                    chunk = sock.recv(len(PROBE) - len(echoed))
                    if not chunk:
                        break
                    echoed += chunk
            except OSError as exc:  # includes the timeout
                raise BenchError(
                    f"{self.name} accepted but did not echo: {exc!r}\n{self.tail()}"
                ) from None
            if echoed != PROBE:
                raise BenchError(f"{self.name} echoed {echoed!r} to {PROBE!r}:\n{self.tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server, SIGKILL it after ``timeout`` seconds; close the log."""
        stop_process(self.proc, self.name, timeout)
        self.log.close()
