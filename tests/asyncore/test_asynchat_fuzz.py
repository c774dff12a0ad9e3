"""asynchat's input framing under hypothesis, against the 3.11 standard library's: any bytes,
cut into reads anywhere, under any terminators (switched by ``found_terminator`` as protocols
do) give the same ``collect_incoming_data`` and ``found_terminator`` calls, in the same order.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portside import asynchat

from .differential import cut, stdlib_module

pytestmark = pytest.mark.timeout(60)

REFERENCE = stdlib_module("asynchat")

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that make up terminators, so random input meets them, whole and in part, often.
ATOMS = [b"a", b"b", b"ab", b"\r", b"\n", b"\r\n", b"\r\n.\r\n", b"x" * 5, b"\x00"]

terminator_st = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=12),
    st.lists(st.sampled_from([b"a", b"b", b"\r", b"\n", b"."]), min_size=1, max_size=4).map(
        b"".join
    ),
)
data_st = st.lists(st.sampled_from(ATOMS), max_size=40).map(b"".join)


def run(module: Any, reads: list[bytes], terminator: Any, script: list[Any]) -> list[Any]:
    """What an async_chat of ``module`` is told, fed ``reads`` one ``handle_read`` at a time."""

    class Recorder(module.async_chat):  # type: ignore[name-defined, misc]
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[Any] = []
            self.script = list(script)
            self.reads = list(reads)
            self.set_terminator(terminator)

        def recv(self, size: int) -> bytes:
            return self.reads.pop(0)

        def collect_incoming_data(self, data: bytes) -> None:
            self.calls.append(bytes(data))

        def found_terminator(self) -> None:
            self.calls.append(("found", self.get_terminator()))
            if self.script:
                self.set_terminator(self.script.pop(0))

    chat = Recorder()
    for _ in reads:
        chat.handle_read()
    chat.calls.append(("left", chat.ac_in_buffer, chat.get_terminator()))
    return chat.calls


@pytest.mark.skipif(REFERENCE is None, reason="the stdlib's asynchat is gone (3.12+)")
@FUZZ
@given(
    data=data_st,
    points=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    terminator=terminator_st,
    script=st.lists(terminator_st, max_size=8),
)
def test_framing_matches_the_stdlib(
    data: bytes, points: list[int], terminator: Any, script: list[Any]
) -> None:
    reads = cut(data, points)
    assert isinstance(REFERENCE, ModuleType)
    assert run(asynchat, reads, terminator, script) == run(REFERENCE, reads, terminator, script)


@FUZZ
@given(data=data_st, points=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_reads_do_not_change_what_a_line_protocol_sees(data: bytes, points: list[int]) -> None:
    """On every Python: the lines found do not depend on how the input was cut into reads."""

    def lines(reads: list[bytes]) -> list[bytes]:
        found: list[bytes] = []
        piece = b""
        for call in run(asynchat, reads, b"\r\n", []):
            if isinstance(call, bytes):
                piece += call
            elif call[0] == "found":
                found.append(piece)
                piece = b""
        return found

    assert lines(cut(data, points)) == lines([data]) == data.split(b"\r\n")[:-1]
