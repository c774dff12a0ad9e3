"""A green socket's reads under hypothesis: whatever the peer sends, in whatever pieces, and
however the handler mixes ``readline``, ``read``, ``recv`` (plain, peeking, waiting for all)
and ``recv_into``, every call returns what a blocking socket read through one shared buffer
would, and the bytes come out whole and in order.

The peer is an in-memory transport fed one piece per loop turn, so reads meet data split
anywhere, the read high-water mark (the transport pauses and resumes), and end-of-file.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portside._socketserver.channel import READ_HIGH_WATER, StreamChannel
from portside._socketserver.greensock import ChannelSocket
from portside._socketserver.waiting import spawn
from portside.core.connection import ConnectionOwner
from portside.core.loop import new_event_loop
from portside.testing import MemoryTransport

from ..conftest import LOOP_KINDS

pytest.importorskip("greenlet")

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ATOMS = [b"\n", b"\r\n", b"a", b"line\n", b"x" * 100, b"\x00"]
piece_st = st.one_of(
    st.lists(st.sampled_from(ATOMS), min_size=1, max_size=12).map(b"".join),
    st.integers(min_value=1, max_value=READ_HIGH_WATER + 4096).map(lambda n: b"y" * n + b"\n"),
)
size_st = st.integers(min_value=-1, max_value=200)
op_st = st.one_of(
    st.tuples(st.just("readline"), size_st),
    st.tuples(st.just("read"), size_st),
    st.tuples(st.sampled_from(["recv", "peek", "waitall", "recv_into"]), st.integers(1, 300)),
)


def serve_reads(loop_kind: str, pieces: list[bytes], ops: list[tuple[str, int]]) -> list[Any]:
    """Run ``ops`` on a green socket while the peer sends ``pieces`` then end-of-file."""
    results: list[Any] = []

    def handler(sock: ChannelSocket, done: asyncio.Event) -> None:
        rfile = sock.makefile("rb")
        try:
            for op, size in ops:
                if op == "readline":
                    results.append(rfile.readline(size))
                elif op == "read":
                    results.append(rfile.read(size))
                elif op == "recv":
                    results.append(sock.recv(size))
                elif op == "peek":
                    results.append(sock.recv(size, socket.MSG_PEEK))
                elif op == "waitall":
                    results.append(sock.recv(size, socket.MSG_WAITALL))
                else:
                    buffer = bytearray(size)
                    results.append(bytes(buffer[: sock.recv_into(buffer)]))
            results.append(rfile.read())  # and whatever is left, to the end
        finally:
            done.set()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        channel = StreamChannel(ConnectionOwner(), ("peer", 1))
        transport = MemoryTransport(channel)
        channel.connection_made(transport)
        home = SimpleNamespace(loop_thread=threading.get_ident())
        done = asyncio.Event()
        spawn(loop, handler, ChannelSocket(channel, home, socket.AF_INET), done)
        for piece in pieces:
            transport.feed(piece)
            await asyncio.sleep(0)  # one loop turn: the handler reads what has come so far
        transport.feed_eof()
        await asyncio.wait_for(done.wait(), 30)
        transport.close()

    loop = new_event_loop(loop_kind)
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    return results


def check(stream: bytes, ops: list[tuple[str, int]], results: list[Any]) -> None:
    """Each result is what a blocking read of ``stream`` from the current position returns."""
    position = 0
    for (op, size), got in zip(ops, results, strict=False):
        rest = stream[position:]
        if op == "readline":
            line = rest[: rest.find(b"\n") + 1] if b"\n" in rest else rest
            assert got == (line if size < 0 else line[:size]), (op, size)
        elif op == "read" or op == "waitall":
            assert got == (rest if size < 0 else rest[:size]), (op, size)
        else:  # recv, peek, recv_into: at least one byte unless at the end, at most size
            assert got == rest[: len(got)] and (0 < len(got) <= size or not rest), (op, size)
        if op != "peek":
            position += len(got)
    assert results[-1] == stream[position:]  # nothing lost, nothing repeated


@pytest.mark.parametrize("loop_kind", LOOP_KINDS)
@FUZZ
@given(pieces=st.lists(piece_st, max_size=8), ops=st.lists(op_st, max_size=12))
def test_reads_return_what_a_blocking_socket_would(
    loop_kind: str, pieces: list[bytes], ops: list[tuple[str, int]]
) -> None:
    results = serve_reads(loop_kind, pieces, ops)
    assert len(results) == len(ops) + 1
    check(b"".join(pieces), ops, results)
