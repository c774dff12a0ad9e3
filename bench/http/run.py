"""HTTP static file benchmark: portside's file server against its peers, with wrk.

Usage:
    python bench/http/run.py                 3 rounds x 5 s per server and file
    python bench/http/run.py --quick         2 rounds x 2 s
    python bench/http/run.py --servers portside,nginx --sizes 1k --rounds 5

Servers: nginx (one worker, sendfile on, access_log off: the practical limit), portside,
python -m http.server as users run it (HTTP/1.0) and with -p HTTP/1.1, Twisted's
static.File, aiohttp's web.static on uvloop. Each serves a 1 KiB and a 1 MiB file to
``wrk -t1 -c50``; every server runs pinned to CPU 0 and wrk to CPU 1. Rounds are
interleaved (every round starts each server in turn, rotating the order) and the table
shows medians, so drifting background load lands on all servers alike. Besides requests per
second and p99 latency it reports the server's own CPU time per request, which background
load disturbs much less than throughput. See README.md next to this file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import (
    CLIENT_CPU,
    HOST,
    REPO,
    SERVER_CPU,
    BenchError,
    busy_seconds,
    byte_compile_portside,
    cpu_seconds,
    free_port,
    pinned,
    stop_process,
)

HERE = Path(__file__).resolve().parent
ALL_SERVERS = ("nginx", "portside", "stdlib", "stdlib-1.1", "twisted", "aiohttp")
SIZES = {"1k": 1024, "1m": 1024 * 1024}
# The targets: portside against nginx (ratio of requests per second) and against
# the Python servers.
TARGETS = {
    ("1k", "nginx"): 0.5,
    ("1m", "nginx"): 0.95,
    ("1k", "stdlib"): 8.0,
    ("1k", "twisted"): 4.0,
    ("1k", "aiohttp"): 4.0,
}
NOISY = 0.3  # CPU (in cores) used by other processes during a run that makes it "noisy"


@dataclass
class Result:
    """One wrk run against one server and file."""

    server: str
    size: str
    requests_per_s: float
    bytes_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float
    other_cpu: float  # cores used by everything but the server and wrk


def nginx_config(directory: Path, port: int, work: Path) -> Path:
    config = work / f"nginx-{port}.conf"
    temp = work / "nginx-temp"
    temp.mkdir(exist_ok=True)
    config.write_text(
        f"""worker_processes 1;
master_process off;
daemon off;
pid {work}/nginx-{port}.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    client_body_temp_path {temp}; proxy_temp_path {temp}; fastcgi_temp_path {temp};
    uwsgi_temp_path {temp}; scgi_temp_path {temp};
    server {{ listen {HOST}:{port}; root {directory}; }}
}}
"""
    )
    return config


def command(name: str, python: str, directory: Path, port: int, work: Path) -> list[str]:
    if name == "nginx":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-c", str(nginx_config(directory, port, work)), "-p", str(work)]
    if name in ("stdlib", "stdlib-1.1"):
        args = [python, "-m", "http.server", str(port), "-b", HOST, "-d", str(directory)]
        return [*args, "-p", "HTTP/1.1"] if name == "stdlib-1.1" else args
    return [python, str(HERE / "servers.py"), name, str(directory), str(port)]


@contextlib.contextmanager
def running(name: str, python: str, directory: Path, work: Path) -> Iterator[tuple[int, int]]:
    """Start server ``name`` pinned to CPU 0; yields (pid, port); stops it by its pid."""
    port = free_port()
    argv = pinned(SERVER_CPU, command(name, python, directory, port, work))
    log = (work / f"{name}.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=str(work))
    try:
        wait_ready(process, port, work / f"{name}.log")
        yield process.pid, port
    finally:
        stop_process(process, name)
        log.close()


def wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"exited with {process.returncode}: {log.read_text()[-500:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/1k.bin", timeout=1) as response:
                if response.status == 200 and len(response.read()) == SIZES["1k"]:
                    return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"not answering on port {port} after 15 s")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    """A wrk duration (``850.00us``, ``1.20ms``, ``2.00s``) in milliseconds; NaN if odd."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(match[1]) * _UNITS[match[2]] if match else float("nan")


def wrk(port: int, size: str, duration: float, connections: int) -> dict[str, float]:
    url = f"http://{HOST}:{port}/{size}.bin"
    argv = pinned(CLIENT_CPU, ["wrk", "-t1", f"-c{connections}"])
    argv += [f"-d{max(1, round(duration))}s", "--latency", "--timeout", "5s", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    try:
        requests = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
        count = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
        # anchored: a "+/- Stdev" column such as "62.50%" must not pass for the 50th percentile
        p50 = _ms(re.search(r"(?m)^\s+50%\s+(\S+)", out)[1])  # type: ignore[index]
        p99 = _ms(re.search(r"(?m)^\s+99%\s+(\S+)", out)[1])  # type: ignore[index]
    except TypeError:
        raise BenchError(f"cannot read wrk's output:\n{out}") from None
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx[1]) if non2xx else 0
    return {"rps": requests, "count": count, "p50": p50, "p99": p99, "errors": errors}


def measure(name: str, pid: int, port: int, size: str, args: argparse.Namespace) -> Result:
    wrk(port, size, args.warmup, args.connections)
    server_before, machine_before = cpu_seconds(pid), busy_seconds()
    wrk_started = time.monotonic()
    run = wrk(port, size, args.duration, args.connections)
    elapsed = time.monotonic() - wrk_started
    server_cpu = cpu_seconds(pid) - server_before
    machine_cpu = busy_seconds() - machine_before
    # wrk's own CPU is not measured directly; at most one core (it is one thread).
    other = max(0.0, (machine_cpu - server_cpu) / elapsed - 1.0)
    return Result(
        server=name,
        size=size,
        requests_per_s=run["rps"],
        bytes_per_s=run["rps"] * SIZES[size],
        p50_ms=run["p50"],
        p99_ms=run["p99"],
        errors=int(run["errors"]),
        cpu_us_per_request=server_cpu / max(run["count"], 1) * 1e6,
        other_cpu=other,
    )


def median_results(results: list[Result], server: str, size: str) -> Result | None:
    runs = [r for r in results if r.server == server and r.size == size]
    if not runs:
        return None
    return Result(
        server=server,
        size=size,
        requests_per_s=statistics.median(r.requests_per_s for r in runs),
        bytes_per_s=statistics.median(r.bytes_per_s for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        errors=sum(r.errors for r in runs),
        cpu_us_per_request=statistics.median(r.cpu_us_per_request for r in runs),
        other_cpu=max(r.other_cpu for r in runs),
    )


def report(results: list[Result], servers: list[str], sizes: list[str]) -> None:
    for size in sizes:
        rows = [m for s in servers if (m := median_results(results, s, size)) is not None]
        nginx = next((r for r in rows if r.server == "nginx"), None)
        ours = next((r for r in rows if r.server == "portside"), None)
        print(f"\n{size} file: medians over rounds")
        print(
            f"{'server':<11} {'req/s':>9} {'MB/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'CPU us/req':>10} {'errors':>6} {'x nginx':>7} {'portside x':>10} {'noise':>6}"
        )
        for r in rows:
            vs_nginx = f"{r.requests_per_s / nginx.requests_per_s:.2f}" if nginx else "-"
            vs_us = f"{ours.requests_per_s / r.requests_per_s:.1f}" if ours else "-"
            noisy = "noisy" if r.other_cpu > NOISY else ""
            print(
                f"{r.server:<11} {r.requests_per_s:>9.0f} {r.bytes_per_s / 1e6:>8.1f} "
                f"{r.p50_ms:>7.2f} {r.p99_ms:>7.2f} {r.cpu_us_per_request:>10.1f} "
                f"{r.errors:>6} {vs_nginx:>7} {vs_us:>10} {noisy:>6}"
            )
    print(
        "\nTargets: portside's req/s over the other's, and the same ratio from CPU time per"
        "\nrequest (the other's over portside's: what each would reach alone on a core)"
    )
    for (size, other), target in TARGETS.items():
        ours = median_results(results, "portside", size)
        theirs = median_results(results, other, size)
        if ours is None or theirs is None:
            continue
        ratio = ours.requests_per_s / theirs.requests_per_s
        by_cpu = theirs.cpu_us_per_request / ours.cpu_us_per_request
        verdict = "met" if ratio >= target else "NOT met"
        print(
            f"  {size} vs {other:<8} {ratio:6.2f}x  by CPU {by_cpu:6.2f}x  "
            f"(target >= {target}x)  {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 rounds x 2 s")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--servers", default=",".join(ALL_SERVERS))
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument("--json", help="also write the raw results to this file")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 2, 2
    servers = args.servers.split(",")
    sizes = args.sizes.split(",")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (apt-get install wrk util-linux)", file=sys.stderr)
            return 2
    if (
        "nginx" in servers
        and shutil.which("nginx") is None
        and not Path("/usr/sbin/nginx").exists()
    ):
        print("nginx is not installed: running without it", file=sys.stderr)
        servers.remove("nginx")
    try:
        byte_compile_portside(args.python)
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 2
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="portside-bench-http-") as temp:
        work = Path(temp)
        directory = work / "www"
        directory.mkdir()
        for size, length in SIZES.items():
            (directory / f"{size}.bin").write_bytes(os.urandom(length))
        broken: set[str] = set()
        for round_number in range(args.rounds):
            order = servers[round_number % len(servers) :] + servers[: round_number % len(servers)]
            for name in order:
                if name in broken:
                    continue
                try:
                    with running(name, args.python, directory, work) as (pid, port):
                        for size in sizes:
                            result = measure(name, pid, port, size, args)
                            results.append(result)
                            print(
                                f"round {round_number + 1} {name:<11} {size}: "
                                f"{result.requests_per_s:9.0f} req/s  p99 "
                                f"{result.p99_ms:6.2f} ms  {result.cpu_us_per_request:7.1f} "
                                f"CPU us/req  other load {result.other_cpu:.2f}",
                                flush=True,
                            )
                except BenchError as error:
                    print(f"{name}: skipped: {error}", file=sys.stderr)
                    broken.add(name)
    report(results, [s for s in servers if s not in broken], sizes)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
