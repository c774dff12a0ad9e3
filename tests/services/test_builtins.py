"""The classic services over real loopback TCP and UDP, on both loops."""

from __future__ import annotations

import asyncio
import datetime
import socket
import struct
import time
from pathlib import Path
from typing import cast

import pytest

import portside
from portside import Limits, services
from portside.internet.protocol import Factory
from portside.services.builtins import (
    CHARGEN_CHUNK,
    DEFAULT_QUOTES,
    MAX_QUOTE,
    ChargenDatagram,
    Quote,
    daytime_text,
    load_quotes,
    time_bytes,
)
from tests.conftest import Run
from tests.core.support import eventually
from tests.services.support import (
    TCP,
    UDP,
    read_until_closed,
    server_side,
    udp_ask,
    udp_send,
)

# RFC 864's pattern, written out independently of the implementation: the 95 printable
# characters, line n starting at the n-th of them, 72 per line, CRLF.
PRINTABLE = bytes(range(32, 127))
LINE_ONE = b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg\r\n"


def pattern(length: int, first_line: int = 0) -> bytes:
    """``length`` bytes of the chargen stream that starts at line ``first_line``."""
    out = bytearray()
    line = first_line
    while len(out) < length:
        start = line % 95
        out += (PRINTABLE * 2)[start : start + 72] + b"\r\n"
        line += 1
    return bytes(out[:length])


def test_pattern_helper_matches_the_rfc() -> None:
    lines = pattern(96 * 74).split(b"\r\n")
    assert lines[0] + b"\r\n" == LINE_ONE
    assert lines[1] == b"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh"
    assert lines[94].startswith(b'~ !"#') and len(lines[94]) == 72
    assert lines[95] == lines[0]


# -- echo -------------------------------------------------------------------------------------


def test_echo_tcp_and_udp(run: Run) -> None:
    async def main() -> None:
        service = services.get("echo")
        async with portside.Server(service, TCP, UDP) as server:
            tcp, udp = server.addresses
            payload = bytes(range(256)) * 400  # 100 KiB, crosses many reads
            reader, writer = await asyncio.open_connection(tcp[0], tcp[1])
            writer.write(payload)
            assert await reader.readexactly(len(payload)) == payload
            writer.close()
            await writer.wait_closed()
            assert await udp_ask(udp, b"one", b"x" * 1400) == [b"one", b"x" * 1400]

    run(main())


def test_echo_stops_reading_a_client_that_does_not_read(run: Run) -> None:
    limits = Limits(write_buffer_high=16 * 1024, write_buffer_low=4 * 1024)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with portside.Server(services.get("echo"), TCP, limits=limits) as server:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await loop.sock_connect(sock, server.addresses[0])
            reader, writer = await asyncio.open_connection(sock=sock)
            client = cast(asyncio.Transport, writer.transport)
            client.pause_reading()  # the client does not read for now
            # 8 MB: more than the kernel buffers between us (about 3 MB here: the server's send
            # buffer grows to 4 MB at most), so the server's own buffer must fill
            payload = bytes(range(251)) * 32_000
            writer.write(payload)
            connection = await server_side(server)
            await eventually(lambda: connection.writing_paused)
            # the server stopped reading: its buffer holds at most one read beyond high water
            assert connection.write_buffer_size() <= limits.write_buffer_high + 256 * 1024
            received = connection.bytes_received
            assert received < len(payload)
            client.resume_reading()
            echoed = await reader.readexactly(1024 * 1024)
            assert echoed == payload[: len(echoed)]
            await eventually(lambda: connection.bytes_received > received)  # reading resumed
            client.abort()

    run(main())


# -- discard ----------------------------------------------------------------------------------


def test_discard_tcp_and_udp(run: Run) -> None:
    async def main() -> None:
        async with portside.Server(services.get("discard"), TCP, UDP) as server:
            tcp, udp = server.addresses
            assert await read_until_closed(tcp, b"dropped" * 1000) == b""
            await udp_send(udp, b"a", b"bc")
            await eventually(lambda: server.statistics().datagrams_received == 2)
            stats = server.statistics()
            assert stats.bytes_received == 7000 + 3
            assert stats.bytes_sent == 0 and stats.datagrams_sent == 0

    run(main())


# -- chargen ----------------------------------------------------------------------------------


def test_chargen_tcp_sends_the_rfc_pattern(run: Run) -> None:
    async def main() -> None:
        async with portside.Server(services.get("chargen"), TCP) as server:
            (tcp,) = server.addresses
            reader, writer = await asyncio.open_connection(tcp[0], tcp[1])
            writer.write(b"input is ignored\r\n")
            got = await reader.readexactly(3 * 95 * 74 + 100)  # three full rotations and more
            assert got[: len(LINE_ONE)] == LINE_ONE
            assert got == pattern(len(got))
            writer.close()
            await writer.wait_closed()
            await server.owner.wait_empty()  # the producer stopped with its connection

    run(main())


def test_chargen_udp_answers_each_datagram_with_up_to_512_bytes(run: Run) -> None:
    async def main() -> None:
        async with portside.Server(services.get("chargen"), UDP) as server:
            (udp,) = server.addresses
            answers = await udp_ask(udp, *[b"?"] * 120)
            assert all(len(a) <= 512 for a in answers)
            assert len({len(a) for a in answers}) > 1  # random lengths
            for line, answer in enumerate(answers):
                assert answer == pattern(len(answer), first_line=line)

    run(main())


def test_chargen_udp_full_answers_rotate_by_a_line(run: Run) -> None:
    async def main() -> None:
        protocol = ChargenDatagram(length=lambda: 10_000)  # clamped to the RFC's 512
        async with portside.Server(protocol, UDP) as server:
            (udp,) = server.addresses
            answers = await udp_ask(udp, *[b"?"] * 97)
            assert [len(a) for a in answers] == [512] * 97
            assert answers[0] == pattern(512)
            assert answers[1] == pattern(512, first_line=1)
            assert answers[95] == answers[0] and answers[96] == answers[1]

    run(main())


def test_chargen_to_a_client_that_never_reads_stays_bounded(run: Run) -> None:
    limits = Limits(write_buffer_high=32 * 1024, write_buffer_low=8 * 1024)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with portside.Server(services.get("chargen"), TCP, limits=limits) as server:
            (tcp,) = server.addresses
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, tcp)
                connection = await server_side(server)
                await eventually(lambda: connection.writing_paused)
                size, sent = connection.write_buffer_size(), connection.bytes_sent
                assert (
                    limits.write_buffer_high < size <= limits.write_buffer_high + len(CHARGEN_CHUNK)
                )
                for _ in range(50):  # loop turns while paused: nothing more is produced
                    await asyncio.sleep(0)
                assert (connection.bytes_sent, connection.write_buffer_size()) == (sent, size)

                # reading again drains the buffer, resumes the producer, and the stream is intact
                received = bytearray()
                while len(received) < sent + len(CHARGEN_CHUNK):
                    received += await loop.sock_recv(sock, 65536)
                assert connection.bytes_sent > sent
                assert received == pattern(len(received))
                assert server.statistics().write_pauses >= 1
            finally:
                sock.close()

    run(main())


def test_chargen_shutdown_with_a_stalled_reader_aborts_at_the_deadline(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = portside.Server(services.get("chargen"), TCP)
        await server.start()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, server.addresses[0])
            connection = await server_side(server)
            await eventually(lambda: connection.writing_paused)
            await server.shutdown(timeout=0.05)
            assert connection.closing and not server.owner.live
        finally:
            sock.close()

    run(main())


# -- daytime and time -------------------------------------------------------------------------


def _parse_daytime(answer: bytes) -> datetime.datetime:
    assert answer.endswith(b"\r\n")
    text = answer.decode("ascii")[:-2]
    stamp, _, zone = text.rpartition("-")
    assert zone
    return datetime.datetime.strptime(stamp, "%A, %B %d, %Y %H:%M:%S")


def test_daytime_tcp_and_udp(run: Run) -> None:
    async def main() -> None:
        async with portside.Server(services.get("daytime"), TCP, UDP) as server:
            tcp, udp = server.addresses
            tcp_answer = await read_until_closed(tcp)
            (udp_answer,) = await udp_ask(udp, b"what time is it?")
        now = datetime.datetime.now()
        for answer in (tcp_answer, udp_answer):
            assert abs((_parse_daytime(answer) - now).total_seconds()) < 5

    run(main())


def test_daytime_text_follows_the_rfc_example() -> None:
    moment = datetime.datetime(1982, 2, 22, 17, 37, 43).astimezone()
    text = daytime_text(moment.timestamp())
    assert text.startswith(b"Monday, February 22, 1982 17:37:43-")


def test_time_tcp_and_udp(run: Run) -> None:
    async def main() -> None:
        async with portside.Server(services.get("time"), TCP, UDP) as server:
            tcp, udp = server.addresses
            tcp_answer = await read_until_closed(tcp)
            (udp_answer,) = await udp_ask(udp, b"?")
        expected = int(time.time()) + 2_208_988_800
        for answer in (tcp_answer, udp_answer):
            assert len(answer) == 4
            (seconds,) = struct.unpack("!I", answer)
            assert abs(seconds - expected) <= 2

    run(main())


def test_time_bytes_is_32_bit_big_endian_since_1900() -> None:
    assert time_bytes(0) == struct.pack("!I", 2_208_988_800)
    assert time_bytes(-2_208_988_800) == b"\0\0\0\0"
    assert time_bytes(1.9) == time_bytes(1)
    # RFC 868's field wraps in February 2036
    wrap = 2**32 - 2_208_988_800
    assert time_bytes(wrap - 1) == b"\xff\xff\xff\xff"
    assert time_bytes(wrap) == b"\0\0\0\0"


# -- qotd -------------------------------------------------------------------------------------


def test_qotd_default_quotes(run: Run) -> None:
    async def main() -> None:
        async with portside.Server(services.get("qotd"), TCP, UDP) as server:
            tcp, udp = server.addresses
            assert await read_until_closed(tcp) in DEFAULT_QUOTES
            (answer,) = await udp_ask(udp, b"?")
            assert answer in DEFAULT_QUOTES

    run(main())


def test_qotd_serves_a_quote_file(run: Run, tmp_path: Path) -> None:
    quotes = tmp_path / "quotes.txt"
    quotes.write_text("First quote,\nover two lines.\n%\n\n%\nSecond: caf\u00e9.\n%\n")
    expected = {b"First quote,\r\nover two lines.\r\n", "Second: caf\u00e9.\r\n".encode()}
    service = services.get("qotd").with_options(quote_file=quotes)

    async def main() -> None:
        async with portside.Server(service, TCP, UDP) as server:
            tcp, udp = server.addresses
            seen = {await read_until_closed(tcp) for _ in range(12)}
            seen |= set(await udp_ask(udp, *[b"?"] * 12))
            assert seen == expected  # 24 random picks of two: both show up

    run(main())


def test_load_quotes_rejects_long_and_empty_files(tmp_path: Path) -> None:
    long = tmp_path / "long.txt"
    long.write_text("short\n%\n" + "x" * (MAX_QUOTE - 2) + "\n")
    with pytest.raises(ValueError, match=r"long.txt: the quote ending at line 3 has 512 bytes"):
        load_quotes(long)
    fits = tmp_path / "fits.txt"
    fits.write_text("x" * (MAX_QUOTE - 3))
    assert load_quotes(fits) == (b"x" * (MAX_QUOTE - 3) + b"\r\n",)
    empty = tmp_path / "empty.txt"
    empty.write_text("%\n\n%\n")
    with pytest.raises(ValueError, match="no quotes"):
        load_quotes(empty)


def test_a_bad_quote_file_fails_before_binding(tmp_path: Path) -> None:
    service = services.get("qotd").with_options(quote_file=tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError):
        portside.Server(service, TCP)


def test_quote_get_quote_can_be_overridden_as_in_twisted(run: Run) -> None:
    class Motto(Quote):
        def getQuote(self) -> bytes:
            return b"Keep it simple.\r\n"

    async def main() -> None:
        async with portside.Server(Factory.forProtocol(Motto), TCP) as server:
            assert await read_until_closed(server.addresses[0]) == b"Keep it simple.\r\n"

    run(main())
