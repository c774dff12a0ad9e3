"""Paired benchmark: two echo servers measured side by side on one CPU.

Usage:
    python bench/paired.py --a "python bench/asyncore/servers.py portside dispatcher {port}" \\
                           --b "python bench/asyncore/servers.py pyasyncore dispatcher {port}"

Back-to-back runs on a shared VM differ by 20-30 % because the host's load changes between
them. This script runs both servers at the same time, both pinned to CPU 0 (the load clients
on CPU 1), so whatever disturbs one disturbs the other: each gets about half of CPU 0, and the
ratio of their messages per server CPU-second (read from /proc/PID/stat) is stable to a few
per cent from run to run. That ratio compares CPU cost per message, not throughput. Each
server runs in a cgroup of its own where one can be made (the cgroup cpu controller, and
permission to use it), so CPU 0 is shared per server however many threads each runs;
elsewhere it is shared per thread, and only servers with alike threads pair fairly.

Each command is run as given (found on PATH, from the repository root) with ``{port}``
replaced by a free port; each round starts both servers (alternating which goes first),
waits until both echo a probe line, runs one ``bench/.build/echo_client load`` per server,
both counting over the same window (``ECHO_CLIENT_START``; a round whose windows still differ
is left out), and stops the servers. portside's bytecode is written first (``--python`` for
servers on another interpreter), so servers load it as they load their peers. See
bench/paired.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    CLIENT_CPU,
    CLK_TCK,
    HOST,
    REPO,
    SERVER_CPU,
    STARTUP_TIMEOUT,
    BenchError,
    ServerProcess,
    build_client,
    byte_compile_portside,
    free_ports,
    pinned,
)

STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
CLIENT_SLACK = 60.0  # seconds beyond warmup + duration for the client's connect phase and exit
MIN_OVERLAP = 0.95  # a round whose two windows overlap less is left out of the median
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1: the cpu controller's hierarchy
CGROUP_V2 = Path("/sys/fs/cgroup")  # cgroup v2: the unified hierarchy's root


class CpuGroup:
    """A cgroup of the CPU controller holding one server, so CPU 0 is shared per server.

    The scheduler shares a CPU among threads: an event loop paired with a server running 55
    threads would get a few per cent of it. Two servers in two groups of equal weight get half
    each, however many threads they run.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def make(cls, name: str) -> CpuGroup | None:
        """A new group called ``name``, or None where none can be made (no controller, no
        permission): then CPU 0 is shared per thread."""
        for parent in (CGROUP_V1_CPU, CGROUP_V2):
            try:
                if parent == CGROUP_V2 and "cpu" not in (
                    (parent / "cgroup.subtree_control").read_text().split()
                ):
                    continue
                if not (parent / "cgroup.procs").exists():
                    continue
                (parent / name).mkdir()
            except OSError:
                continue
            return cls(parent / name)
        return None

    def join(self, pid: int) -> None:
        """Move process ``pid`` (all its threads, and those it starts later) into the group."""
        try:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as exc:
            raise BenchError(
                f"cannot move process {pid} into {self.path}: {exc} (--no-cgroups runs without)"
            ) from exc

    def remove(self) -> None:
        """Delete the group (once its processes have exited)."""
        try:
            self.path.rmdir()
        except OSError as exc:
            print(f"warning: cannot remove {self.path}: {exc}", file=sys.stderr)


def server_argv(command: str, port: int) -> list[str]:
    """The argv of ``command`` with every ``{port}`` replaced by ``port``."""
    return [word.replace("{port}", str(port)) for word in shlex.split(command)]


def default_labels(a: str, b: str) -> tuple[str, str]:
    """Short names for two commands: up to three words from where they first differ."""
    words_a = [w for w in shlex.split(a) if "{port}" not in w]
    words_b = [w for w in shlex.split(b) if "{port}" not in w]
    if words_a == words_b:
        return "A", "B"
    first = next(
        (i for i, (x, y) in enumerate(zip(words_a, words_b, strict=False)) if x != y),
        min(len(words_a), len(words_b)),
    )
    return (
        " ".join(words_a[first : first + 3]) or words_a[0],
        " ".join(words_b[first : first + 3]) or words_b[0],
    )


@dataclass
class Load:
    """One client's result against one server in one round."""

    rate: float  # messages per second
    per_cpu: float  # messages per server CPU-second
    cpu_share: float  # server CPU-seconds per second of the measured window
    served: int  # connections that completed at least one echo while measuring
    conns: int
    errors: int
    window: tuple[float, float]  # when measuring started and ended (time.monotonic)


class ClientRun:
    """One echo_client load run against ``server``, its stdout read by a thread of its own."""

    def __init__(
        self, client: Path, server: ServerProcess, args: argparse.Namespace, start_at: float
    ) -> None:
        argv = [str(client), "load", HOST, str(server.port), str(args.conns), str(args.size)]
        argv += [str(args.warmup), str(args.duration)]
        env = {**os.environ, "ECHO_CLIENT_START": f"{start_at:.6f}"}
        if args.line:
            env["ECHO_CLIENT_LINE"] = "1"
        self.server = server
        self.conns: int = args.conns
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish()
        try:
            self.proc = subprocess.Popen(
                pinned(CLIENT_CPU, argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                text=True,
                env=env,
            )
        except OSError as exc:
            self.stderr.close()
            raise BenchError(f"cannot run {client}: {exc}") from exc
        self.cpu0: float | None = None
        self.cpu1: float | None = None
        self.window = (0.0, 0.0)
        self.result: dict[str, float] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                if line.startswith("measuring"):
                    self.cpu0 = self.server.cpu_seconds()
                    self.window = (time.monotonic(), 0.0)
                elif line.startswith("messages="):
                    self.cpu1 = self.server.cpu_seconds()
                    self.window = (self.window[0], time.monotonic())
                    self.result = {
                        k: float(v) for k, v in (item.split("=") for item in line.split())
                    }
        except (OSError, ValueError) as exc:  # the server vanished, or a garbled line
            self.error = exc

    def finish(self, deadline: float) -> Load:
        """Wait for the client until ``deadline`` (then kill it) and return its figures."""
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            self.proc.kill()
            self.thread.join(STOP_TIMEOUT)
        self.close()
        name = self.server.name
        if self.error is not None:
            raise BenchError(f"reading the client against {name} failed: {self.error!r}")
        if self.result is None or self.cpu0 is None or self.cpu1 is None:
            raise BenchError(
                f"the client against {name} printed no result (status {self.proc.returncode})"
                f"\nclient stderr: {self.stderr_tail() or '(none)'}"
                f"\nserver output: {self.server.tail()}"
            )
        cpu = max(self.cpu1 - self.cpu0, 1.0 / CLK_TCK)
        seconds = self.result["seconds"]
        return Load(
            rate=self.result["messages"] / seconds,
            per_cpu=self.result["messages"] / cpu,
            cpu_share=cpu / seconds,
            served=int(self.result["served"]),
            conns=self.conns,
            errors=int(self.result["errors"]),
            window=self.window,
        )

    def close(self) -> None:
        """Make sure the client has exited (killing it after STOP_TIMEOUT) and reap it."""
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None and not self.thread.is_alive():
            self.proc.stdout.close()

    def stderr_tail(self) -> str:
        """The last part of what the client wrote to stderr."""
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-800:]


def run_round(
    client: Path,
    args: argparse.Namespace,
    labels: tuple[str, str],
    groups: list[CpuGroup] | None,
    swap: bool,
) -> tuple[Load, Load]:
    """Start both servers (B first when ``swap``), each in its CPU group when there are groups,
    load both at once, stop them; the (A, B) loads."""
    order = [1, 0] if swap else [0, 1]
    commands = (args.a, args.b)
    ports = free_ports(2)
    servers: dict[int, ServerProcess] = {}
    runs: dict[int, ClientRun] = {}
    try:
        for i in order:
            argv = pinned(SERVER_CPU, server_argv(commands[i], ports[i]))
            servers[i] = ServerProcess.launch(labels[i], ports[i], argv, REPO)
            if groups is not None:
                groups[i].join(servers[i].proc.pid)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        for i in order:
            servers[i].wait_echoing(deadline)
        # Both clients count over the same window, even when one connect phase is slower.
        start_at = time.monotonic() + args.connect + args.warmup
        for i in order:
            runs[i] = ClientRun(client, servers[i], args, start_at)
        deadline = time.monotonic() + args.connect + args.warmup + args.duration + CLIENT_SLACK
        loads = {i: runs[i].finish(deadline) for i in order}
        for i in order:
            if servers[i].proc.poll() is not None:
                raise BenchError(
                    f"{labels[i]} exited during the load (status {servers[i].proc.returncode}):"
                    f"\n{servers[i].tail()}"
                )
        return loads[0], loads[1]
    finally:
        for run in runs.values():
            if run.proc.poll() is None:
                run.proc.kill()
            run.close()
            run.stderr.close()
        for server in servers.values():
            server.stop(STOP_TIMEOUT)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """How much of the longer of two measuring windows the other one covers (0 to 1)."""
    longest = max(a[1] - a[0], b[1] - b[0])
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0])) / longest if longest > 0 else 0.0


def describe(label: str, width: int, load: Load) -> str:
    """One server's part of a round's line, with a flag when it did not serve everyone."""
    text = (
        f"{label + ':':<{width + 1}} {load.rate:8.0f} msg/s {load.per_cpu:8.0f} msg/cpu-s"
        f" cpu {load.cpu_share:4.0%} served {load.served}/{load.conns}"
    )
    if load.served < load.conns:
        text += " (!) not all served"
    if load.errors:
        text += f" (!) {load.errors} errors"
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join((__doc__ or "").split("\n\n")[2:]),
    )
    parser.add_argument("--a", required=True, help="server A's command line, with {port}")
    parser.add_argument("--b", required=True, help="server B's command line, with {port}")
    parser.add_argument("--labels", help="names to print for A and B: 'A,B'")
    parser.add_argument("--conns", type=int, default=100, help="connections per server")
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes")
    parser.add_argument("--line", action="store_true", help="end each message in a newline")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument(
        "--connect",
        type=float,
        default=1.5,
        help="seconds allowed for connecting before the warmup (raise it for a small backlog)",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured")
    parser.add_argument(
        "--python",
        action="append",
        help="interpreter the servers import portside with (repeatable; default: this one):"
        " its bytecode is written first, as an installed package's is",
    )
    parser.add_argument(
        "--no-cgroups",
        action="store_true",
        help="do not put each server in a cgroup of its own (CPU 0 is then shared per thread)",
    )
    args = parser.parse_args(argv)
    for name in ("a", "b"):
        if "{port}" not in getattr(args, name):
            parser.error(f"--{name} needs a {{port}} placeholder")
    if args.labels is not None and len(args.labels.split(",")) != 2:
        parser.error("--labels takes two names separated by a comma")
    if min(args.conns, args.size, args.rounds) < 1 or args.duration <= 0:
        parser.error("--conns, --size, --rounds and --duration must be positive")
    if min(args.warmup, args.connect) < 0:
        parser.error("--warmup and --connect cannot be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print one line each, then the median A/B ratio; the exit status."""
    args = parse_args(argv)
    a_label, b_label = args.labels.split(",") if args.labels else default_labels(args.a, args.b)
    labels = (a_label.strip(), b_label.strip())
    try:
        client = build_client()
        for python in args.python or [sys.executable]:
            byte_compile_portside(python)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for letter, label, command in zip("AB", labels, (args.a, args.b), strict=True):
        print(f"{letter} = {command}" + (f"  ({label})" if label != letter else ""))
    made = [
        None if args.no_cgroups else CpuGroup.make(f"portside-bench-{os.getpid()}-{letter}")
        for letter in "ab"
    ]
    groups = [g for g in made if g is not None]
    try:
        return run_rounds(client, args, labels, groups if len(groups) == 2 else None)
    finally:
        for group in groups:
            group.remove()


def run_rounds(
    client: Path, args: argparse.Namespace, labels: tuple[str, str], groups: list[CpuGroup] | None
) -> int:
    """The rounds and the summary of ``main``; its exit status."""
    width = max(len(label) for label in labels)
    sharing = (
        "CPU 0 shared per server (a cgroup each)"
        if groups is not None
        else "CPU 0 shared per thread (no cgroups: pair servers with alike threads)"
    )
    print(
        f"{args.conns} conns x {args.size} B{' lines' if args.line else ''}, "
        f"{args.warmup:g} s warmup + {args.duration:g} s, {os.cpu_count()} CPUs, "
        f"load avg {os.getloadavg()[0]:.1f}; {sharing}"
    )
    ratios: list[float] = []
    for round_no in range(args.rounds):
        swap = round_no % 2 == 1
        try:
            a, b = run_round(client, args, labels, groups, swap)
        except BenchError as exc:
            print(f"round {round_no + 1}: error: {exc}", file=sys.stderr)
            return 1
        ratio = a.per_cpu / b.per_cpu
        shared = overlap(a.window, b.window)
        if shared >= MIN_OVERLAP:
            ratios.append(ratio)
        print(
            f"round {round_no + 1} ({'B' if swap else 'A'} first)"
            f" | {describe(labels[0], width, a)}"
            f" | {describe(labels[1], width, b)} | A/B per cpu-s {ratio:.3f}"
            + ("" if shared >= MIN_OVERLAP else f" (!) windows overlap {shared:.0%}: left out")
        )
    if not ratios:
        print("error: in no round did the two windows coincide", file=sys.stderr)
        return 1
    print(
        f"A/B messages per server CPU-second: median {statistics.median(ratios):.3f}"
        f" (min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} of {args.rounds} rounds);"
        f" above 1 means A costs less CPU per message. load avg now {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
