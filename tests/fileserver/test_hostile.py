"""Clients that attack or misbehave: slowloris, oversize heads, smuggling, traversal, stalled
readers and resets. The server must answer as documented, stay bounded, and keep serving."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from pathlib import Path

import pytest

from portside._fileserver.connection import MAX_BACKLOG, FileConnection
from portside._fileserver.sender import CHUNK
from portside.config import Limits
from portside.core.server import Server
from tests.conftest import Run
from tests.fileserver.helpers import MEDIUM, SMALL, exchange, port_of, serving, status_of

GET_SMALL = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
CLOSE_SMALL = b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
CHUNKED_TOO_BIG = (
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + (b"100000\r\n" + b"a" * 0x100000 + b"\r\n") * 2
)


async def get_small(port: int) -> bytes:
    data = await exchange(port, GET_SMALL, until_close=False)
    assert status_of(data) == 200 and data.endswith(SMALL), data[:100]
    return data


def test_slowloris(run: Run, tree: Path) -> None:
    """Many clients trickling a head: others are served meanwhile; the tricklers get 408 and
    are dropped at the header timeout although they never stop sending."""

    async def trickle(port: int, stop: asyncio.Event) -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(b"GET / HTTP/1.1\r\n")
        received = b""
        read = asyncio.ensure_future(reader.read(-1))
        while not read.done() and not stop.is_set():
            with contextlib.suppress(OSError):
                writer.write(b"X-a: b\r\n")  # always more, never the end of the head
            await asyncio.wait([read], timeout=0.05)
        received = await read
        writer.close()
        return received, loop.time() - started

    async def main() -> None:
        async with serving(tree, header_timeout=0.5) as server:
            port = port_of(server)
            stop = asyncio.Event()
            attackers = [asyncio.ensure_future(trickle(port, stop)) for _ in range(50)]
            await asyncio.sleep(0.1)
            for _ in range(5):  # honest clients are served during the attack
                await asyncio.wait_for(get_small(port), 1.0)
            results = await asyncio.wait_for(asyncio.gather(*attackers), 5)
            stop.set()
            for received, elapsed in results:
                assert status_of(received) == 408 and b"connection: close" in received
                assert 0.4 < elapsed < 3.0
            assert server.statistics().timeouts >= 50

    run(main(), timeout=15)


def test_silent_connection_is_closed_without_an_answer(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree, header_timeout=0.2) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            assert await asyncio.wait_for(reader.read(-1), 3) == b""
            writer.close()

    run(main())


def test_slow_body_is_cut_off(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree, header_timeout=0.2) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12")
            assert await asyncio.wait_for(reader.read(-1), 3) == b""  # never answered
            writer.close()

    run(main())


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", 413),
        (CHUNKED_TOO_BIG, 413),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ],
    ids=["line", "header-block", "header-count", "body", "chunked-body", "version", "coding"],
)
def test_oversize_and_unsupported(run: Run, tree: Path, request_bytes: bytes, status: int) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            data = await exchange(port_of(server), request_bytes)
            assert status_of(data) == status and b"connection: close" in data
            await get_small(port_of(server))  # and the server is fine

    run(main())


SMUGGLING = {
    "cl-and-te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-lengths": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "listed-lengths": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\nab",
    "length-not-a-number": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na",
    "te-last-not-chunked": b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    "te-in-http-1.0": b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n",
    "bad-name": b"GET / HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: x\n\n",
    "bad-chunk-size": b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk-without-crlf": b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"1\r\naXX",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_smuggling_shapes_get_400_and_close(run: Run, tree: Path, request_bytes: bytes) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            follow_up = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
            data = await exchange(port_of(server), request_bytes + follow_up)
            assert status_of(data) == 400, data[:200]
            assert data.count(b"HTTP/1.1 ") == 1  # nothing after the error is answered
            assert SMALL not in data

    run(main())


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/../outside.txt", 400),
        (b"/%2e%2e/outside.txt", 400),
        (b"/%2E%2e%2Foutside.txt", 400),
        (b"/%252e%252e/outside.txt", 404),
        (b"/..%2Foutside.txt", 400),
        (b"/small.txt%00", 400),
        (b"/%5C..%5Coutside.txt", 400),
        (b"/escape/outside.txt", 404),
        (b"/escape.txt", 404),
        (b"http://x/../outside.txt", 400),
    ],
)
def test_traversal(run: Run, tree: Path, target: bytes, status: int) -> None:
    (tree / "escape").symlink_to(tree.parent)
    (tree / "escape.txt").symlink_to(tree.parent / "outside.txt")

    async def main() -> None:
        async with serving(tree) as server:
            data = await exchange(
                port_of(server), b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target
            )
            assert status_of(data) == status
            assert b"outside the root" not in data

    run(main())


@pytest.mark.parametrize("sendfile", [True, False])
def test_client_that_stops_reading(run: Run, tree: Path, sparse_file: Path, sendfile: bool) -> None:
    """A 300 MiB download nobody reads: memory stays bounded, and send_timeout ends it."""
    limits = Limits(write_buffer_high=64 * 1024, write_buffer_low=16 * 1024)

    async def main() -> None:
        async with serving(tree, limits=limits, sendfile=sendfile, send_timeout=0.6) as server:
            sock = socket.create_connection(("127.0.0.1", port_of(server)))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            conn = await wait_for_connection(server)
            previous = -1
            while conn.bytes_sent != previous:  # until the socket buffers are full
                previous = conn.bytes_sent
                await asyncio.sleep(0.05)
            assert conn.write_buffer_size() <= limits.write_buffer_high + CHUNK
            assert conn.bytes_sent < 32 * 1024 * 1024  # kernel buffers, not the 300 MiB file
            loop = asyncio.get_running_loop()
            started = loop.time()
            await asyncio.wait_for(server.owner.wait_empty(), 5)  # aborted at send_timeout
            assert loop.time() - started < 2.0
            assert server.statistics().timeouts == 1
            sock.close()

    run(main())


async def wait_for_connection(server: Server) -> FileConnection:
    for _ in range(200):
        for conn in server.owner.live:
            if isinstance(conn, FileConnection) and conn.bytes_sent:
                return conn
        await asyncio.sleep(0.01)
    raise AssertionError("no connection started sending")


@pytest.mark.parametrize("sendfile", [True, False])
def test_clients_that_reset_mid_response(
    run: Run, tree: Path, sparse_file: Path, sendfile: bool
) -> None:
    async def reset_after_some(port: int, target: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target)
        await reader.readexactly(1000)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, with the response still coming

    async def main() -> None:
        async with serving(tree, sendfile=sendfile) as server:
            port = port_of(server)
            targets = [b"/huge.bin", b"/medium.bin"] * 10
            await asyncio.gather(*(reset_after_some(port, t) for t in targets))
            await asyncio.wait_for(server.owner.wait_empty(), 5)
            await get_small(port)
            assert server.statistics().errors == 0

    run(main())


def test_connection_limit(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree, limits=Limits(max_connections=3)) as server:
            port = port_of(server)
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            await asyncio.sleep(0.05)
            waiting = asyncio.ensure_future(get_small(port))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # queued in the backlog, not served
            held[0][1].close()
            await asyncio.wait_for(waiting, 3)
            for _, writer in held[1:]:
                writer.close()

    run(main())


def test_request_body_is_read_and_dropped(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            body = b"x" * 5000
            request = b"GET /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(
                body
            )
            chunked = (
                b"GET /small.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\nTrailer: 1\r\n\r\n"
            )
            data = await exchange(port_of(server), request + body + chunked + CLOSE_SMALL)
            assert data.count(SMALL) == 3 and data.count(b"connection: close") == 1
            post = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            data = await exchange(port_of(server), post + CLOSE_SMALL)
            assert status_of(data) == 405 and data.endswith(SMALL)

    run(main())


def test_expect_100_continue_is_answered_at_once(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            request = (
                b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            data = await exchange(port_of(server), request)  # the body is never sent
            assert status_of(data) == 405 and b"connection: close" in data

    run(main())


def test_access_log_escapes_what_clients_send(
    run: Run, tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with serving(tree, access_log=True) as server:
            port = port_of(server)
            await exchange(
                port, b'GET /small.txt?"x\\y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
            )
            await exchange(port, b"GET /\x1b[31mred HTTP/1.1\r\nHost: x\r\n\r\n")
            await exchange(
                port, b"GET /medium.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )

    with caplog.at_level("INFO", logger="portside.access"):
        run(main())
    lines = [r.getMessage() for r in caplog.records if r.name == "portside.access"]
    assert len(lines) == 3, lines
    assert lines[0].startswith("127.0.0.1 - - [")
    assert lines[0].endswith(f'"GET /small.txt?\\x22x\\x5Cy HTTP/1.1" 200 {len(SMALL)}')
    assert "\x1b" not in lines[1] and '"GET /\\x1B[31mred HTTP/1.1" 400 ' in lines[1]
    assert lines[2].endswith(f'"GET /medium.bin HTTP/1.1" 200 {len(MEDIUM)}')


def test_half_close_mid_head_is_answered_and_closed_at_once(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n")
            writer.write_eof()
            loop = asyncio.get_running_loop()
            started = loop.time()
            data = await asyncio.wait_for(reader.read(-1), 5)
            assert status_of(data) == 400 and loop.time() - started < 1.0  # no lingering
            writer.close()

    run(main())


def test_half_close_after_a_request_still_gets_the_answer(run: Run, tree: Path) -> None:
    async def main() -> None:
        async with serving(tree) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(b"GET /medium.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            writer.write_eof()
            data = await asyncio.wait_for(reader.read(-1), 5)
            assert status_of(data) == 200 and data.endswith(MEDIUM)
            writer.close()

    run(main())


@pytest.mark.parametrize("sendfile", [True, False])
def test_file_truncated_while_sent(
    run: Run, tree: Path, sendfile: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that shrinks mid-response cannot fill its Content-Length: the connection is
    aborted (the client sees a short body), and the server goes on serving."""
    path = tree / "shrinking.bin"
    path.write_bytes(b"x" * (8 * 1024 * 1024))

    async def main() -> None:
        async with serving(tree, sendfile=sendfile) as server:
            port = port_of(server)
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            sock.sendall(b"GET /shrinking.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            await wait_for_connection(server)
            with path.open("r+b") as f:
                f.truncate(1000)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            received = 0
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), 5):
                received += len(chunk)
            sock.close()
            assert received < 8 * 1024 * 1024
            await get_small(port)

    with caplog.at_level("WARNING", logger="portside.http"):
        run(main())
    assert any("got shorter" in r.getMessage() for r in caplog.records)


def test_pipelined_flood_behind_a_slow_response_pauses_reading(
    run: Run, tree: Path, sparse_file: Path
) -> None:
    """Requests piling up behind a response in progress are not read without bound."""

    async def main() -> None:
        async with serving(tree) as server:
            sock = socket.create_connection(("127.0.0.1", port_of(server)))
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                sock.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                conn = await wait_for_connection(server)
                sock.setblocking(False)
                flood = GET_SMALL * 100_000  # 3.5 MB of pipelined requests
                sent = 0
                for _ in range(100):
                    try:
                        sent += sock.send(flood[sent : sent + 65536])
                    except BlockingIOError:
                        await asyncio.sleep(0.01)
                    else:
                        await asyncio.sleep(0)
                    if sent == len(flood):
                        break
                await asyncio.sleep(0.1)
                assert sent > 2 * MAX_BACKLOG
                # what the kernel holds is not ours; what the server read stops near the mark
                assert MAX_BACKLOG < conn._http.buffered <= MAX_BACKLOG + 512 * 1024
            finally:
                sock.close()

    run(main())
