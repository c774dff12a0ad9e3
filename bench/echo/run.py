"""Echo benchmark: portside against raw asyncio, raw uvloop, Twisted and a C epoll server.

Usage:
    python bench/echo/run.py [--duration S] [--quick]     throughput, interleaved rounds
    python bench/echo/run.py --rss                        memory per idle connection

Every server runs pinned to core 0, the C load generator to core 1. Each round starts
every server in turn (rotating the order) and runs each connection count against it, so
background noise hits all servers alike; the table shows the median over rounds.
See README.md next to this file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import (
    CLIENT_CPU,
    HOST,
    REPO,
    SERVER_CPU,
    STARTUP_TIMEOUT,
    BenchError,
    ServerProcess,
    build_c,
    build_client,
    busy_seconds,
    byte_compile_portside,
    cpu_seconds,
    free_port,
    pinned,
)

HERE = Path(__file__).resolve().parent
BASELINE = "uvloop"
ALL_SERVERS = ("portside", "asyncio", "uvloop", "twisted", "c-epoll")
RSS_SERVERS = ("portside", "uvloop", "asyncio", "twisted")
NOISY = 0.25  # CPU (in cores) used by other processes during a run that makes it "noisy"
CLIENT_BOUND = 0.9  # client CPU (in cores) from which msg/s is the client's limit, not the server's


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: Callable[[int], list[str]]  # command line for a given port


def server_specs(
    python: str, c_server: Path | None, extra_portside: list[str]
) -> dict[str, ServerSpec]:
    specs = [
        ServerSpec(
            "portside",
            lambda port: [
                python,
                "-m",
                "portside",
                "serve",
                "echo",
                "--listen",
                f"tcp:{port}:interface={HOST}",
                "--loop",
                "uvloop",
                "--log-level",
                "warning",
                *extra_portside,
            ],
        ),
        ServerSpec("asyncio", lambda port: [python, str(HERE / "raw_echo.py"), str(port)]),
        ServerSpec(
            "uvloop",
            lambda port: [python, str(HERE / "raw_echo.py"), str(port), "--loop", "uvloop"],
        ),
        ServerSpec("twisted", lambda port: [python, str(HERE / "twisted_echo.py"), str(port)]),
    ]
    if c_server is not None:
        specs.append(ServerSpec("c-epoll", lambda port: [str(c_server), str(port)]))
    return {spec.name: spec for spec in specs}


def start_server(spec: ServerSpec) -> ServerProcess:
    port = free_port()
    server = ServerProcess.launch(spec.name, port, pinned(SERVER_CPU, spec.argv(port)), REPO)
    try:
        server.wait_echoing(time.monotonic() + STARTUP_TIMEOUT)
    except BaseException:
        server.stop()
        raise
    pid = server.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists() and children.read_text().strip():
        print(f"  ! {spec.name} has child processes: CPU and RSS figures cover its main PID only")
    return server


@contextlib.contextmanager
def running(spec: ServerSpec) -> Iterator[ServerProcess]:
    server = start_server(spec)
    try:
        yield server
    finally:
        server.stop()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --------------------------------------------------------------------------- throughput


@dataclass(frozen=True)
class Sample:
    rate: float  # messages per second
    server_cpu: float  # CPU used by the server during the window, in cores
    client_cpu: float  # same for the load generator
    other_cpu: float  # same for everything else on the machine (incl. steal): the noise

    @property
    def per_cpu_second(self) -> float:
        """Messages per second of server CPU: less sensitive to noise than the rate."""
        return self.rate / self.server_cpu if self.server_cpu > 0 else float("nan")


@dataclass(frozen=True)
class Counters:
    when: float
    server: float
    client: float
    busy: float

    @classmethod
    def take(cls, server_pid: int, client_pid: int) -> Counters:
        return cls(
            time.monotonic(), cpu_seconds(server_pid), cpu_seconds(client_pid), busy_seconds()
        )


def run_load(
    client: Path, server: ServerProcess, conns: int, size: int, warmup: float, duration: float
) -> Sample:
    cmd = [str(client), "load", HOST, str(server.port), str(conns), str(size)]
    cmd += [str(warmup), str(duration)]
    with tempfile.TemporaryFile() as err_log:
        proc = subprocess.Popen(pinned(CLIENT_CPU, cmd), stdout=subprocess.PIPE, stderr=err_log)
        assert proc.stdout is not None
        start = end = None
        try:
            # the client's connect phase is bounded (30 s), and so are warm-up and duration
            line = read_line(proc.stdout, timeout=warmup + 40)
            if line == "measuring":
                start = Counters.take(server.proc.pid, proc.pid)
                line = read_line(proc.stdout, timeout=duration + 10)
                # the client may have exited, but until it is reaped its /proc entry
                # (with its CPU times) stays readable
                end = Counters.take(server.proc.pid, proc.pid)
            proc.wait(timeout=10)
        except (BenchError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
            raise BenchError(f"client against {server.name} did not finish in time") from None
        except BaseException:  # e.g. Ctrl-C: do not leave the client behind
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        err_log.seek(0)
        err = err_log.read().decode(errors="replace").strip()
    if proc.returncode != 0 or start is None or end is None:
        raise BenchError(
            f"client against {server.name} failed (status {proc.returncode}): "
            f"{line} {err}\nserver output: {server.tail(500)}"
        )
    values = dict(item.split("=", 1) for item in line.split())
    rate = int(values["messages"]) / float(values["seconds"])
    wall = end.when - start.when
    srv = (end.server - start.server) / wall
    cli = (end.client - start.client) / wall
    other = max(0.0, (end.busy - start.busy) / wall - srv - cli)
    return Sample(rate, srv, cli, other)


@dataclass
class Results:
    samples: dict[tuple[str, int], list[Sample]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def median(self, name: str, conns: int, per_cpu: bool = False) -> float | None:
        got = self.samples.get((name, conns))
        if not got:
            return None
        return statistics.median(s.per_cpu_second if per_cpu else s.rate for s in got)


def throughput(args: argparse.Namespace, client: Path, specs: dict[str, ServerSpec]) -> Results:
    names = [name for name in args.servers if name in specs]
    results = Results()
    for rnd in range(args.rounds):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        print(f"round {rnd + 1}/{args.rounds}: {', '.join(order)}")
        for name in order:
            if name in results.failures:
                continue
            try:
                with running(specs[name]) as server:
                    for conns in args.connections:
                        sample = run_load(
                            client, server, conns, args.size, args.warmup, args.duration
                        )
                        results.samples.setdefault((name, conns), []).append(sample)
                        print(
                            f"  {name:<9} {conns:>4} conns {sample.rate:>10,.0f} msg/s"
                            f"   cpu: server {sample.server_cpu:4.0%}"
                            f"  client {sample.client_cpu:4.0%}  other {sample.other_cpu:4.0%}"
                        )
            except BenchError as exc:
                results.failures[name] = str(exc)
                print(f"  ! skipping {name} from now on: {exc}")
    return results


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def print_table(args: argparse.Namespace, results: Results) -> None:
    print()
    print(
        f"echo, {args.size} B request/response, {args.rounds} round(s) x {args.duration:g} s"
        f" (+{args.warmup:g} s warm-up); server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}"
    )
    header = (
        f"{'server':<10}{'conns':>6}{'msg/s median':>14}{'min':>10}{'max':>10}"
        f"{'vs uvloop':>11}{'srv cpu':>9}{'cli cpu':>9}{'other':>7}{'msg/cpu-s':>11}"
    )
    print(header)
    print("-" * len(header))
    client_bound = False
    for conns in args.connections:
        base = results.median(BASELINE, conns)
        for name in args.servers:
            got = results.samples.get((name, conns))
            if not got:
                continue
            rates = [s.rate for s in got]
            med = statistics.median(rates)
            srv = statistics.median(s.server_cpu for s in got)
            cli = statistics.median(s.client_cpu for s in got)
            other = statistics.median(s.other_cpu for s in got)
            per_cpu = results.median(name, conns, per_cpu=True) or float("nan")
            flag = "*" if cli >= CLIENT_BOUND else " "
            client_bound = client_bound or cli >= CLIENT_BOUND
            print(
                f"{name:<10}{conns:>6}{med:>14,.0f}{min(rates):>10,.0f}{max(rates):>10,.0f}"
                f"{ratio(med, base):>11}{srv:>9.0%}{cli:>8.0%}{flag}{other:>7.0%}{per_cpu:>11,.0f}"
            )
        print()
    print("ratios of medians (msg/s; in brackets msg per server CPU-second):")
    for conns in args.connections:
        parts = []
        for peer in ("uvloop", "twisted"):
            rate = ratio(results.median("portside", conns), results.median(peer, conns))
            eff = ratio(
                results.median("portside", conns, per_cpu=True),
                results.median(peer, conns, per_cpu=True),
            )
            parts.append(f"portside/{peer} = {rate} [{eff}]")
        print(f"  {conns:>4} conns: " + "   ".join(parts))
    if client_bound:
        print(
            f"* client CPU >= {CLIENT_BOUND:.0%}: the load generator is (nearly) saturated, so"
            " msg/s understates that server; msg/cpu-s still compares fairly"
        )
    every = [x for samples in results.samples.values() for x in samples]
    noisy = sum(x.other_cpu > NOISY for x in every)
    if noisy:
        print(
            f"noise: {noisy} of {len(every)} runs shared the machine with other work"
            f" (other > {NOISY:.0%} of a core); msg/cpu-s is the steadier figure then"
        )
    for name, why in results.failures.items():
        first = why.splitlines()[0] if why else ""
        print(f"not measured: {name}: {first}")


# --------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class RssResult:
    name: str
    ready: int
    fds: int
    before_kib: int
    after_kib: int

    @property
    def per_conn(self) -> float:
        return (self.after_kib - self.before_kib) / self.ready if self.ready else float("nan")


def read_line(stream: IO[bytes], timeout: float) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise BenchError(f"no answer from the client within {timeout:.0f} s")
    return stream.readline().decode().strip()


def measure_rss(client: Path, server: ServerProcess, conns: int, size: int) -> RssResult:
    pid = server.proc.pid
    before = server.status("VmRSS")
    cmd = [str(client), "idle", HOST, str(server.port), str(conns), str(size), "120"]
    proc = subprocess.Popen(pinned(CLIENT_CPU, cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = read_line(proc.stdout, timeout=60)
        values = dict(item.split("=", 1) for item in line.split())
        ready = int(values["ready"])
        # every connection has completed an echo, so the server holds them all; the
        # fd count is a cross-check (listening socket, epoll, pipes... come on top)
        fds = fd_count(pid)
        after = server.status("VmRSS")
    finally:
        proc.stdin.close()  # tells the client to close its connections and exit
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return RssResult(server.name, ready, fds, before, after)


def start_for_rss(name: str, python: str, conns: int, notes: list[str]) -> ServerProcess:
    """Start a server for the memory run; portside gets a connection cap above `conns`."""
    if name != "portside":
        return start_server(server_specs(python, None, [])[name])
    cap = ["--max-connections", str(max(20_000, conns))]
    try:
        return start_server(server_specs(python, None, cap)[name])
    except BenchError as exc:
        if "max-connections" not in str(exc):
            raise
        notes.append(f"portside rejected {' '.join(cap)}: {str(exc).splitlines()[-1]}")
        print(f"  ! {notes[-1]}; retrying without it")
        return start_server(server_specs(python, None, [])[name])


def memory(args: argparse.Namespace, client: Path, python: str) -> None:
    print(f"memory: {args.rss_conns} idle connections, one {args.size} B echo on each")
    results: list[RssResult] = []
    notes: list[str] = []
    for name in [n for n in args.servers if n in RSS_SERVERS]:
        try:
            server = start_for_rss(name, python, args.rss_conns, notes)
            try:
                res = measure_rss(client, server, args.rss_conns, args.size)
            finally:
                server.stop()
        except BenchError as exc:
            notes.append(f"{name} not measured: {exc}")
            print(f"  ! {notes[-1]}")
            continue
        results.append(res)
        print(
            f"  {name:<9} ready {res.ready:>6}  fds {res.fds:>6}"
            f"  rss {res.before_kib / 1024:6.1f} -> {res.after_kib / 1024:6.1f} MiB"
        )
    print()
    header = (
        f"{'server':<10}{'conns ready':>12}{'server fds':>12}{'RSS before':>12}"
        f"{'RSS after':>12}{'KiB/conn':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<10}{r.ready:>12}{r.fds:>12}{r.before_kib / 1024:>8.1f} MiB"
            f"{r.after_kib / 1024:>8.1f} MiB{r.per_conn:>10.2f}"
        )
    for note in notes:
        print(f"note: {note}")


# --------------------------------------------------------------------------- main


def default_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def versions(python: str) -> str:
    code = (
        "import sys\n"
        "out = ['python ' + sys.version.split()[0]]\n"
        "for mod in ('uvloop', 'twisted'):\n"
        "    try:\n"
        "        out.append(mod + ' ' + __import__(mod).__version__)\n"
        "    except Exception:\n"
        "        out.append(mod + ' missing')\n"
        "print(', '.join(out))\n"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or proc.stderr.strip()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="portside echo benchmark")
    parser.add_argument("--duration", type=float, default=2.5, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1 s (+0.3 s warm-up)")
    parser.add_argument(
        "--connections", type=lambda s: [int(x) for x in s.split(",")], default=[10, 100]
    )
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes")
    parser.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=list(ALL_SERVERS),
        help=f"comma-separated subset of {','.join(ALL_SERVERS)}",
    )
    parser.add_argument("--python", default=default_python(), help="interpreter for the servers")
    parser.add_argument(
        "--rss", action="store_true", help="measure memory per idle connection instead"
    )
    parser.add_argument("--rss-conns", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 3, 1.0, 0.3
    unknown = set(args.servers) - set(ALL_SERVERS)
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C does, so the finally blocks stop the server and client
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(128 + signal.SIGTERM))
    if platform.system() != "Linux":
        print("this benchmark needs Linux (epoll, /proc, taskset)", file=sys.stderr)
        return 2
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if shutil.which("taskset") is None:
        print("warning: taskset not found; server and client are not pinned", file=sys.stderr)
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs; server and client share a core", file=sys.stderr)
    try:
        client = build_client()
        byte_compile_portside(args.python)
        c_server = build_c("echo_server") if "c-epoll" in args.servers else None
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{versions(args.python)}; {platform.platform()}; {os.cpu_count()} CPUs")
    started = time.monotonic()
    if args.rss:
        memory(args, client, args.python)
    else:
        results = throughput(args, client, server_specs(args.python, c_server, []))
        print_table(args, results)
    print(f"\ntook {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
