"""socketserver benchmark: one line-echo handler under the stdlib, portside's modes and gevent.

Usage:
    python bench/socketserver/run.py            # throughput rounds, then the 10,000-connection run
    python bench/socketserver/run.py --quick    # fewer, shorter rounds and a 5 s scale run

Throughput: every round starts each server in turn (rotating the order), runs 10 and 100
connections each sending 1 KiB lines ping-pong with the C client, and stops it; the table
shows medians over rounds. Scale: 10,000 connections each sending one line per second for
20 s; it counts failed requests and reads the server's RSS. Servers run on CPU 0, the client
on CPU 1. See README.md next to this file.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import (
    CLIENT_CPU,
    HOST,
    REPO,
    SERVER_CPU,
    STARTUP_TIMEOUT,
    BenchError,
    ServerProcess,
    build_client,
    byte_compile_portside,
    free_port,
    pinned,
)

HERE = Path(__file__).resolve().parent
SERVERS = ("stdlib", "stdlib128", "threading", "pool", "green", "gevent", "uvloop")
SCALE_SERVERS = ("stdlib", "threading", "green", "gevent")
BASELINE = "stdlib"
LABELS = {
    "stdlib": "stdlib ThreadingTCPServer",
    "stdlib128": "stdlib, request_queue_size=128",
    "threading": "portside ThreadingTCPServer",
    "pool": "portside ThreadPoolTCPServer",
    "green": "portside GreenTCPServer",
    "gevent": "gevent StreamServer",
    "uvloop": "raw uvloop Protocol (ceiling)",
}
CLIENT_SLACK = 150.0  # beyond its own duration: the connect phase may take up to 120 s


# the client's messages end in a newline: the handlers echo lines
LINES = {**os.environ, "ECHO_CLIENT_LINE": "1"}


def server_argv(name: str, port: int) -> list[str]:
    if name == "uvloop":
        return [
            sys.executable,
            str(REPO / "bench" / "echo" / "raw_echo.py"),
            str(port),
            "--loop",
            "uvloop",
        ]
    return [sys.executable, str(HERE / "servers.py"), name, str(port)]


def start(name: str) -> ServerProcess:
    port = free_port()
    argv = pinned(SERVER_CPU, server_argv(name, port))
    server = ServerProcess.launch(name, port, argv, REPO)
    try:
        server.wait_echoing(time.monotonic() + STARTUP_TIMEOUT)
    except BaseException:
        server.stop()
        raise
    return server


def parse(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in (item.split("=") for item in line.split())}


@dataclass
class Load:
    rate: float  # messages per second
    per_cpu: float  # messages per server CPU-second
    served: int
    conns: int
    errors: int


def run_load(
    client: Path, server: ServerProcess, conns: int, size: int, warmup: float, seconds: float
) -> Load:
    argv = [
        str(client),
        "load",
        HOST,
        str(server.port),
        str(conns),
        str(size),
        str(warmup),
        str(seconds),
    ]
    proc = subprocess.Popen(pinned(CLIENT_CPU, argv), stdout=subprocess.PIPE, text=True, env=LINES)
    assert proc.stdout is not None
    cpu0 = None
    result = None
    deadline = time.monotonic() + warmup + seconds + CLIENT_SLACK
    for line in proc.stdout:
        if line.startswith("measuring"):
            cpu0 = server.cpu_seconds()
        elif line.startswith("messages="):
            result = parse(line)
        if time.monotonic() > deadline:
            break
    cpu1 = server.cpu_seconds()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if result is None or cpu0 is None:
        raise BenchError(f"client against {server.name} printed no result:\n{server.tail()}")
    messages = result["messages"]
    return Load(
        rate=messages / result["seconds"],
        per_cpu=messages / max(cpu1 - cpu0, 1e-3),
        served=int(result["served"]),
        conns=conns,
        errors=int(result["errors"]),
    )


@dataclass
class Scale:
    connected: int = 0
    connect_failed: int = 0
    requests: int = 0
    failed: int = 0
    skipped: int = 0  # sends due while the last echo had not come back yet
    p99_ms: float = 0.0
    max_ms: float = 0.0
    rss_kib: int = 0
    base_kib: int = 0
    threads: int = 0

    @property
    def per_conn_kib(self) -> float:
        return (self.rss_kib - self.base_kib) / max(self.connected, 1)


def run_scale(client: Path, name: str, conns: int, seconds: float) -> Scale:
    server = start(name)
    scale = Scale(base_kib=server.status("VmRSS"))
    argv = [
        str(client),
        "scale",
        HOST,
        str(server.port),
        str(conns),
        "1024",
        str(seconds),
        "1",
        "5",
    ]
    proc = subprocess.Popen(pinned(CLIENT_CPU, argv), stdout=subprocess.PIPE, text=True, env=LINES)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("connected "):
                time.sleep(min(5.0, seconds / 2))  # steady state: every connection has echoed
                scale.rss_kib = server.status("VmRSS")
                scale.threads = server.status("Threads")
            elif line.startswith("connected="):
                fields = parse(line)
                scale.connected = int(fields["connected"])
                scale.connect_failed = int(fields["connect_failed"])
                scale.requests = int(fields["requests"])
                scale.failed = int(fields["failed"])
                scale.skipped = int(fields["skipped"])
                scale.p99_ms = fields["p99_ms"]
                scale.max_ms = fields["max_ms"]
        proc.wait(timeout=seconds + CLIENT_SLACK)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
    return scale


@dataclass
class Results:
    loads: dict[tuple[str, int], list[Load]] = field(default_factory=dict)

    def add(self, name: str, conns: int, load: Load) -> None:
        self.loads.setdefault((name, conns), []).append(load)

    def median(self, name: str, conns: int) -> float:
        return statistics.median(load.rate for load in self.loads[(name, conns)])

    def median_cpu(self, name: str, conns: int) -> float:
        return statistics.median(load.per_cpu for load in self.loads[(name, conns)])


def available(names: list[str]) -> list[str]:
    keep = []
    for name in names:
        if name == "gevent" and importlib.util.find_spec("gevent") is None:
            print("  (gevent is not installed: skipping it; `pip install gevent` to compare)")
            continue
        keep.append(name)
    return keep


def throughput(client: Path, args: argparse.Namespace, names: list[str]) -> Results:
    results = Results()
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        print(f"round {round_no + 1}/{args.rounds}: {', '.join(order)}")
        for name in order:
            try:
                server = start(name)
            except BenchError as exc:
                print(f"  ! {exc}")
                continue
            try:
                for conns in args.connections:
                    load = run_load(client, server, conns, args.size, args.warmup, args.duration)
                    results.add(name, conns, load)
                    print(
                        f"  {name:>9} {conns:>4} conns: {load.rate:9.0f} msg/s "
                        f"{load.per_cpu:9.0f} msg/cpu-s  served {load.served}/{conns}"
                    )
            finally:
                server.stop()
    return results


def report(
    results: Results, names: list[str], connections: list[int], baseline: str = BASELINE
) -> None:
    print(f"\nThroughput (median over rounds; ratio = msg/s vs {LABELS[baseline]},")
    print("in brackets the same for msg per server CPU-second, which noise moves less)")
    header = f"{'server':<32}" + "".join(f"{f'{c} conns':>30}" for c in connections)
    print(header)
    for name in names:
        row = f"{LABELS[name]:<32}"
        for conns in connections:
            if (name, conns) not in results.loads or (baseline, conns) not in results.loads:
                row += f"{'-':>30}"
                continue
            runs = results.loads[(name, conns)]
            rate, cpu = results.median(name, conns), results.median_cpu(name, conns)
            ratio = rate / results.median(baseline, conns)
            cpu_ratio = cpu / results.median_cpu(baseline, conns)
            served = min(load.served for load in runs)
            row += f"{rate:>9.0f} {ratio:5.2f}x ({cpu_ratio:4.2f}x) {served:>4}/{conns:<3}"
        print(row)
    print("(served: the fewest connections that completed any echo in a measured window)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", default="10,100")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--scale-servers", default=",".join(SCALE_SERVERS))
    parser.add_argument("--scale-conns", type=int, default=10_000)
    parser.add_argument("--scale-seconds", type=float, default=20.0)
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2 rounds x 1.5 s, 5 s scale run")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup, args.scale_seconds = 2, 1.5, 0.5, 5.0
    args.connections = [int(c) for c in args.connections.split(",")]
    client = build_client()
    byte_compile_portside()
    names = available(args.servers.split(","))
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}"
    )
    results = throughput(client, args, names)
    report(results, names, args.connections)
    if "stdlib128" in names:  # the baseline that serves every client, as portside's servers do
        report(results, names, args.connections, "stdlib128")
    if args.no_scale:
        return
    print(
        f"\nScale: {args.scale_conns} connections, one 1 KiB line per second each, "
        f"{args.scale_seconds:.0f} s"
    )
    for name in available(args.scale_servers.split(",")):
        try:
            scale = run_scale(client, name, args.scale_conns, args.scale_seconds)
        except BenchError as exc:
            print(f"  ! {name}: {exc}")
            continue
        print(
            f"  {LABELS[name]:<32} connected {scale.connected}/{args.scale_conns}"
            f" (refused {scale.connect_failed}), requests {scale.requests}, failed {scale.failed},"
            f" skipped {scale.skipped}, p99 {scale.p99_ms:.0f} ms,"
            f" slowest {scale.max_ms:.0f} ms, RSS {scale.rss_kib / 1024:.0f} MiB"
            f" = {scale.per_conn_kib:.1f} KiB/conn, {scale.threads} threads"
        )
    print(f"load avg now {os.getloadavg()[0]:.1f} (other work on these 2 CPUs skews every figure)")


if __name__ == "__main__":
    main()
