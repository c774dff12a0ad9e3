"""asyncore's event delivery under hypothesis, against the 3.11 standard library's: a
dispatcher -- connected, connecting, refused, listening, or reading a pipe -- whose
``readable()``/``writable()`` answers change from one ``loop(count=1)`` to the next, while its
peer sends, half-closes or goes away, gets the same handler calls with the same results,
iteration by iteration.
"""

from __future__ import annotations

import os
import socket
import sys
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portside import asyncore

from .differential import stdlib_module

REFERENCE = stdlib_module("asyncore")

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(REFERENCE is None, reason="the stdlib's asyncore is gone (3.12+)"),
]

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What the peer does before an iteration: send some bytes, half-close, close, or nothing.
peer_st = st.one_of(
    st.integers(min_value=1, max_value=3000).map(lambda n: ("send", n)),
    st.sampled_from([("nothing", 0), ("nothing", 0), ("shut", 0), ("close", 0)]),
)
step_st = st.tuples(peer_st, st.booleans(), st.booleans(), st.sampled_from([1, 100, 4096]))


def run(module: Any, steps: list[tuple[tuple[str, int], bool, bool, int]], start: str) -> list[Any]:
    """The handler calls of a ``module`` dispatcher, and what its peer got, per iteration.

    ``start``: ``pair`` (connected at once, over a socketpair), ``connect`` (a TCP client
    connecting to a listener, which accepts it after the first iteration), ``refused`` (a
    TCP client connecting to a port nobody listens on), ``listen`` (a listener; the peer's
    "send" is a new client connecting, its "close" the oldest one leaving) or ``pipe`` (a
    ``file_dispatcher`` reading a pipe the peer writes and closes).
    """
    calls: list[Any] = []
    base = module.file_dispatcher if start == "pipe" else module.dispatcher

    class Probe(base):  # type: ignore[valid-type, misc]
        want_read = want_write = True
        size = 100

        def readable(self) -> bool:
            return self.want_read

        def writable(self) -> bool:
            return self.want_write

        def handle_connect(self) -> None:
            calls.append("connect")

        def handle_read(self) -> None:
            calls.append(("read", self.recv(self.size)))

        def handle_write(self) -> None:
            calls.append(("write", self.send(b"w" * self.size)))

        def handle_close(self) -> None:
            calls.append("close")
            self.close()

        def handle_expt(self) -> None:
            calls.append("expt")

        def handle_accepted(self, sock: socket.socket, addr: Any) -> None:
            calls.append("accepted")
            sock.close()

        def handle_error(self) -> None:
            calls.append(("error", sys.exc_info()[0]))
            self.close()

    socket_map: dict[int, Any] = {}
    listener = peer = None
    clients: list[socket.socket] = []
    pipe_in = -1
    if start == "pair":
        ours, peer = socket.socketpair()
        probe = Probe(ours, map=socket_map)
        peer.setblocking(False)
    elif start == "pipe":
        pipe_out, pipe_in = os.pipe()
        probe = Probe(pipe_out, map=socket_map)
        os.close(pipe_out)  # file_dispatcher keeps a duplicate
    elif start == "listen":
        probe = Probe(map=socket_map)
        probe.create_socket()
        probe.bind(("127.0.0.1", 0))
        probe.listen(16)
        address = probe.socket.getsockname()
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        address = listener.getsockname()
        if start == "refused":
            listener.close()
            listener = None
        else:
            listener.setblocking(False)
        probe = Probe(map=socket_map)
        probe.create_socket()
        try:
            probe.connect(address)
        except OSError as exc:
            calls.append(("connect raised", exc.errno))
    sending = True
    try:
        for (action, count), readable, writable, size in steps:
            if peer is None and listener is not None:
                try:
                    peer = listener.accept()[0]
                    peer.setblocking(False)
                except BlockingIOError:
                    pass
            if start == "listen":
                if action == "send":
                    clients.append(socket.create_connection(address, timeout=5))
                elif action == "close" and clients:
                    clients.pop(0).close()
            elif start == "pipe" and pipe_in != -1:
                if action == "send":
                    os.write(pipe_in, b"p" * count)
                elif action in ("shut", "close"):
                    os.close(pipe_in)
                    pipe_in = -1
            elif peer is not None:
                if action == "send" and sending:
                    peer.send(b"p" * count)
                elif action == "shut" and sending:
                    peer.shutdown(socket.SHUT_WR)
                    sending = False
                elif action == "close":
                    peer.close()
                    sending = False
            probe.want_read, probe.want_write, probe.size = readable, writable, size
            calls.append("iteration")
            module.loop(timeout=0.005, map=socket_map, count=1)
            if peer is not None and peer.fileno() != -1:
                try:
                    calls.append(("peer got", len(peer.recv(1 << 20))))
                except (BlockingIOError, ConnectionResetError):
                    pass
            if not socket_map:
                break
    finally:
        module.close_all(socket_map)
        for sock in (peer, listener, *clients):
            if sock is not None:
                sock.close()
        if pipe_in != -1:
            os.close(pipe_in)
    return calls


@FUZZ
@given(
    steps=st.lists(step_st, min_size=1, max_size=8),
    start=st.sampled_from(["pair", "pair", "connect", "refused", "listen", "pipe"]),
)
def test_handler_calls_match_the_stdlib(steps: list[Any], start: str) -> None:
    assert isinstance(REFERENCE, ModuleType)
    assert run(asyncore, steps, start) == run(REFERENCE, steps, start)
