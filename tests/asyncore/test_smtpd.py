"""portside.smtpd with smtplib as the client, on asyncio and uvloop."""

from __future__ import annotations

import io
import smtplib
import socket
import threading
from contextlib import redirect_stdout
from email.message import EmailMessage
from typing import Any

import pytest

from portside import asyncore, smtpd
from portside.proto import smtp as proto

from .conftest import Engine


class Recorder(smtpd.SMTPServer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(("127.0.0.1", 0), None, **kwargs)
        self.port = self.socket.getsockname()[1]
        self.messages: list[tuple[Any, ...]] = []

    def process_message(
        self, peer: Any, mailfrom: str, rcpttos: list[str], data: str | bytes, **kwargs: Any
    ) -> str | None:
        self.messages.append((peer, mailfrom, list(rcpttos), data, kwargs))
        return None


def test_ten_megabyte_message(engine: Engine) -> None:
    server = Recorder()
    body = b"".join(b"%08d " % i + b"m" * 90 + b"\r\n" for i in range(105_000))

    def send() -> dict[str, Any]:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
            return client.sendmail("a@example.org", ["b@example.org", "c@example.org"], body)

    assert engine.serve(send, timeout=60) == {}
    [(_peer, mailfrom, rcpttos, data, kwargs)] = server.messages
    assert mailfrom == "a@example.org" and rcpttos == ["b@example.org", "c@example.org"]
    assert len(body) > 10_000_000
    assert data == body.replace(b"\r\n", b"\n").rstrip(b"\n")
    assert kwargs == {"mail_options": [f"SIZE={len(body)}"], "rcpt_options": []}


def test_size_limit_rejection(engine: Engine) -> None:
    server = Recorder(data_size_limit=1000)

    def send() -> tuple[Any, ...]:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("size") and client.esmtp_features["size"] == "1000"
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("a@example.org", ["b@example.org"], b"x" * 2000)
            return refused.value.smtp_code, refused.value.smtp_error

    code, error = engine.serve(send)
    assert (code, error) == (552, b"Error: message size exceeds fixed maximum message size")
    assert server.messages == []


def test_smtputf8(engine: Engine) -> None:
    server = Recorder(enable_SMTPUTF8=True)
    message = EmailMessage()
    message["From"] = "jörg@exämple.org"
    message["To"] = "андрей@пример.рф"
    message["Subject"] = "ünïcode"
    message.set_content("héllo")

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.send_message(message, mail_options=["SMTPUTF8", "BODY=8BITMIME"])

    engine.serve(send)
    [(_peer, mailfrom, rcpttos, data, kwargs)] = server.messages
    assert mailfrom == "jörg@exämple.org" and rcpttos == ["андрей@пример.рф"]
    assert "ünïcode".encode() in data  # type: ignore[operator]
    assert "SMTPUTF8" in kwargs["mail_options"]


def test_pipelined_commands(engine: Engine) -> None:
    """A client that sends a whole transaction in one write gets every reply, in order."""
    server = Recorder()

    def pipeline() -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.recv(1000)
            sock.sendall(
                b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nRCPT TO:<g@h.i>\r\nDATA\r\n"
                b"Subject: x\r\n\r\n.dot\r\n.\r\nNOOP\r\nQUIT\r\n"
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return data

    replies = engine.serve(pipeline).split(b"\r\n")
    finals = [line[:3] for line in replies if line[3:4] == b" "]
    assert finals == [b"250", b"250", b"250", b"250", b"354", b"250", b"250", b"221"]
    assert server.messages[0][3] == b"Subject: x\n\ndot"


def test_decode_data_and_debugging_server(engine: Engine) -> None:
    server = smtpd.DebuggingServer(("127.0.0.1", 0), None, decode_data=True)
    port = server.socket.getsockname()[1]
    out = io.StringIO()

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("a@b.c", ["d@e.f"], "Subject: s\r\n\r\nbody text\r\n")

    with redirect_stdout(out):
        engine.serve(send)
    text = out.getvalue()
    assert (
        "---------- MESSAGE FOLLOWS ----------\nSubject: s\nX-Peer: 127.0.0.1\n\nbody text\n"
        in text
    )


def test_pure_proxy_relays(engine: Engine) -> None:
    # PureProxy delivers with blocking smtplib from inside the loop, so the target must be
    # served by a loop of its own: a private map run in a thread.
    private = engine.map()
    target = Recorder(map=private)
    proxy = smtpd.PureProxy(("127.0.0.1", 0), ("127.0.0.1", target.port))
    port = proxy.socket.getsockname()[1]
    stop = threading.Event()

    def serve_target() -> None:
        while not stop.is_set():
            asyncore.loop(timeout=0.05, map=private, count=1)

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("a@b.c", ["d@e.f"], b"Subject: relayed\r\n\r\nhi\r\n")

    thread = threading.Thread(target=serve_target)
    thread.start()
    try:
        engine.serve(send)
    finally:
        stop.set()
        thread.join(10)
    [(_peer, mailfrom, _rcpt, data, _kw)] = target.messages
    assert mailfrom == "a@b.c" and b"X-Peer: 127.0.0.1" in data and data.endswith(b"hi")
    with pytest.raises(ValueError):
        smtpd.PureProxy(("127.0.0.1", 0), None, enable_SMTPUTF8=True)


def test_channel_attributes_and_custom_verb(engine: Engine) -> None:
    class Channel(smtpd.SMTPChannel):
        def smtp_XHELLO(self, arg: str | None) -> None:
            self.push(f"250 hello {arg} from {self.fqdn}; state={self.smtp_state}")

    class Server(Recorder):
        channel_class = Channel

    server = Server()

    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.recv(1000)
            sock.sendall(b"XHELLO you\r\nQUIT\r\n")
            data = b""
            while chunk := sock.recv(1000):
                data += chunk
            return data

    reply = engine.serve(talk)
    assert reply.startswith(b"250 hello you from ") and b"state=0" in reply


def test_session_machine_directly() -> None:
    session = proto.Session("mx.example", data_size_limit=100, enable_SMTPUTF8=True)
    assert session.command("", 0) == ["500 Error: bad syntax"]
    assert session.command("MAIL FROM:<a@b.c>", 17) == ["503 Error: send HELO first"]
    assert session.ehlo("c") == [
        "250-mx.example",
        "250-SIZE 100",
        "250-8BITMIME",
        "250-SMTPUTF8",
        "250 HELP",
    ]
    assert session.command_limit("MAIL") == 512 + 26 + 10 == session.max_command_size
    assert session.command("MAIL FROM:<a@b.c> SIZE=101", 27) == [
        "552 Error: message size exceeds fixed maximum message size"
    ]
    assert session.command("MAIL FROM:<a@b.c> SIZE", 22) == [
        "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]"
    ]
    assert proto.unstuff(b"a\r\n..b\r\n.") == b"a\n.b\n"
    assert proto.unstuff("x\r\n.y") == "x\ny"
    assert proto.parse_params(["A=1", "B"]) == {"A": "1", "B": True}
    assert proto.parse_params(["A="]) is None
    with pytest.raises(ValueError):
        proto.Session("x", enable_SMTPUTF8=True, decode_data=True)


def test_command_line_parsing() -> None:
    options = smtpd.parseargs(["-n", "-c", "DebuggingServer", "-s", "99", "-u", "h:1", "r:2"])
    assert (options.setuid, options.classname, options.size_limit) == (False, "DebuggingServer", 99)
    assert (options.localhost, options.localport, options.remotehost, options.remoteport) == (
        "h",
        1,
        "r",
        2,
    )
    with pytest.raises(SystemExit):
        smtpd.parseargs(["nocolon"])
