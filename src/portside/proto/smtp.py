"""The SMTP server conversation of Python 3.11's ``smtpd``, as a sans-I/O machine.

:class:`Session` holds the state of one SMTP session and answers each command with the reply
lines ``smtpd.SMTPChannel`` sends, word for word (RFC 5321 verbs HELO, EHLO, MAIL, RCPT, DATA,
RSET, NOOP, QUIT, VRFY, HELP, EXPN; ESMTP SIZE, 8BITMIME and SMTPUTF8). It does no framing
and no I/O: ``portside.smtpd`` feeds it lines cut by ``async_chat``, and the SMTP sink service
feeds it lines cut by :class:`~portside.proto.framing.Framer`.

Limits, as smtpd has them: a command line may hold 512 bytes (RFC 5321 4.5.3.1.4), ``MAIL`` 26
more once EHLO announced SIZE and 10 more for SMTPUTF8 (RFC 1870, RFC 6531); a message may
hold ``data_size_limit`` bytes (32 MiB by default; 0 = unlimited).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "COMMAND",
    "COMMAND_SIZE_LIMIT",
    "DATA",
    "DATA_SIZE_DEFAULT",
    "VERSION",
    "Session",
    "parse_address",
    "parse_params",
    "split_command",
    "unstuff",
]

COMMAND, DATA = 0, 1
# RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF.
COMMAND_SIZE_LIMIT = 512
# smtpd's default: 32 MiB, above what common providers accept (Gmail 25 MB, Outlook 35 MB).
DATA_SIZE_DEFAULT = 33554432
# Room a SIZE=<n> parameter needs on MAIL (RFC 1870), and a SMTPUTF8 one (RFC 6531).
SIZE_EXTENSION = 26
SMTPUTF8_EXTENSION = 10
VERSION = "Python SMTP proxy version 0.3"

_VERBS = "EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY"
_HELP = {
    "EHLO": "250 Syntax: EHLO hostname",
    "HELO": "250 Syntax: HELO hostname",
    "MAIL": "250 Syntax: MAIL FROM: <address>",
    "RCPT": "250 Syntax: RCPT TO: <address>",
    "DATA": "250 Syntax: DATA",
    "RSET": "250 Syntax: RSET",
    "NOOP": "250 Syntax: NOOP",
    "QUIT": "250 Syntax: QUIT",
    "VRFY": "250 Syntax: VRFY <address>",
}
_MAIL_PARAMETERS = " [SP <mail-parameters>]"


def split_command(line: str) -> tuple[str, str | None]:
    """``"MAIL FROM:<a>"`` -> ``("MAIL", "FROM:<a>")``; the argument is None without a space."""
    verb, space, arg = line.partition(" ")
    if not space:
        return line.upper(), None
    return verb.upper(), arg.strip()


def parse_address(arg: str | None) -> tuple[str, str]:
    """Split ``<addr> params`` (or a bare ``addr params``) into the address and the rest;
    the address is ``""`` when there is none."""
    if not arg:
        return "", ""
    # The email package's RFC 5322 address grammar is the one 3.11's smtpd used; it is
    # imported here because it drags in ``socket`` (via email.utils), which proto/ keeps out.
    from email._header_value_parser import get_addr_spec, get_angle_addr

    parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
    address, rest = parse(arg)
    if not address:
        return "", rest
    return str(address.addr_spec), str(rest)


def parse_params(params: list[str]) -> dict[str, str | bool] | None:
    """ESMTP ``KEY[=VALUE]`` parameters as a dict (True for a bare key), or None when one is
    malformed (RFC 1869: the key is alphanumeric, a ``=`` has a value after it)."""
    result: dict[str, str | bool] = {}
    for param in params:
        key, eq, value = param.partition("=")
        if not key.isalnum() or (eq and not value):
            return None
        result[key] = value if eq else True
    return result


def unstuff(data: str | bytes) -> str | bytes:
    """The message from the DATA section: dot-stuffing removed (RFC 5321 4.5.2), lines joined
    with ``\\n``; str in, str out, bytes in, bytes out."""
    if isinstance(data, str):
        return "\n".join(line[1:] if line[:1] == "." else line for line in data.split("\r\n"))
    return b"\n".join(line[1:] if line[:1] == b"." else line for line in data.split(b"\r\n"))


def _strip_keyword(keyword: str, arg: str) -> str:
    if arg[: len(keyword)].upper() == keyword:
        return arg[len(keyword) :].strip()
    return ""


@dataclass
class Session:
    """One SMTP session's state; each verb method returns the reply lines to send, in order.

    ``data_size_limit`` of 0 means no limit. ``decode_data`` selects smtpd's str mode (no
    8BITMIME); it excludes ``enable_SMTPUTF8``.
    """

    fqdn: str
    data_size_limit: int = DATA_SIZE_DEFAULT
    enable_SMTPUTF8: bool = False
    decode_data: bool = False
    state: int = COMMAND
    seen_greeting: str = ""
    extended_smtp: bool = False
    mailfrom: str | None = None
    rcpttos: list[str] = field(default_factory=list)
    require_SMTPUTF8: bool = False
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)
    command_size_limits: dict[str, int] = field(default_factory=dict)
    quitting: bool = False

    def __post_init__(self) -> None:
        if self.enable_SMTPUTF8 and self.decode_data:
            raise ValueError(
                "decode_data and enable_SMTPUTF8 cannot be set to True at the same time"
            )

    # -- limits ----------------------------------------------------------------------------

    def command_limit(self, command: str) -> int:
        """The longest line ``command`` may come on."""
        if not self.extended_smtp:
            return COMMAND_SIZE_LIMIT
        return self.command_size_limits.get(command, COMMAND_SIZE_LIMIT)

    @property
    def max_command_size(self) -> int:
        """The longest line any command may come on."""
        return max(self.command_size_limits.values(), default=COMMAND_SIZE_LIMIT)

    @property
    def encoding(self) -> str:
        """How replies are encoded: UTF-8 once the client asked for SMTPUTF8, else ASCII."""
        return "utf-8" if self.require_SMTPUTF8 else "ascii"

    # -- state resets ------------------------------------------------------------------------

    def end_transaction(self) -> None:
        """Back to the command state after a message (or RSET): no sender, no recipients."""
        self.state = COMMAND
        self.mailfrom = None
        self.rcpttos = []
        self.require_SMTPUTF8 = False

    def greeting(self) -> str:
        """The 220 banner sent when the client connects."""
        return f"220 {self.fqdn} {VERSION}"

    # -- verbs -------------------------------------------------------------------------------

    def _hello(self, arg: str | None, verb: str) -> str | None:
        if not arg:
            return f"501 Syntax: {verb} hostname"
        if self.seen_greeting:  # see CPython issue #21783
            return "503 Duplicate HELO/EHLO"
        self.end_transaction()
        self.seen_greeting = arg
        return None

    def helo(self, arg: str | None) -> list[str]:
        """HELO: greet without extensions."""
        refusal = self._hello(arg, "HELO")
        return [refusal or f"250 {self.fqdn}"]

    def ehlo(self, arg: str | None) -> list[str]:
        """EHLO: greet and list the extensions (SIZE, 8BITMIME, SMTPUTF8, HELP)."""
        refusal = self._hello(arg, "EHLO")
        if refusal:
            return [refusal]
        self.extended_smtp = True
        lines = [f"{self.fqdn}"]
        limits = self.command_size_limits
        if self.data_size_limit:
            lines.append(f"SIZE {self.data_size_limit}")
            limits["MAIL"] = limits.get("MAIL", COMMAND_SIZE_LIMIT) + SIZE_EXTENSION
        if not self.decode_data:
            lines.append("8BITMIME")
        if self.enable_SMTPUTF8:
            lines.append("SMTPUTF8")
            limits["MAIL"] = limits.get("MAIL", COMMAND_SIZE_LIMIT) + SMTPUTF8_EXTENSION
        lines.append("HELP")
        return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]

    def noop(self, arg: str | None) -> list[str]:
        """NOOP: nothing, politely."""
        return ["501 Syntax: NOOP" if arg else "250 OK"]

    def quit(self, arg: str | None) -> list[str]:
        """QUIT: say goodbye; the caller closes once the reply is sent."""
        self.quitting = True
        return ["221 Bye"]

    def _syntax(self, verb: str) -> str:
        extended = _MAIL_PARAMETERS if self.extended_smtp else ""
        return f"501 Syntax: {verb}: <address>{extended}"

    def _address_and_params(
        self, arg: str | None, keyword: str, verb: str
    ) -> tuple[str, list[str], dict[str, str | bool]] | str:
        syntax = self._syntax(verb)
        if arg is None:
            return syntax
        address, rest = parse_address(_strip_keyword(keyword, arg))
        if not address or (not self.extended_smtp and rest):
            return syntax
        if verb == "MAIL FROM" and self.mailfrom:
            return "503 Error: nested MAIL command"
        options = rest.upper().split()
        params = parse_params(options)
        if params is None:
            return syntax
        return address, options, params

    def mail(self, arg: str | None) -> list[str]:
        """MAIL FROM: start a transaction, checking BODY, SMTPUTF8 and SIZE parameters."""
        if not self.seen_greeting:
            return ["503 Error: send HELO first"]
        parsed = self._address_and_params(arg, "FROM:", "MAIL FROM")
        if isinstance(parsed, str):
            return [parsed]
        address, self.mail_options, params = parsed
        if not self.decode_data and params.pop("BODY", "7BIT") not in ("7BIT", "8BITMIME"):
            return ["501 Error: BODY can only be one of 7BIT, 8BITMIME"]
        if self.enable_SMTPUTF8:
            smtputf8 = params.pop("SMTPUTF8", False)
            if smtputf8 is True:
                self.require_SMTPUTF8 = True
            elif smtputf8 is not False:
                return ["501 Error: SMTPUTF8 takes no arguments"]
        size = params.pop("SIZE", None)
        if size:
            if not isinstance(size, str) or not size.isdigit():
                return [self._syntax("MAIL FROM")]
            if self.data_size_limit and int(size) > self.data_size_limit:
                return ["552 Error: message size exceeds fixed maximum message size"]
        if params:
            return ["555 MAIL FROM parameters not recognized or not implemented"]
        self.mailfrom = address
        return ["250 OK"]

    def rcpt(self, arg: str | None) -> list[str]:
        """RCPT TO: add a recipient (no parameters are recognised)."""
        if not self.seen_greeting:
            return ["503 Error: send HELO first"]
        if not self.mailfrom:
            return ["503 Error: need MAIL command"]
        parsed = self._address_and_params(arg, "TO:", "RCPT TO")
        if isinstance(parsed, str):
            return [parsed]
        address, self.rcpt_options, params = parsed
        if params:
            return ["555 RCPT TO parameters not recognized or not implemented"]
        self.rcpttos.append(address)
        return ["250 OK"]

    def rset(self, arg: str | None) -> list[str]:
        """RSET: abandon the transaction."""
        if arg:
            return ["501 Syntax: RSET"]
        self.end_transaction()
        return ["250 OK"]

    def data(self, arg: str | None) -> list[str]:
        """DATA: switch to reading the message, up to ``<CRLF>.<CRLF>``."""
        if not self.seen_greeting:
            return ["503 Error: send HELO first"]
        if not self.rcpttos:
            return ["503 Error: need RCPT command"]
        if arg:
            return ["501 Syntax: DATA"]
        self.state = DATA
        return ["354 End data with <CR><LF>.<CR><LF>"]

    def help(self, arg: str | None) -> list[str]:
        """HELP [verb]: the syntax of a verb, or the list of verbs."""
        if not arg:
            return [f"250 Supported commands: {_VERBS}"]
        verb = arg.upper()
        reply = _HELP.get(verb)
        if reply is None:
            return [f"501 Supported commands: {_VERBS}"]
        if verb in ("MAIL", "RCPT") and self.extended_smtp:
            reply += _MAIL_PARAMETERS
        return [reply]

    def vrfy(self, arg: str | None) -> list[str]:
        """VRFY: never verifies, but says whether the address parses."""
        if not arg:
            return ["501 Syntax: VRFY <address>"]
        address, _ = parse_address(arg)
        if address:
            return ["252 Cannot VRFY user, but will accept message and attempt delivery"]
        return [f"502 Could not VRFY {arg}"]

    def expn(self, arg: str | None) -> list[str]:
        """EXPN: not implemented, as in smtpd."""
        return ["502 EXPN not implemented"]

    VERBS = ("HELO", "EHLO", "NOOP", "QUIT", "MAIL", "RCPT", "RSET", "DATA", "HELP", "VRFY", "EXPN")

    def command(self, line: str, size: int) -> list[str]:
        """Answer one command line (``size`` bytes long on the wire, CRLF excluded)."""
        if not line:
            return ["500 Error: bad syntax"]
        verb, arg = split_command(line)
        if size > self.command_limit(verb):
            return ["500 Error: line too long"]
        if verb not in self.VERBS:
            return [f'500 Error: command "{verb}" not recognized']
        replies: list[str] = getattr(self, verb.lower())(arg)
        return replies
