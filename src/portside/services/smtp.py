"""An SMTP sink: accepts every message sent to it and stores it in a maildir (a mail catcher).

``portside serve smtp --listen tcp:8025 --maildir ./mail`` answers SMTP as Python 3.11's
``smtpd`` does (the same :class:`~portside.proto.smtp.Session`, with SMTPUTF8 offered; after a
``552`` the transaction ends, and a reply it cannot encode goes out with ``?``) and
writes each accepted message to ``MAILDIR/new/`` -- written to ``tmp/``, fsynced, renamed, the
directory fsynced -- *before* it answers ``250``: a message acknowledged is on disk.

Each message gets ``Return-Path`` and ``X-Peer``/``X-RcptTo`` headers so the envelope is not
lost. Storing runs in a worker thread; the connection reads nothing more until it is done, so a
pipelining client cannot run ahead. On graceful shutdown an idle session gets ``421`` and is
closed; one in the middle of a message is let finish it (up to the shutdown deadline).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from pathlib import Path
from typing import Any

from portside.core import Connection, ConnectionOwner, Handlers
from portside.proto.framing import Chunk, Delimited, Framer
from portside.proto.smtp import COMMAND, DATA_SIZE_DEFAULT, Session, unstuff

__all__ = ["DEFAULT_LISTEN", "DEFAULT_MAILDIR", "Maildir", "SMTPOptions", "SMTPSink", "sink_for"]

log = logging.getLogger("portside.smtp")

DEFAULT_LISTEN = "tcp:8025"
"""8025 is where ``python -m smtpd`` listens by default (25 needs root)."""
DEFAULT_MAILDIR = "maildir"
# No line or message limit in the framer itself: the session counts bytes and discards the
# excess (as smtpd does), so a long line is answered with 500 instead of dropping the client.
_UNLIMITED = 1 << 62


class Maildir:
    """A maildir (``tmp/``, ``new/``, ``cur/``) that stores messages durably."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self._counter = itertools.count()

    def _unique(self) -> str:
        now = time.time()
        return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(self._counter)}.{self._host}"

    def store(self, message: bytes) -> Path:
        """Write ``message`` and make it durable; returns its path under ``new/``."""
        name = self._unique()
        tmp = self.path / "tmp" / name
        final = self.path / "new" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(message)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final)
        directory = os.open(self.path / "new", os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return final


@dataclass(frozen=True)
class SMTPSink:
    """The sink as a servable application: ``portside.serve(SMTPSink("mail"), "tcp:8025")``.

    ``data_size_limit`` is the largest message accepted (0: no limit); ``hostname`` is the
    name in the greeting (default: this host's FQDN).
    """

    maildir: str | os.PathLike[str] = DEFAULT_MAILDIR
    data_size_limit: int = DATA_SIZE_DEFAULT
    hostname: str | None = None

    def __portside_handlers__(self) -> Handlers:
        maildir = Maildir(self.maildir)
        fqdn = self.hostname or socket.getfqdn()
        limit = self.data_size_limit

        def stream(owner: ConnectionOwner, peer: Any) -> Connection:
            return SinkConnection(owner, peer, maildir, Session(fqdn, limit, True))

        return Handlers(stream=stream, name="smtp")


@dataclass(frozen=True)
class SMTPOptions:
    """Settings of the smtp service (the ``portside serve smtp`` options)."""

    maildir: Path = field(
        default=Path(DEFAULT_MAILDIR),
        metadata={"help": "Maildir to store messages in (created if missing): new/ gets each one."},
    )
    max_message_size: int = field(
        default=DATA_SIZE_DEFAULT,
        metadata={"help": "Largest message accepted, in bytes (0: no limit); announced as SIZE."},
    )


def sink_for(options: SMTPOptions) -> SMTPSink:
    """The sink the options describe (what the service registry builds)."""
    return SMTPSink(options.maildir, options.max_message_size)


class SinkConnection(Connection):
    """One SMTP session of the sink."""

    def __init__(
        self, owner: ConnectionOwner, peer: Any, maildir: Maildir, session: Session
    ) -> None:
        super().__init__(owner, peer)
        self.maildir = maildir
        self.session = session
        self.framer = Framer(Delimited(b"\r\n", _UNLIMITED))
        self.pieces: list[bytes] = []
        self.size = 0
        self.storing = False
        self.stopping = False

    def _on_start(self) -> None:
        self._reply([self.session.greeting()])

    def _reply(self, lines: list[str]) -> None:
        # A reply quotes the client's command ('500 Error: command "Ü" not recognized'); in
        # ASCII the characters that do not fit go out as "?" (smtpd fails the session instead).
        encoding = self.session.encoding
        self.write(b"".join(line.encode(encoding, "replace") + b"\r\n" for line in lines))

    def _on_data(self, data: bytes) -> None:
        self.framer.feed(data)
        self._process()

    def _process(self) -> None:
        session = self.session
        while not self.storing and not self.closing:
            chunk = self.framer.next_chunk()
            if not isinstance(chunk, Chunk):
                return
            limit = (
                session.max_command_size if session.state == COMMAND else session.data_size_limit
            )
            if not limit or self.size <= limit:
                self.size += len(chunk.data)
                self.pieces.append(chunk.data)
            if chunk.end:
                data, size = b"".join(self.pieces), self.size
                self.pieces, self.size = [], 0
                if session.state == COMMAND:
                    self._command(data, size)
                else:
                    self._message(data, size)

    def _command(self, line: bytes, size: int) -> None:
        session = self.session
        try:
            replies = session.command(line.decode("utf-8"), size)
        except (UnicodeDecodeError, HeaderParseError):
            replies = ["500 Error: bad syntax"]
        self._reply(replies)
        if session.quitting:
            self.close()
        elif session.state != COMMAND:
            self.framer.set_mode(Delimited(b"\r\n.\r\n", _UNLIMITED))

    def _message(self, data: bytes, size: int) -> None:
        session = self.session
        self.framer.set_mode(Delimited(b"\r\n", _UNLIMITED))
        if session.data_size_limit and size > session.data_size_limit:
            session.end_transaction()
            self._reply(["552 Error: Too much mail data"])
            return
        body = unstuff(data)
        assert isinstance(body, bytes)
        envelope = (
            f"Return-Path: <{session.mailfrom}>\r\n"
            f"X-Peer: {self.peer[0] if isinstance(self.peer, tuple) else self.peer}\r\n"
            f"X-RcptTo: {', '.join(session.rcpttos)}\r\n"
        ).encode()
        message = envelope + body.replace(b"\n", b"\r\n")
        session.end_transaction()
        self.storing = True
        self.transport.pause_reading()
        task = self.loop.create_task(self._store(message))
        task.add_done_callback(self._stored)

    def _stored(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            self.owner.report_error("smtp: error after storing a message", exc)
            self.abort()

    async def _store(self, message: bytes) -> None:
        try:
            path = await asyncio.get_running_loop().run_in_executor(
                None, self.maildir.store, message
            )
        except OSError as exc:
            self.owner.report_error(f"smtp: storing a message in {self.maildir.path} failed", exc)
            self._reply(["451 Error: could not store the message"])
        else:
            log.info("smtp: stored %d bytes from %s as %s", len(message), self.peer, path.name)
            self._reply(["250 OK"])
        self.storing = False
        if self.closing:
            return
        if self.stopping:
            self.begin_shutdown()
            return
        self.transport.resume_reading()
        self._process()

    def begin_shutdown(self) -> None:
        """Between messages: 421 and close. In a message or storing one: finish it first."""
        in_message = self.session.state != COMMAND or self.storing
        if in_message:
            self.stopping = True
            return
        self._reply([f"421 {self.session.fqdn} Service closing transmission channel"])
        self.close()
