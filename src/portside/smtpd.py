"""smtpd -- the SMTP server framework Python 3.12 removed -- on portside's engine.

The API and the conversation are those of Python 3.11's ``smtpd``: an :class:`SMTPServer`
dispatcher listens and makes an :class:`SMTPChannel` (an ``async_chat``) per connection; each
accepted message goes to :meth:`SMTPServer.process_message`. :class:`DebuggingServer` prints
messages, :class:`PureProxy` relays them. The replies come from
:class:`portside.proto.smtp.Session`, the same machine the ``portside serve smtp`` sink uses.

Differences from 3.11, all on inputs that made the original misbehave: the per-command line
limits are per channel (3.11 shared one dict among all channels), and a bare ``SIZE`` parameter
gets a 501 reply instead of an AttributeError. ``PureProxy`` also relays bytes messages.

Command line: ``python -m portside.smtpd [-n] [-c CLASS] [-s SIZE] [-u] [-d]
[localhost:port [remotehost:port]]``, as ``python -m smtpd``.
"""

from __future__ import annotations

import errno
import getopt
import socket
import sys
import time
from typing import Any, TextIO

from portside import asynchat, asyncore
from portside.proto.smtp import (
    COMMAND,
    DATA,
    DATA_SIZE_DEFAULT,
    VERSION,
    Session,
    split_command,
    unstuff,
)

__all__ = ["DATA_SIZE_DEFAULT", "DebuggingServer", "PureProxy", "SMTPChannel", "SMTPServer"]

__version__ = VERSION
program = sys.argv[0]
NEWLINE = "\n"
COMMASPACE = ", "


class Devnull:
    """A stream that discards what is written (the default :data:`DEBUGSTREAM`)."""

    def write(self, msg: str) -> None:
        """Discard ``msg``."""

    def flush(self) -> None:
        """Nothing to flush."""


DEBUGSTREAM: TextIO | Devnull = Devnull()
"""Where debugging output goes; ``-d`` on the command line sets it to stderr."""


def _debug(*args: Any) -> None:
    print(*args, file=DEBUGSTREAM)


def _session_attribute(name: str, doc: str) -> property:
    def get(self: SMTPChannel) -> Any:
        return getattr(self._session, name)

    def set_(self: SMTPChannel, value: Any) -> None:
        setattr(self._session, name, value)

    return property(get, set_, doc=doc)


class SMTPChannel(asynchat.async_chat):
    """One SMTP session over one connection: reads commands and messages, answers them.

    ``smtp_<VERB>(arg)`` methods answer each command (subclasses add verbs by adding methods);
    a finished message goes to ``smtp_server.process_message``.
    """

    COMMAND = COMMAND
    DATA = DATA
    command_size_limit = 512

    smtp_state = _session_attribute("state", "COMMAND or DATA.")
    seen_greeting = _session_attribute("seen_greeting", "The HELO/EHLO argument, once seen.")
    extended_smtp = _session_attribute("extended_smtp", "True after EHLO.")
    mailfrom = _session_attribute("mailfrom", "The MAIL FROM address of this transaction.")
    rcpttos = _session_attribute("rcpttos", "The RCPT TO addresses of this transaction.")
    require_SMTPUTF8 = _session_attribute("require_SMTPUTF8", "MAIL asked for SMTPUTF8.")
    mail_options = _session_attribute("mail_options", "The MAIL FROM parameters.")
    rcpt_options = _session_attribute("rcpt_options", "The last RCPT TO's parameters.")
    command_size_limits = _session_attribute("command_size_limits", "Line limits by verb.")
    fqdn = _session_attribute("fqdn", "The host name this server calls itself.")
    data_size_limit = _session_attribute("data_size_limit", "Largest message; 0 = no limit.")
    enable_SMTPUTF8 = _session_attribute("enable_SMTPUTF8", "Offer SMTPUTF8.")

    def __init__(
        self,
        server: SMTPServer,
        conn: socket.socket,
        addr: Any,
        data_size_limit: int = DATA_SIZE_DEFAULT,
        map: dict[int, Any] | None = None,
        enable_SMTPUTF8: bool = False,
        decode_data: bool = False,
    ) -> None:
        fqdn = socket.getfqdn()
        self._session = Session(fqdn, data_size_limit, enable_SMTPUTF8, decode_data)
        super().__init__(conn, map=map)
        self.smtp_server = server
        self.conn = conn
        self.addr = addr
        self._decode_data = decode_data
        self._set_rset_state()
        self.seen_greeting = ""
        try:
            self.peer = conn.getpeername()
        except OSError as err:
            self.close()  # the peer went away before we could ask who it was
            if err.errno != errno.ENOTCONN:
                raise
            return
        _debug("Peer:", repr(self.peer))
        self.push(self._session.greeting())

    @property
    def max_command_size_limit(self) -> int:
        """The longest line any command may come on."""
        return self._session.max_command_size

    def _set_post_data_state(self) -> None:
        self._session.end_transaction()
        self.num_bytes = 0
        self.set_terminator(b"\r\n")

    def _set_rset_state(self) -> None:
        self._set_post_data_state()
        self.received_data: str | bytes = ""
        self.received_lines: list[Any] = []

    def push(self, msg: str) -> None:  # type: ignore[override]
        """Send one reply line (CRLF added)."""
        super().push(bytes(msg + "\r\n", self._session.encoding))

    def _reply(self, lines: list[str]) -> None:
        for line in lines:
            self.push(line)

    def collect_incoming_data(self, data: bytes) -> None:
        """Keep a piece of the current line or message, up to the limit that applies."""
        state = self.smtp_state
        limit = (
            self.max_command_size_limit
            if state == COMMAND
            else self.data_size_limit
            if state == DATA
            else None
        )
        if limit and self.num_bytes > limit:
            return  # over the limit: count no further and keep nothing more
        if limit:
            self.num_bytes += len(data)
        self.received_lines.append(str(data, "utf-8") if self._decode_data else data)

    def found_terminator(self) -> None:
        """A command line or a whole message arrived: answer it."""
        empty: str | bytes = "" if self._decode_data else b""
        line: Any = empty.join(self.received_lines)
        _debug("Data:", repr(line))
        self.received_lines = []
        if self.smtp_state == COMMAND:
            size, self.num_bytes = self.num_bytes, 0
            if not line:
                self.push("500 Error: bad syntax")
                return
            if not self._decode_data:
                line = str(line, "utf-8")
            command, arg = split_command(line)
            if size > self._session.command_limit(command):
                self.push("500 Error: line too long")
                return
            method = getattr(self, "smtp_" + command, None)
            if not method:
                self.push(f'500 Error: command "{command}" not recognized')
                return
            method(arg)
            return
        if self.smtp_state != DATA:
            self.push("451 Internal confusion")
            self.num_bytes = 0
            return
        if self.data_size_limit and self.num_bytes > self.data_size_limit:
            self.push("552 Error: Too much mail data")
            self.num_bytes = 0
            return
        self.received_data = unstuff(line)
        args = (self.peer, self.mailfrom, self.rcpttos, self.received_data)
        kwargs = {}
        if not self._decode_data:
            kwargs = {"mail_options": self.mail_options, "rcpt_options": self.rcpt_options}
        status = self.smtp_server.process_message(*args, **kwargs)
        self._set_post_data_state()
        self.push(status or "250 OK")

    # -- SMTP and ESMTP commands -------------------------------------------------------------

    def smtp_HELO(self, arg: str | None) -> None:
        """HELO hostname."""
        replies = self._session.helo(arg)
        if replies[0].startswith("250"):
            self._set_rset_state()
        self._reply(replies)

    def smtp_EHLO(self, arg: str | None) -> None:
        """EHLO hostname: lists SIZE, 8BITMIME, SMTPUTF8 as configured."""
        replies = self._session.ehlo(arg)
        if replies[0].startswith("250"):
            self._set_rset_state()
        self._reply(replies)

    def smtp_NOOP(self, arg: str | None) -> None:
        """NOOP."""
        self._reply(self._session.noop(arg))

    def smtp_QUIT(self, arg: str | None) -> None:
        """QUIT: reply and close once the reply is sent."""
        self._reply(self._session.quit(arg))
        self.close_when_done()

    def smtp_MAIL(self, arg: str | None) -> None:
        """MAIL FROM:<address> [parameters]."""
        _debug("===> MAIL", arg)
        self._reply(self._session.mail(arg))
        if self.mailfrom:
            _debug("sender:", self.mailfrom)

    def smtp_RCPT(self, arg: str | None) -> None:
        """RCPT TO:<address>."""
        _debug("===> RCPT", arg)
        self._reply(self._session.rcpt(arg))
        _debug("recips:", self.rcpttos)

    def smtp_RSET(self, arg: str | None) -> None:
        """RSET."""
        replies = self._session.rset(arg)
        if not arg:
            self._set_rset_state()
        self._reply(replies)

    def smtp_DATA(self, arg: str | None) -> None:
        """DATA: the message follows, up to <CRLF>.<CRLF>."""
        replies = self._session.data(arg)
        if self.smtp_state == DATA:
            self.set_terminator(b"\r\n.\r\n")
        self._reply(replies)

    def smtp_HELP(self, arg: str | None) -> None:
        """HELP [verb]."""
        self._reply(self._session.help(arg))

    def smtp_VRFY(self, arg: str | None) -> None:
        """VRFY address: never verifies."""
        self._reply(self._session.vrfy(arg))

    def smtp_EXPN(self, arg: str | None) -> None:
        """EXPN: not implemented."""
        self._reply(self._session.expn(arg))


class SMTPServer(asyncore.dispatcher):
    """Listens on ``localaddr`` and runs a ``channel_class`` per connection.

    Subclasses implement :meth:`process_message`. ``remoteaddr`` is where :class:`PureProxy`
    relays to. ``data_size_limit`` of 0 lifts the size limit.
    """

    channel_class = SMTPChannel

    def __init__(
        self,
        localaddr: tuple[str, int],
        remoteaddr: tuple[str, int] | None,
        data_size_limit: int = DATA_SIZE_DEFAULT,
        map: dict[int, Any] | None = None,
        enable_SMTPUTF8: bool = False,
        decode_data: bool = False,
    ) -> None:
        self._localaddr = localaddr
        self._remoteaddr = remoteaddr
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = decode_data
        if enable_SMTPUTF8 and decode_data:
            raise ValueError(
                "decode_data and enable_SMTPUTF8 cannot be set to True at the same time"
            )
        super().__init__(map=map)
        try:
            family, kind, *_ = socket.getaddrinfo(*localaddr, type=socket.SOCK_STREAM)[0]
            self.create_socket(family, kind)
            self.set_reuse_addr()
            self.bind(localaddr)
            self.listen(5)
        except BaseException:
            self.close()
            raise
        _debug(
            f"{type(self).__name__} started at {time.ctime(time.time())}\n"
            f"\tLocal addr: {localaddr}\n\tRemote addr:{remoteaddr}"
        )

    def handle_accepted(self, conn: socket.socket, addr: Any) -> None:
        _debug(f"Incoming connection from {addr!r}")
        self.channel_class(
            self,
            conn,
            addr,
            self.data_size_limit,
            self._map,
            self.enable_SMTPUTF8,
            self._decode_data,
        )

    def process_message(
        self, peer: Any, mailfrom: str, rcpttos: list[str], data: str | bytes, **kwargs: Any
    ) -> str | None:
        """Handle one accepted message; return None for "250 OK" or a reply line to send.

        ``data`` is bytes (str with ``decode_data=True``); ``kwargs`` carries
        ``mail_options`` and ``rcpt_options`` unless ``decode_data`` is set. Abstract, as
        documented for smtpd: the base class raises ``NotImplementedError``.
        """
        raise NotImplementedError


class DebuggingServer(SMTPServer):
    """Prints every message to stdout instead of delivering it."""

    def _print_message_content(self, peer: Any, data: str | bytes) -> None:
        in_headers = True
        lines: list[Any] = data.splitlines()
        for line in lines:
            if in_headers and not line:
                peerheader: str = "X-Peer: " + peer[0]
                if not isinstance(data, str):
                    peerheader = repr(peerheader.encode("utf-8"))
                print(peerheader)
                in_headers = False
            print(line if isinstance(data, str) else repr(line))

    def process_message(
        self, peer: Any, mailfrom: str, rcpttos: list[str], data: str | bytes, **kwargs: Any
    ) -> str | None:
        print("---------- MESSAGE FOLLOWS ----------")
        if kwargs:
            if kwargs.get("mail_options"):
                print(f"mail options: {kwargs['mail_options']}")
            if kwargs.get("rcpt_options"):
                print(f"rcpt options: {kwargs['rcpt_options']}\n")
        self._print_message_content(peer, data)
        print("------------ END MESSAGE ------------")
        return None


class PureProxy(SMTPServer):
    """Relays every message to ``remoteaddr`` with smtplib, adding an ``X-Peer`` header."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("enable_SMTPUTF8"):
            raise ValueError("PureProxy does not support SMTPUTF8.")
        super().__init__(*args, **kwargs)

    def process_message(
        self, peer: Any, mailfrom: str, rcpttos: list[str], data: str | bytes, **kwargs: Any
    ) -> str | None:
        newline: Any = "\n" if isinstance(data, str) else b"\n"
        lines: list[Any] = data.split(newline)
        header_end = next((i for i, line in enumerate(lines) if not line), len(lines))
        peer_line = f"X-Peer: {peer[0]}"
        lines.insert(header_end, peer_line if isinstance(data, str) else peer_line.encode())
        refused = self._deliver(mailfrom, rcpttos, newline.join(lines))
        _debug("we got some refusals:", refused)
        return None

    def _deliver(self, mailfrom: str, rcpttos: list[str], data: str | bytes) -> dict[str, Any]:
        import smtplib

        refused: dict[str, Any] = {}
        assert self._remoteaddr is not None
        try:
            client = smtplib.SMTP()
            client.connect(self._remoteaddr[0], self._remoteaddr[1])
            try:
                refused = client.sendmail(mailfrom, rcpttos, data)
            finally:
                client.quit()
        except smtplib.SMTPRecipientsRefused as exc:
            _debug("got SMTPRecipientsRefused")
            refused = exc.recipients
        except (OSError, smtplib.SMTPException) as exc:
            _debug("got", exc.__class__)
            code = getattr(exc, "smtp_code", -1)
            error = getattr(exc, "smtp_error", "ignore")
            refused = dict.fromkeys(rcpttos, (code, error))
        return refused


class Options:
    """The parsed command line."""

    setuid = True
    classname = "PureProxy"
    size_limit: int | None = None
    enable_SMTPUTF8 = False
    localhost = "localhost"
    localport = 8025
    remotehost = "localhost"
    remoteport = 25


def usage(code: int, msg: str = "") -> None:
    """Print the usage text (and ``msg``) and exit with ``code``."""
    print(
        f"Usage: {program} [-n] [-c CLASS] [-s SIZE] [-u] [-d] "
        "[localhost:localport [remotehost:remoteport]]",
        file=sys.stderr,
    )
    if msg:
        print(msg, file=sys.stderr)
    sys.exit(code)


def _host_port(spec: str, what: str) -> tuple[str, int]:
    host, colon, port = spec.partition(":")
    if not colon:
        usage(1, f"Bad {what} spec: {spec}")
    try:
        return host, int(port)
    except ValueError:
        usage(1, f"Bad {what} port: {port}")
        raise


def parseargs(argv: list[str] | None = None) -> Options:
    """Parse the smtpd command line (``sys.argv[1:]`` by default)."""
    global DEBUGSTREAM
    try:
        opts, args = getopt.getopt(
            sys.argv[1:] if argv is None else argv,
            "nVhc:s:du",
            ["class=", "nosetuid", "version", "help", "size=", "debug", "smtputf8"],
        )
    except getopt.error as exc:
        usage(1, str(exc))
    options = Options()
    for opt, arg in opts:
        if opt in ("-h", "--help"):
            usage(0)
        elif opt in ("-V", "--version"):
            print(__version__)
            sys.exit(0)
        elif opt in ("-n", "--nosetuid"):
            options.setuid = False
        elif opt in ("-c", "--class"):
            options.classname = arg
        elif opt in ("-d", "--debug"):
            DEBUGSTREAM = sys.stderr
        elif opt in ("-u", "--smtputf8"):
            options.enable_SMTPUTF8 = True
        elif opt in ("-s", "--size"):
            try:
                options.size_limit = int(arg)
            except ValueError:
                usage(1, f"Invalid size: {arg}")
    if len(args) > 2:
        usage(1, f"Invalid arguments: {COMMASPACE.join(args)}")
    if args:
        options.localhost, options.localport = _host_port(args[0], "local")
    if len(args) > 1:
        options.remotehost, options.remoteport = _host_port(args[1], "remote")
    return options


def main(argv: list[str] | None = None) -> None:
    """Run the server the command line describes until interrupted."""
    options = parseargs(argv)
    classname = options.classname
    if "." in classname:
        module_name, _, classname = classname.rpartition(".")
        module = __import__(module_name, fromlist=[classname])
    else:
        module = sys.modules[__name__]
    server_class = getattr(module, classname)
    server_class(
        (options.localhost, options.localport),
        (options.remotehost, options.remoteport),
        options.size_limit or 0,
        enable_SMTPUTF8=options.enable_SMTPUTF8,
    )
    if options.setuid:
        import os
        import pwd

        try:
            nobody = pwd.getpwnam("nobody")[2]
            os.setuid(nobody)
        except PermissionError:
            print('Cannot setuid "nobody"; try running with -n option.', file=sys.stderr)
            sys.exit(1)
    try:
        asyncore.loop()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
