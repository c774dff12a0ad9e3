"""The file server over real sockets with real clients: http.client, urllib, curl; both loops."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import portside._fileserver.site as site_module
from tests.conftest import Run, TLSFiles
from tests.fileserver.helpers import MEDIUM, SMALL, exchange, port_of, serving, status_of

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


def fetch_all(port: int, paths: list[str], method: str = "GET") -> list[tuple[int, Any, bytes]]:
    """Request ``paths`` over one http.client connection; (status, headers, body) each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    results = []
    try:
        for path in paths:
            conn.request(method, path)
            response = conn.getresponse()
            results.append((response.status, response.headers, response.read()))
    finally:
        conn.close()
    return results


def test_http_client_keep_alive(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            paths = ["/small.txt", "/medium.bin", "/small.txt", "/listed/", "/missing"]
            results = await asyncio.to_thread(fetch_all, port_of(server), paths)
            assert [r[0] for r in results] == [200, 200, 200, 200, 404]
            assert results[0][2] == SMALL and results[1][2] == MEDIUM
            assert b"A.txt" in results[3][2] and b"<h1>404 Not Found</h1>" in results[4][2]
            assert server.statistics().connections_total == 1  # one connection for all

    run(main())


def test_head_over_the_wire(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            results = await asyncio.to_thread(
                fetch_all, port_of(server), ["/medium.bin", "/small.txt"], "HEAD"
            )
            assert [(r[0], r[2]) for r in results] == [(200, b""), (200, b"")]
            assert results[0][1]["content-length"] == str(len(MEDIUM))

    run(main())


@pytest.mark.parametrize("sendfile", [True, False])
def test_large_file_both_ways(run: Run, tree: Path, sendfile: bool) -> None:
    big = bytes(range(256)) * 8192 * 3  # 6 MiB: several sendfile/read turns
    (tree / "big.bin").write_bytes(big)

    async def main() -> None:
        async with serving(tree, sendfile=sendfile) as server:
            results = await asyncio.to_thread(
                fetch_all, port_of(server), ["/big.bin", "/small.txt", "/big.bin"]
            )
            assert [r[2] for r in results] == [big, SMALL, big]
            assert all(r[0] == 200 for r in results)
            stats = server.statistics()
            assert stats.bytes_sent > 2 * len(big)

    run(main())


def test_accept_encoding_star_over_http_client(run: Run, tree: Path) -> None:
    """RFC 9110 12.5.3 on the wire: ``*`` picks a sibling, unless the coding is refused."""
    text = b"compress me " * 1000
    (tree / "text.txt").write_bytes(text)
    (tree / "text.txt.gz").write_bytes(gzip.compress(text))

    def get(accept: str) -> tuple[str | None, str | None, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/text.txt", headers={"Accept-Encoding": accept})
            response = conn.getresponse()
            body = response.read()
            return response.getheader("content-encoding"), response.getheader("vary"), body
        finally:
            conn.close()

    async def main() -> None:
        nonlocal port
        async with serving(tree) as server:
            port = port_of(server)
            coding, vary, body = await asyncio.to_thread(get, "*")
            assert (coding, vary) == ("gzip", "accept-encoding") and gzip.decompress(body) == text
            coding, vary, body = await asyncio.to_thread(get, "gzip;q=0, *")
            assert (coding, vary, body) == (None, "accept-encoding", text)
            coding, _, body = await asyncio.to_thread(get, "*;q=0")
            assert (coding, body) == (None, text)

    port = 0
    run(main())


def test_big_listing_does_not_block_others(
    run: Run, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing is built in a thread: others are served while it is (held) in progress."""
    many = tree / "many"
    many.mkdir()
    for i in range(2000):
        (many / f"file-{i:04d}.txt").write_bytes(b"")
    gate = threading.Event()
    real_scan = site_module.scan

    def held_scan(*args: Any) -> Any:
        gate.wait(5)  # on the event loop's thread this would stall every client for 5 s
        return real_scan(*args)

    monkeypatch.setattr(site_module, "scan", held_scan)
    close = b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    async def main() -> None:
        async with serving(tree) as server:
            port = port_of(server)
            listing = asyncio.create_task(exchange(port, b"GET /many/" + close))
            small = await exchange(port, b"GET /small.txt" + close)
            assert status_of(small) == 200 and small.endswith(SMALL)
            assert not listing.done()
            gate.set()
            page = await listing
            assert status_of(page) == 200
            assert page.count(b"file-") == 2 * 2000  # each name: link and label

    try:
        run(main())
    finally:
        gate.set()


def test_urllib(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            base = f"http://127.0.0.1:{port_of(server)}"

            def get(path: str) -> tuple[int, bytes]:
                try:
                    with urllib.request.urlopen(base + path, timeout=5) as response:
                        return response.status, response.read()
                except urllib.error.HTTPError as error:
                    return error.code, error.read()

            assert await asyncio.to_thread(get, "/small.txt") == (200, SMALL)
            status, page = await asyncio.to_thread(get, "/with%20index")  # redirect followed
            assert (status, page) == (200, b"<h1>index</h1>")
            status, page = await asyncio.to_thread(get, "/.env")
            assert status == 404 and b"404" in page

    run(main())


def test_max_requests_closes_the_connection(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree, max_requests=2) as server:
            get = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
            data = await exchange(port_of(server), get * 3)
            assert data.count(b"HTTP/1.1 200 OK") == 2  # the third request is not answered
            first, second = data.split(b"HTTP/1.1 200 OK")[1:]
            assert b"connection: close" not in first and b"connection: close" in second

    run(main())


def test_keep_alive_timeout(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree, keep_alive_timeout=0.2) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            loop = asyncio.get_running_loop()
            started = loop.time()
            data = await asyncio.wait_for(reader.read(-1), 5)  # until the server closes
            assert data.endswith(SMALL) and 0.15 < loop.time() - started < 3
            writer.close()
            assert server.statistics().timeouts == 1

    run(main())


def test_pipelined_requests_answered_in_order(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            requests = b"".join(
                b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % name
                for name in (b"medium.bin", b"small.txt", b"medium.bin", b"missing")
            )
            data = await exchange(
                port_of(server),
                requests + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            positions = [
                data.find(MEDIUM),
                data.find(SMALL),
                data.rfind(MEDIUM),
                data.find(b"HTTP/1.1 404"),
            ]
            assert positions == sorted(positions) and -1 not in positions
            assert data.count(b"HTTP/1.1 ") == 5

    run(main())


def test_pipelined_requests_wait_for_a_listing(run: Run, tree: Path) -> None:
    """A listing built in a thread keeps its place: what follows it is answered after it."""

    async def main() -> None:
        async with serving(tree) as server:
            requests = b"".join(
                b"%s /%s HTTP/1.1\r\nHost: x\r\n\r\n" % pair
                for pair in ((b"GET", b"listed/"), (b"GET", b"small.txt"), (b"HEAD", b"listed/"))
            )
            last = b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            data = await exchange(port_of(server), requests + last)
            assert data.count(b"HTTP/1.1 200 OK\r\n") == 4
            listing, rest = data.split(SMALL, 1)
            assert b"A.txt" in listing and b"A.txt" not in rest  # HEAD: no body
            assert rest.endswith(SMALL)

    run(main())


def test_http_1_0_client(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            data = await exchange(port_of(server), b"GET /small.txt HTTP/1.0\r\n\r\n")
            assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(SMALL)
            assert b"connection: close" in data

    run(main())


def test_tls(run: Run, tree: Path, tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tree, tls_files.endpoint()) as server:
            context = tls_files.client_context()

            def get() -> list[bytes]:
                conn = http.client.HTTPSConnection(
                    "127.0.0.1", port_of(server), timeout=5, context=context
                )
                try:
                    bodies = []
                    for path in ("/medium.bin", "/small.txt"):
                        conn.request("GET", path)
                        bodies.append(conn.getresponse().read())
                    return bodies
                finally:
                    conn.close()

            assert await asyncio.to_thread(get) == [MEDIUM, SMALL]

    run(main())


def test_unix_socket(run: Run, tree: Path, tmp_path: Path) -> None:
    path = tmp_path / "http.sock"

    async def main() -> None:
        async with serving(tree, f"unix:{path}"):
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b"GET /medium.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(-1), 5)
            writer.close()
            assert status_of(data) == 200 and data.endswith(MEDIUM)

    run(main())


def test_graceful_shutdown(run: Run, tree: Path, sparse_file: Path) -> None:
    """Idle connections close at once; a download in progress finishes first."""

    async def main() -> None:
        async with serving(tree) as server:
            port = port_of(server)
            idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /medium.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert b"200 OK" in head
            await asyncio.sleep(0)
            stopping = asyncio.ensure_future(server.shutdown(5))
            assert await asyncio.wait_for(idle_reader.read(), 5) == b""  # closed at once
            body = await asyncio.wait_for(reader.read(-1), 5)
            assert body == MEDIUM  # the response in flight finished, then the close
            await stopping
            idle_writer.close()
            writer.close()

    run(main())


# -- curl -------------------------------------------------------------------------------------


async def curl(*args: str) -> tuple[bytes, bytes]:
    """Run curl with ``args``; returns (stdout, stderr)."""
    assert CURL is not None
    process = await asyncio.create_subprocess_exec(
        CURL, "-sS", "--max-time", "10", *args, stdout=-1, stderr=-1
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    return out, err


@needs_curl
def test_curl_ranges(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            url = f"http://127.0.0.1:{port_of(server)}/medium.bin"
            out, _ = await curl("-r", "100-199", url)
            assert out == MEDIUM[100:200]
            out, _ = await curl("-r", "0-9,-10", "-D", "-", url)
            assert b"206 Partial Content" in out and b"multipart/byteranges" in out
            assert MEDIUM[:10] in out and MEDIUM[-10:] in out
            out, _ = await curl("-r", "999999999-", "-w", "%{http_code}", "-o", "/dev/null", url)
            assert out == b"416"

    run(main())


@needs_curl
def test_curl_conditional(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            url = f"http://127.0.0.1:{port_of(server)}/small.txt"
            head, _ = await curl("-I", url)
            etag = next(
                line.split(b":", 1)[1].strip()
                for line in head.splitlines()
                if line.lower().startswith(b"etag:")
            )
            code = ("-w", "%{http_code}", "-o", "/dev/null")
            out, _ = await curl(*code, "-H", f"If-None-Match: {etag.decode()}", url)
            assert out == b"304"
            out, _ = await curl(*code, "-z", str(tree / "small.txt"), url)  # If-Modified-Since
            assert out == b"304"
            out, _ = await curl(*code, "-H", 'If-Match: "nope"', url)
            assert out == b"412"

    run(main())


@needs_curl
def test_curl_compression_and_keep_alive(run: Run, tree: Path) -> None:
    text = b"compress me " * 1000
    (tree / "text.txt").write_bytes(text)
    (tree / "text.txt.gz").write_bytes(gzip.compress(text))

    async def main() -> None:
        async with serving(tree) as server:
            base = f"http://127.0.0.1:{port_of(server)}"
            out, _ = await curl("--compressed", f"{base}/text.txt")
            assert out == text
            out, _ = await curl("-D", "-", "-o", "/dev/null", "--compressed", f"{base}/text.txt")
            assert b"content-encoding: gzip" in out.lower() and b"vary: accept-encoding" in out
            out, err = await curl("-v", f"{base}/small.txt", f"{base}/small.txt")
            assert out == SMALL * 2
            assert b"Re-using existing connection" in err or b"Reusing existing" in err
            assert server.statistics().connections_total == 3

    run(main())
