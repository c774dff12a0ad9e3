"""asyncore benchmark: portside.asyncore/asynchat against PyPI pyasyncore/pyasynchat.

Usage:
    python bench/asyncore/run.py [--quick] [--rounds N] [--duration S] [--skip-slow]

One invocation measures, interleaved (every round starts each server in turn, rotating the
order, and runs every connection count against it):

- throughput of a ``dispatcher_with_send`` echo and an ``async_chat`` line echo, 1 KiB
  messages, 10, 100 and 1,000 connections (pyasyncore with its default select());
- the same at 5,000 connections, pyasyncore with ``use_poll=True`` (select() cannot go there);
- 5,000 connections under a paced load (``--paced-*``): each connection sends one 1 KiB line
  every second and waits for its echo (an open loop, as real clients behave); server CPU per
  message, the slowest echo and the messages that failed (no echo within 5 s);
- 10,000 connections: the time to establish them all and serve one message on each.

The load generator is the C epoll client of bench/echo (``echo_client.c``: ``load`` and
``idle`` modes, and ``scale`` for the paced load), built into bench/.build/. Servers
are pinned to CPU 0, the client to CPU 1. Needs: Linux, gcc, taskset, and ``pip install
pyasyncore pyasynchat`` in the interpreter given by ``--python`` (default: this one). See
README.md beside this file.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import (
    BUILD,
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    BenchError,
    build_client,
    byte_compile_portside,
    cpu_seconds,
    free_port,
    pinned,
    stop_process,
)

HERE = Path(__file__).resolve().parent
CLIENT = BUILD / "echo_client"  # built by build_client() in main()
PACED_TIMEOUT = 5.0  # seconds: a paced echo slower than this counts as failed
SIZE = 1024
IMPLS = ("pyasyncore", "portside")
MODELS = ("dispatcher", "chat")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Server:
    """One benchmark server process (started, checked with one echo, stopped)."""

    def __init__(self, python: str, impl: str, model: str, poll: bool) -> None:
        self.name = f"{impl}/{model}"
        self.port = free_port()
        argv = [python, str(HERE / "servers.py"), impl, model, str(self.port)]
        if poll:
            argv.append("--poll")
        self.proc = subprocess.Popen(
            pinned(SERVER_CPU, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.stop()
            raise BenchError(f"{self.name} did not start: {self.proc.stderr.read()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.proc, self.name)


@dataclass
class Sample:
    rate: float  # messages per second
    per_cpu: float  # messages per second of server CPU
    other: float  # CPU share used by everything but server and client, in cores


@dataclass
class Results:
    samples: dict[tuple[str, str, int], list[Sample]] = field(default_factory=dict)

    def add(self, key: tuple[str, str, int], sample: Sample) -> None:
        self.samples.setdefault(key, []).append(sample)

    def median(self, key: tuple[str, str, int], attr: str) -> float:
        values = [getattr(s, attr) for s in self.samples.get(key, [])]
        return statistics.median(values) if values else float("nan")


def load(server: Server, conns: int, warmup: float, duration: float, line: bool) -> Sample:
    """Run the C client against ``server``; count messages and server CPU in the window."""
    env = {**os.environ, "ECHO_CLIENT_LINE": "1" if line else ""}
    if not line:
        env.pop("ECHO_CLIENT_LINE")
    argv = [str(CLIENT), "load", HOST, str(server.port), str(conns), str(SIZE)]
    argv += [str(warmup), str(duration)]
    client = subprocess.Popen(
        pinned(CLIENT_CPU, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert client.stdout is not None
    first = client.stdout.readline()  # "measuring": the window starts
    if first.strip() != "measuring":
        client.kill()
        raise BenchError(f"client: {first!r} {client.communicate(timeout=10)[1][-1000:]}")
    cpu0, busy0, start = cpu_seconds(server.proc.pid), machine_busy(), time.monotonic()
    client_cpu0 = cpu_seconds(client.pid)
    out = client.stdout.read()  # the result line; EOF when the client exits
    _, status, usage = os.wait4(client.pid, 0)  # rusage: the client's CPU, after it is gone
    client.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(server.proc.pid) - cpu0
    busy1 = machine_busy()
    client_cpu = usage.ru_utime + usage.ru_stime - client_cpu0
    stats = dict(item.split("=") for item in out.split())
    if client.returncode != 0 or int(stats.get("errors", "1")):
        err = client.stderr.read() if client.stderr else ""
        raise BenchError(f"client failed ({client.returncode}): {out} {err[-1000:]}")
    messages, seconds = int(stats["messages"]), float(stats["seconds"])
    busy_cores = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]) * (os.cpu_count() or 1)
    other = max(0.0, busy_cores - (cpu + client_cpu) / elapsed)
    return Sample(messages / seconds, messages / cpu if cpu else float("nan"), other)


@dataclass
class Paced:
    """One paced run: what the client counted and the server CPU while it sent."""

    requests: int
    ok: int
    failed: int
    skipped: int  # sends due while the last echo had not come back yet
    p99_ms: float
    max_ms: float
    cpu: float  # server CPU seconds from "all connected" to the last echo

    @property
    def per_cpu(self) -> float:
        return self.ok / self.cpu if self.cpu else float("nan")


def paced(server: Server, conns: int, period: float, duration: float) -> Paced:
    """``conns`` connections, each sending one line per ``period`` s for ``duration`` s."""
    argv = [str(CLIENT), "scale", HOST, str(server.port), str(conns), str(SIZE)]
    argv += [str(duration), str(period), str(PACED_TIMEOUT)]
    client = subprocess.Popen(
        pinned(CLIENT_CPU, argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ECHO_CLIENT_LINE": "1"},
    )
    assert client.stdout is not None and client.stderr is not None
    first = client.stdout.readline()  # "connected N": the paced sending starts
    if not first.startswith("connected "):
        client.kill()
        raise BenchError(f"paced client: {first!r} {client.communicate(timeout=10)[1][-1000:]}")
    cpu0 = cpu_seconds(server.proc.pid)
    last = client.stdout.readline()
    cpu = cpu_seconds(server.proc.pid) - cpu0
    client.wait(PACED_TIMEOUT + 30)
    client.stderr.read()  # "echo late" complaints: the counts below say as much
    stats = dict(item.split("=") for item in last.split()) if "=" in last else {}
    if "ok" not in stats:
        raise BenchError(f"paced client gave no result: {last!r}")
    return Paced(
        int(stats["requests"]),
        int(stats["ok"]),
        int(stats["failed"]),
        int(stats["skipped"]),
        float(stats["p99_ms"]),
        float(stats["max_ms"]),
        cpu,
    )


def run_paced(args: argparse.Namespace) -> None:
    conns, period, seconds = args.paced_conns, args.paced_period, args.paced_seconds
    print(
        f"\n{conns:,} connections, paced: each sends one 1 KiB line every {period:g} s for "
        f"{seconds:g} s\n(an echo later than {PACED_TIMEOUT:g} s fails; pyasyncore with poll)"
    )
    print(
        f"{'model':<11}{'impl':<12}{'requests':>9}{'ok':>8}{'failed':>7}{'skipped':>8}"
        f"{'p99':>9}{'slowest':>10}{'cpu-s':>7}{'msg/cpu-s':>11}"
    )
    for model in MODELS:
        runs = {}
        for impl in IMPLS:
            server = Server(args.python, impl, model, poll=impl == "pyasyncore")
            try:
                run = runs[impl] = paced(server, conns, period, seconds)
            finally:
                server.stop()
            label = "pyasync-poll" if impl == "pyasyncore" else impl
            print(
                f"{model:<11}{label:<12}{run.requests:>9}{run.ok:>8}{run.failed:>7}"
                f"{run.skipped:>8}{run.p99_ms:>7.0f}ms{run.max_ms:>8.0f}ms{run.cpu:>7.2f}"
                f"{run.per_cpu:>11.0f}"
            )
        cost = runs["portside"].per_cpu / runs["pyasyncore"].per_cpu
        print(f"{'':<11}portside/pyasyncore: {cost:.2f}x msg/cpu-s")


def establish(server: Server, conns: int, cap: float) -> tuple[float, int]:
    """Open ``conns`` connections and serve one message on each; (seconds, served)."""
    argv = [str(CLIENT), "idle", HOST, str(server.port), str(conns), str(SIZE), str(cap)]
    start = time.monotonic()
    client = subprocess.Popen(
        pinned(CLIENT_CPU, argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert client.stdout is not None and client.stdin is not None
    line = client.stdout.readline()
    elapsed = time.monotonic() - start
    client.stdin.close()
    client.wait(cap + 30)
    stats = dict(item.split("=") for item in line.split()) if "=" in line else {}
    return elapsed, int(stats.get("ready", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument(
        "--quick", action="store_true", help="1 round of 1 s, 5 s paced (unless given)"
    )
    parser.add_argument("--skip-slow", action="store_true", help="no pyasyncore 10k connect")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--paced-conns", type=int, default=5000)
    parser.add_argument("--paced-period", type=float, default=1.0, help="s between a conn's lines")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--no-paced", action="store_true", help="skip the paced 5,000 run")
    if parser.parse_known_args()[0].quick:  # shorter defaults; options given still win
        parser.set_defaults(rounds=1, duration=1.0, warmup=0.3, paced_seconds=5.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 30_000)), hard))
    build_client()
    byte_compile_portside(args.python)
    results = Results()
    counts = (10, 100, 1000)
    for round_no in range(args.rounds):
        order = [(i, m) for m in MODELS for i in IMPLS]
        order = order[round_no % len(order) :] + order[: round_no % len(order)]
        for impl, model in order:
            server = Server(args.python, impl, model, poll=False)
            try:
                for conns in counts:
                    sample = load(server, conns, args.warmup, args.duration, model == "chat")
                    results.add((impl, model, conns), sample)
            finally:
                server.stop()
        for impl, model in order:
            server = Server(args.python, impl, model, poll=impl == "pyasyncore")
            try:
                sample = load(server, 5000, args.warmup, args.duration, model == "chat")
                results.add((impl, model, 5000), sample)
            finally:
                server.stop()
        print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    report(results, (*counts, 5000))
    if not args.no_paced:
        run_paced(args)
    print("\n10,000 connections: time to connect all and serve one 1 KiB echo on each")
    for impl in IMPLS:
        if impl == "pyasyncore" and args.skip_slow:
            continue
        server = Server(args.python, impl, "dispatcher", poll=impl == "pyasyncore")
        try:
            seconds, served = establish(server, 10_000, cap=60.0)
        finally:
            server.stop()
        label = "pyasyncore (poll)" if impl == "pyasyncore" else impl
        print(f"  {label:<18} {seconds:6.2f} s   served {served}/10000")
    return 0


def report(results: Results, counts: tuple[int, ...]) -> None:
    print("\n1 KiB echo, median of rounds; msg/cpu-s = messages per second of server CPU")
    print(f"{'model':<11}{'conns':>6}  {'impl':<12}{'msg/s':>10}{'msg/cpu-s':>11}{'other':>7}")
    for model in MODELS:
        for conns in counts:
            for impl in IMPLS:
                key = (impl, model, conns)
                label = "pyasync-poll" if impl == "pyasyncore" and conns > 1000 else impl
                print(
                    f"{model:<11}{conns:>6}  {label:<12}"
                    f"{results.median(key, 'rate'):>10.0f}"
                    f"{results.median(key, 'per_cpu'):>11.0f}"
                    f"{results.median(key, 'other'):>7.2f}"
                )
            base, ours = ("pyasyncore", model, conns), ("portside", model, conns)
            ratio = results.median(ours, "rate") / results.median(base, "rate")
            cost = results.median(ours, "per_cpu") / results.median(base, "per_cpu")
            print(f"{'':<17}portside/pyasyncore: {ratio:.2f}x msg/s, {cost:.2f}x msg/cpu-s")
    print("'other' = cores busy with work other than the server (noise; near 0 is quiet)")


if __name__ == "__main__":
    sys.exit(main())
