"""The SMTP sink service: every message acknowledged with 250 is in the maildir."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path
from typing import Any

import pytest

import portside
from portside.services.smtp import Maildir, SMTPOptions, SMTPSink, sink_for


def stored(maildir: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((maildir / "new").iterdir())]


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def test_messages_are_on_disk_when_acknowledged(run: Any, tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    big = b"".join(b"%07d " % i + b"q" * 92 + b"\r\n" for i in range(101_000))

    def send(port: int) -> list[int]:
        counts = []
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            for body in (b"Subject: one\r\n\r\n.hidden dot\r\n", big):
                client.sendmail("a@example.org", ["b@example.org", "c@example.org"], body)
                counts.append(len(list((maildir / "new").iterdir())))  # right after the 250
        return counts

    async def main() -> None:
        async with portside.Server(SMTPSink(maildir, hostname="sink.test"), "tcp:0") as server:
            counts = await in_thread(send, server.addresses[0][1])
        assert counts == [1, 2]

    run(main(), timeout=30)
    messages = stored(maildir)
    assert len(messages) == 2 and not list((maildir / "tmp").iterdir())
    first = next(m for m in messages if b"Subject: one" in m)
    assert first.startswith(b"Return-Path: <a@example.org>\r\nX-Peer: 127.0.0.1\r\n")
    assert b"X-RcptTo: b@example.org, c@example.org\r\n" in first
    assert first.endswith(b"Subject: one\r\n\r\n.hidden dot")  # one dot-stuffing dot removed
    assert max(len(m) for m in messages) > 10_000_000


def test_size_limit_utf8_and_pipelining(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        sink = sink_for(SMTPOptions(maildir=tmp_path, max_message_size=2000))
        async with portside.Server(sink, "tcp:0") as server:
            reader, writer = await asyncio.open_connection(*server.addresses[0][:2])
            assert (await reader.readline()).startswith(b"220 ")
            writer.write(
                b"EHLO c\r\nMAIL FROM:<a@b.c> SIZE=5000\r\n"
                + "MAIL FROM:<jörg@exämple.org> SMTPUTF8\r\n".encode()
                + "RCPT TO:<андрей@пример.рф>\r\nDATA\r\nS: ü\r\n\r\nhi\r\n.\r\n".encode()
                + b"NOOP "
                + b"x" * 600
                + b"\r\n\xff\xfe\r\nQUIT\r\n"
            )
            await writer.drain()
            replies = (await asyncio.wait_for(reader.read(), 5)).split(b"\r\n")
            writer.close()
        finals = [line for line in replies if line[3:4] == b" "]
        assert [line[:3] for line in finals] == [
            b"250",
            b"552",
            b"250",
            b"250",
            b"354",
            b"250",
            b"500",
            b"500",
            b"221",
        ]
        assert b"250-SIZE 2000" in replies and b"250-SMTPUTF8" in replies

    run(main())
    [message] = stored(tmp_path)
    assert "S: ü\r\n\r\nhi".encode() in message


def test_a_non_ascii_command_gets_an_ascii_reply(run: Any, tmp_path: Path) -> None:
    """The 500 reply quotes the command; outside SMTPUTF8 it must still be ASCII."""

    async def main() -> list[bytes]:
        async with portside.Server(SMTPSink(tmp_path, hostname="sink.test"), "tcp:0") as server:
            reader, writer = await asyncio.open_connection(*server.addresses[0][:2])
            await reader.readline()
            writer.write("ü\r\nNOOP\r\nQUIT\r\n".encode())
            replies = (await asyncio.wait_for(reader.read(), 5)).split(b"\r\n")
            writer.close()
            return replies

    assert run(main()) == [
        b'500 Error: command "?" not recognized',  # "Ü": it was upper-cased, then replaced
        b"250 OK",
        b"221 Bye",
        b"",
    ]


def test_graceful_shutdown_says_421(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        server = portside.Server(SMTPSink(tmp_path, hostname="sink.test"), "tcp:0")
        await server.start()
        reader, writer = await asyncio.open_connection(*server.addresses[0][:2])
        await reader.readline()
        await server.shutdown(timeout=5)
        assert await reader.read() == b"421 sink.test Service closing transmission channel\r\n"
        writer.close()

    run(main())


def test_storage_failure_is_not_acknowledged(run: Any, tmp_path: Path) -> None:
    class Broken(Maildir):
        def store(self, message: bytes) -> Path:
            raise OSError(28, "No space left on device")

    async def main() -> None:
        sink = SMTPSink(tmp_path)
        handlers = sink.__portside_handlers__()
        assert handlers.stream is not None

        def make(owner: Any, peer: Any) -> Any:
            connection = handlers.stream(owner, peer)
            connection.maildir = Broken(tmp_path)
            return connection

        async with portside.Server(portside.core.Handlers(stream=make), "tcp:0") as server:
            port = server.addresses[0][1]

            def send() -> None:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    with pytest.raises(smtplib.SMTPDataError) as refused:
                        client.sendmail("a@b.c", ["d@e.f"], b"x")
                    assert refused.value.smtp_code == 451

            await in_thread(send)

    run(main())
    assert stored(tmp_path) == []
