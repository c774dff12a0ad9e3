"""The output side under hypothesis, against the 3.11 standard library's: asynchat's pushes
of any size, producers, ``close_when_done`` and ``discard_buffers``, with any
``ac_out_buffer_size``, and ``dispatcher_with_send``'s sends larger than the socket buffer to a
peer that reads or not, put the same bytes on the wire in every ``loop(count=1)`` iteration.
"""

from __future__ import annotations

import socket
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portside import asynchat, asyncore

from .differential import stdlib_module

REFERENCE_CHAT = stdlib_module("asynchat")
REFERENCE_CORE = stdlib_module("asyncore")

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(REFERENCE_CHAT is None, reason="the stdlib's asynchat is gone (3.12+)"),
]

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

action_st = st.one_of(
    st.integers(min_value=0, max_value=300).map(lambda n: ("push", n)),
    st.tuples(st.just("producer"), st.integers(0, 300), st.sampled_from([1, 10, 512])),
    st.sampled_from([("close_when_done",), ("discard",), ("nothing",), ("nothing",)]),
)


def drain(peer: socket.socket) -> bytes:
    """Everything the non-blocking ``peer`` can read now (stops at end-of-file too)."""
    got = b""
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return got
        if not chunk:
            return got
        got += chunk


def run(chat: Any, core: Any, out_size: int, actions: list[Any]) -> list[Any]:
    """Per iteration: what the peer received, and whether the channel is closed."""

    class Talker(chat.async_chat):  # type: ignore[name-defined, misc]
        ac_out_buffer_size = out_size

        def collect_incoming_data(self, data: bytes) -> None:
            pass

        def found_terminator(self) -> None:
            pass

    ours, peer = socket.socketpair()
    socket_map: dict[int, Any] = {}
    talker = Talker(ours, map=socket_map)
    peer.setblocking(False)
    seen: list[Any] = []
    try:
        for number, action in enumerate(actions):
            data = bytes([65 + number % 26]) * (action[1] if len(action) > 1 else 0)
            if not socket_map:
                break
            if action[0] == "push":
                talker.push(data)
            elif action[0] == "producer":
                talker.push_with_producer(chat.simple_producer(data, action[2]))
            elif action[0] == "close_when_done":
                talker.close_when_done()
            elif action[0] == "discard":
                talker.discard_buffers()
            core.loop(timeout=0.005, map=socket_map, count=1)
            seen.append(drain(peer))
            seen.append(not socket_map)
    finally:
        core.close_all(socket_map)
        peer.close()
    return seen


@FUZZ
@given(
    out_size=st.sampled_from([1, 7, 100, 65536]),
    actions=st.lists(action_st, min_size=1, max_size=8),
)
def test_output_matches_the_stdlib(out_size: int, actions: list[Any]) -> None:
    assert isinstance(REFERENCE_CHAT, ModuleType)
    expected = run(REFERENCE_CHAT, REFERENCE_CORE, out_size, actions)
    assert run(asynchat, asyncore, out_size, actions) == expected


def run_with_send(core: Any, sends: list[int], reads: list[bool]) -> list[Any]:
    """``dispatcher_with_send``: what the peer got per iteration, when it read at all."""
    socket_map: dict[int, Any] = {}
    ours, peer = socket.socketpair()
    sender = core.dispatcher_with_send(ours, map=socket_map)
    peer.setblocking(False)
    seen: list[Any] = []
    try:
        for number, (size, read) in enumerate(zip(sends, reads, strict=True)):
            if size:
                sender.send(bytes([65 + number % 26]) * size)
            core.loop(timeout=0.005, map=socket_map, count=1)
            got = drain(peer) if read else b""
            seen.append((len(got), got[:1], len(sender.out_buffer)))
    finally:
        core.close_all(socket_map)
        peer.close()
    return seen


@FUZZ
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([0, 1, 1000, 70_000, 300_000]), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_dispatcher_with_send_matches_the_stdlib(steps: list[tuple[int, bool]]) -> None:
    """Sends larger than the socket buffer, a peer that reads or not: the same bytes per
    iteration, and the same left in ``out_buffer``."""
    sends, reads = [size for size, _ in steps], [read for _, read in steps]
    expected = run_with_send(REFERENCE_CORE, sends, reads)
    assert run_with_send(asyncore, sends, reads) == expected
