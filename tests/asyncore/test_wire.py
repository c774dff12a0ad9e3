"""The same unchanged programs under Python 3.11's asyncore/asynchat/smtpd and under portside
(through the legacy runner): the client must receive identical bytes, and the programs must
print the same things."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Sequence

import pytest

from .wire import HAS_STDLIB, Step, Transcript, closed, length, lines, replies, run

pytestmark = pytest.mark.skipif(not HAS_STDLIB, reason="the stdlib modules are gone (3.12+)")


def both(program: str, steps: Sequence[Step], args: Sequence[str] = ()) -> list[Transcript]:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(run, program, impl, steps, args) for impl in ("stdlib", "portside")]
        return [job.result() for job in jobs]


def assert_same(
    program: str, steps: Sequence[Step], args: Sequence[str] = (), stdout: bool = True
) -> Transcript:
    stdlib, portside = both(program, steps, args)
    assert portside.received == stdlib.received
    assert portside.eof == stdlib.eof
    if stdout:
        assert portside.stdout == stdlib.stdout
    return portside


@pytest.mark.parametrize("args", [(), ("--poll",)], ids=["select", "use_poll"])
def test_echo_example(args: tuple[str, ...]) -> None:
    payload = os.urandom(300_000)
    steps = [Step(b"hello", length(5)), Step(payload, length(len(payload)))]
    got = assert_same("echo_dispatcher.py", steps, args)
    assert got.received[1] == payload


def test_chat_protocol_terminator_modes() -> None:
    steps = [
        Step(b"hello\r\nwor", lines(1)),
        Step(b"ld\r\n", lines(1)),
        Step(b"COUNT 10\r\n0123456789ab\r\n", lines(2)),
        Step(b"COUNT 70000\r\n" + b"z" * 70000, lines(1)),
        Step(b"BIG 300000\r\n", lines(1)),
        Step(b"PRODUCE 5000\r\n", lines(1)),
        Step(b"a\r\nb\r\nc\r\nQUIT\r\nignored\r\n", closed),
    ]
    got = assert_same("chat_protocol.py", steps)
    assert got.eof and got.received[-1].endswith(b"BYE\r\n")


def test_chat_raw_mode_and_peer_close() -> None:
    steps = [Step(b"RAW\r\n", lines(1)), Step(b"x" * 100_000, length(0))]
    got = assert_same("chat_protocol.py", steps)
    assert got.received[0] == b"RAW ON\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /index HTTP/1.0\r\nHost: x\r\n\r\n",
        b"POST /form HTTP/1.0\r\nContent-Length: 7\r\n\r\na=1&b=2",
    ],
    ids=["GET", "POST"],
)
def test_asynchat_documentation_example(request_bytes: bytes) -> None:
    got = assert_same("http_handler.py", [Step(request_bytes, closed)])
    assert got.received[0].startswith(b"HTTP/1.0 200 OK")


SMTP_SESSION = [
    Step(b"", replies(1)),
    Step(b"NOOP\r\nNOOP x\r\nHELP\r\nHELP MAIL\r\nHELP bogus\r\nVRFY\r\n", replies(6)),
    Step(b"VRFY <a@b.c>\r\nVRFY x\r\nEXPN x\r\nFOO bar\r\n\r\n", replies(5)),
    Step(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n", replies(3)),
    Step(b"HELO\r\nHELO client\r\nHELO again\r\nEHLO again\r\n", replies(4)),
    Step(b"MAIL FROM:<a@b.c> SIZE=10\r\nMAIL\r\nMAIL FROM:\r\n", replies(3)),
    Step(b"MAIL FROM:<a@b.c>\r\nMAIL FROM:<d@e.f>\r\nRCPT TO:\r\nRCPT TO:<x@y.z>\r\n", replies(4)),
    Step(b"RCPT TO:<w@y.z>\r\nDATA x\r\nRSET x\r\nDATA\r\n", replies(4)),
    Step(b"Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n", replies(1)),
    Step(b"RSET\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n", replies(4)),
    Step(b"please reject this\r\n.\r\n", replies(1)),
    Step(b"NOOP " + b"x" * 600 + b"\r\nNOOP\r\n", replies(2)),
    Step(b"QUIT\r\n", closed),
]


def test_smtpd_session_helo() -> None:
    got = assert_same("smtp_server.py", SMTP_SESSION)
    assert got.eof and got.received[-1] == b"221 Bye\r\n"


def test_smtpd_unparsable_address_closes_the_channel_as_311_does() -> None:
    steps = [Step(b"", replies(1)), Step(b"HELO c\r\nVRFY @@@\r\n", closed)]
    got = assert_same("smtp_server.py", steps, stdout=False)  # tracebacks name other files
    assert got.eof
    assert "uncaptured python exception" in got.stdout and "HeaderParseError" in got.stdout


ESMTP_SESSION = [
    Step(b"", replies(1)),
    Step(b"EHLO client\r\nHELP MAIL\r\nHELP RCPT\r\n", replies(3)),
    Step(b"MAIL FROM:<a@b.c> SIZE=100000\r\nMAIL FROM:<a@b.c> BODY=9BIT\r\n", replies(2)),
    Step(b"MAIL FROM:<a@b.c> SMTPUTF8=yes\r\nMAIL FROM:<a@b.c> FOO=1\r\n", replies(2)),
    Step(b"MAIL FROM:<a@b.c> =bad\r\nMAIL FROM:<a@b.c> SIZE=x1\r\n", replies(2)),
    Step(b"MAIL FROM:<a@b.c> " + b"X" * 520 + b"\r\n", replies(1)),
    Step(b"MAIL FROM:<a@b.c> BODY=8BITMIME SIZE=100\r\nRCPT TO:<x@y.z> NOTIFY=1\r\n", replies(2)),
    Step(b"RCPT TO:<x@y.z>\r\nDATA\r\n", replies(2)),
    Step(b"small message\r\n.\r\n", replies(1)),
    Step(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n", replies(3)),
    Step(b"y" * 5000 + b"\r\n.\r\n", replies(1)),
    # after "552 Too much mail data" 3.11 stays in the DATA state: this is a message
    Step(b"NOOP\r\n.\r\n", replies(1)),
]


@pytest.mark.parametrize("args", [("size=1000",), ("size=1000", "utf8"), ("decode",)])
def test_smtpd_session_ehlo(args: tuple[str, ...]) -> None:
    assert_same("smtp_server.py", ESMTP_SESSION, args)


def test_smtpd_smtputf8() -> None:
    steps = [
        Step(b"", replies(1)),
        Step(b"EHLO client\r\n", replies(1)),
        Step("MAIL FROM:<jörg@exämple.org> SMTPUTF8\r\n".encode(), replies(1)),
        Step("RCPT TO:<андрей@пример.рф>\r\nDATA\r\n".encode(), replies(2)),
        Step("Subject: ünïcode\r\n\r\nbody\r\n.\r\n".encode(), replies(1)),
        Step(b"QUIT\r\n", closed),
    ]
    assert_same("smtp_server.py", steps, ("utf8",))


def test_debugging_server_output() -> None:
    steps = [
        Step(b"", replies(1)),
        Step(b"EHLO c\r\nMAIL FROM:<a@b.c> BODY=8BITMIME\r\nRCPT TO:<x@y.z>\r\n", replies(3)),
        Step(b"DATA\r\n", replies(1)),
        Step(b"From: a@b.c\r\nSubject: s\r\n\r\nline 1\r\nline 2\r\n.\r\n", replies(1)),
        Step(b"QUIT\r\n", closed),
    ]
    got = assert_same("smtp_server.py", steps, ("debugging",))
    assert "---------- MESSAGE FOLLOWS ----------" in got.stdout
    assert "b'X-Peer: 127.0.0.1'" in got.stdout
