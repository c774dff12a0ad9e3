"""The SMTP sink under hypothesis: any session, sent in any pieces, gets the replies
``smtpd.SMTPChannel`` gives, and the maildir ends up holding exactly the messages smtpd would
have handed to ``process_message`` -- each one acknowledged with 250, none lost, none extra.

The sink runs over an in-memory transport with a real maildir; the reference is portside's
``smtpd`` (itself checked against Python 3.11's in test_smtpd_fuzz.py), with SMTPUTF8 on as
the sink has it, and without the two smtpd quirks the sink does not keep (documented).
"""

from __future__ import annotations

import asyncio
import re
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portside import smtpd
from portside.core.loop import new_event_loop
from portside.services.smtp import SMTPSink
from portside.testing import connect

from .differential import cut
from .smtp_sessions import session_st

pytestmark = pytest.mark.timeout(180)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOST = "sink.example"
# Appended to every session so that both sides end it the same way: a message still open is
# ended, then QUIT (the sink closes the connection after answering it).
ENDING = b"\r\n.\r\nQUIT\r\n"
_COUNTER = re.compile(r"Q(\d+)\.")


def smtpd_session(reads: list[bytes], limit: int) -> tuple[list[str], list[bytes]]:
    """smtpd's replies up to its answer to QUIT, and the messages it accepted."""
    replies: list[str] = []
    messages: list[bytes] = []

    class Server:
        def process_message(
            self, peer: Any, mailfrom: str, rcpttos: list[str], data: bytes, **kw: Any
        ) -> None:
            if not replies or not replies[-1].startswith("221 "):  # none after QUIT counts
                messages.append(data)

    class Channel(smtpd.SMTPChannel):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.inbox = list(reads)
            super().__init__(*args, **kwargs)

        def recv(self, size: int) -> bytes:
            return self.inbox.pop(0)

        def found_terminator(self) -> None:
            in_message = self.smtp_state == self.DATA
            super().found_terminator()
            if in_message and self.smtp_state == self.DATA:
                # smtpd stays in the DATA state after "552 Too much mail data"; the sink ends
                # the transaction (documented)
                self._set_post_data_state()

        def push(self, msg: str) -> None:
            if replies and replies[-1].startswith("221 "):  # nothing is sent after QUIT
                return
            # where smtpd fails on a reply it cannot encode, the sink sends "?" (documented)
            encoding = "utf-8" if self.require_SMTPUTF8 else "ascii"
            replies.append(msg.encode(encoding, "replace").decode(encoding))

    ours, theirs = socket.socketpair()
    try:
        socket_getfqdn, socket.getfqdn = socket.getfqdn, lambda *args: HOST  # type: ignore[assignment]
        try:
            channel = Channel(
                Server(), ours, ("127.0.0.1", 54321), limit, map={}, enable_SMTPUTF8=True
            )
        finally:
            socket.getfqdn = socket_getfqdn  # type: ignore[assignment]
        for _ in reads:
            channel.handle_read()
    finally:
        ours.close()
        theirs.close()
    return replies, messages


def sink_session(reads: list[bytes], limit: int, maildir: Path) -> tuple[list[str], list[bytes]]:
    """The sink's replies, and the message bodies in its maildir in the order it stored them."""

    async def main() -> bytes:
        transport = connect(SMTPSink(maildir, limit, HOST))
        for piece in reads:
            transport.feed(piece)
            await asyncio.sleep(0)  # one loop turn between pieces: they arrive separately
        await asyncio.wait_for(transport.wait_lost(), 30)  # closed after answering QUIT
        return transport.value()

    loop = new_event_loop("asyncio")
    try:
        wire = loop.run_until_complete(main())
    finally:
        loop.close()
    files = sorted((maildir / "new").iterdir(), key=lambda p: int(_COUNTER.search(p.name)[1]))  # type: ignore[index]
    bodies = []
    for path in files:
        stored = path.read_bytes()
        envelope_end = stored.index(b"\r\n", stored.index(b"X-RcptTo: ")) + 2
        bodies.append(stored[envelope_end:].replace(b"\r\n", b"\n"))
    return wire.decode("utf-8").split("\r\n")[:-1], bodies


@FUZZ
@given(
    lines=session_st,
    points=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
    limit=st.sampled_from([0, 10, 60, 33554432]),
)
def test_sink_answers_and_stores_as_smtpd(lines: list[str], points: list[int], limit: int) -> None:
    reads = cut("".join(line + "\r\n" for line in lines).encode() + ENDING, points)
    expected_replies, expected_messages = smtpd_session(reads, limit)
    with tempfile.TemporaryDirectory() as directory:
        replies, messages = sink_session(reads, limit, Path(directory))
    assert replies == expected_replies
    assert messages == expected_messages
