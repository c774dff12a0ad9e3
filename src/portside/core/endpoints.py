"""Endpoint strings, one parser for every front door and the command line.

The grammar is Twisted's: ``type:positional:...:key=value:...`` with ``\\`` escaping the next
character (so ``tcp6:8080:interface=\\:\\:1``). Server endpoints::

    tcp:PORT[:interface=ADDR][:backlog=N][:reusePort=0|1]      (IPv6 when ADDR is an IPv6 one)
    tcp6:PORT[:interface=ADDR][:backlog=N][:reusePort=0|1]     (dual-stack when interface is ::)
    unix:PATH[:mode=0666][:lockfile=0|1][:backlog=N]
    udp:PORT[:interface=ADDR][:reusePort=0|1]
    udp6:PORT[:interface=ADDR][:reusePort=0|1]
    ssl:PORT[:certKey=PEM]:privateKey=PEM[:interface=ADDR][:backlog=N][:reusePort=0|1]
                              (certKey may hold the whole chain; defaults to privateKey)
    fd:N                      an inherited socket, already bound (and listening, for streams)
    systemd:N                 the N-th socket passed by systemd socket activation (fd 3 + N)

Client endpoints (``parse_client_endpoint``)::

    tcp:HOST:PORT[:timeout=S][:bindAddress=ADDR]
    ssl:HOST:PORT[:timeout=S][:trustRoots=PEM-or-dir][:certificate=PEM][:privateKey=PEM]
    unix:PATH[:timeout=S]

Every mistake raises :class:`~portside.errors.EndpointError` naming the field and the reason.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from portside.errors import EndpointError

__all__ = [
    "DEFAULT_BACKLOG",
    "ClientEndpoint",
    "Endpoint",
    "FDEndpoint",
    "TCPClientEndpoint",
    "TCPEndpoint",
    "TLSFiles",
    "UDPEndpoint",
    "UNIXClientEndpoint",
    "UNIXEndpoint",
    "parse_client_endpoint",
    "parse_endpoint",
    "split_description",
]

# Linux caps listen() at net.core.somaxconn (4096 on current kernels); 511 is nginx's and
# Redis's default, large enough that a burst of connects is not refused.
DEFAULT_BACKLOG = 511
# Twisted's default connect timeout.
DEFAULT_CONNECT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """PEM files for a TLS server: certificate chain and private key."""

    cert: str
    key: str


@dataclass(frozen=True, slots=True)
class TCPEndpoint:
    """A TCP (or TLS over TCP) listening address."""

    description: str
    host: str
    port: int
    family: socket.AddressFamily = socket.AF_INET
    backlog: int = DEFAULT_BACKLOG
    reuse_port: bool = False
    tls: TLSFiles | None = None


@dataclass(frozen=True, slots=True)
class UNIXEndpoint:
    """A Unix stream socket path; a stale socket file is replaced and ``mode`` applied."""

    description: str
    path: str
    mode: int = 0o666
    lockfile: bool = False
    backlog: int = DEFAULT_BACKLOG


@dataclass(frozen=True, slots=True)
class UDPEndpoint:
    """A UDP address to receive datagrams on."""

    description: str
    host: str
    port: int
    family: socket.AddressFamily = socket.AF_INET
    reuse_port: bool = False


@dataclass(frozen=True, slots=True)
class FDEndpoint:
    """An inherited socket, already bound; its family and type are read from the socket."""

    description: str
    fd: int


Endpoint = TCPEndpoint | UNIXEndpoint | UDPEndpoint | FDEndpoint


@dataclass(frozen=True, slots=True)
class TCPClientEndpoint:
    """Where to connect over TCP, optionally with TLS (``trust_roots`` None means system CAs)."""

    description: str
    host: str
    port: int
    timeout: float = DEFAULT_CONNECT_TIMEOUT
    bind_address: str | None = None
    tls: bool = False
    trust_roots: str | None = None
    certificate: str | None = None
    private_key: str | None = None


@dataclass(frozen=True, slots=True)
class UNIXClientEndpoint:
    """A Unix socket path to connect to."""

    description: str
    path: str
    timeout: float = DEFAULT_CONNECT_TIMEOUT


ClientEndpoint = TCPClientEndpoint | UNIXClientEndpoint


def split_description(description: str) -> tuple[str, list[str], dict[str, str]]:
    """Split an endpoint string into its type, positional arguments and keyword arguments."""
    parts: list[str] = []
    keys: list[str | None] = []
    current: list[str] = []
    key: str | None = None
    chars = iter(description)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise EndpointError(description, "syntax", "trailing backslash")
            current.append(escaped)
        elif char == ":":
            parts.append("".join(current))
            keys.append(key)
            current, key = [], None
        elif char == "=" and key is None and parts:
            key, current = "".join(current), []
        else:
            current.append(char)
    parts.append("".join(current))
    keys.append(key)

    kind = parts[0].strip().lower()
    if not kind:
        raise EndpointError(description, "type", "missing endpoint type (like tcp:8080)")
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for name, value in zip(keys[1:], parts[1:], strict=True):
        if name is None:
            if kwargs:
                raise EndpointError(description, value, "positional argument after key=value")
            args.append(value)
        elif name in kwargs:
            raise EndpointError(description, name, "given twice")
        else:
            kwargs[name] = value
    return kind, args, kwargs


class _Fields:
    """Positional and keyword arguments of one endpoint string, read field by field."""

    def __init__(
        self, description: str, names: tuple[str, ...], args: list[str], kwargs: dict[str, str]
    ) -> None:
        self.description = description
        if len(args) > len(names):
            raise EndpointError(description, args[len(names)], "unexpected extra argument")
        values = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name in values:
                raise EndpointError(description, name, "given both by position and by name")
            values[name] = value
        self.values = values

    def error(self, name: str, reason: str) -> EndpointError:
        return EndpointError(self.description, name, reason)

    def text(self, name: str, default: str | None = None) -> str:
        value = self.values.pop(name, default)
        if value is None:
            raise self.error(name, "is required")
        return value

    def optional(self, name: str) -> str | None:
        return self.values.pop(name, None)

    def number(self, name: str, default: int | None, *, low: int, high: int, base: int = 10) -> int:
        raw = self.values.pop(name, None)
        if raw is None:
            if default is None:
                raise self.error(name, "is required")
            return default
        try:
            value = int(raw, base)
        except ValueError:
            raise self.error(name, f"{raw!r} is not a number") from None
        if not low <= value <= high:
            raise self.error(name, f"{value} is out of range {low}..{high}")
        return value

    def seconds(self, name: str, default: float) -> float:
        raw = self.values.pop(name, None)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise self.error(name, f"{raw!r} is not a number of seconds") from None
        if not value > 0:
            raise self.error(name, "must be positive")
        return value

    def flag(self, name: str) -> bool:
        raw = self.values.pop(name, "0")
        if raw not in ("0", "1"):
            raise self.error(name, f"{raw!r} must be 0 or 1")
        return raw == "1"

    def done(self) -> None:
        for name in self.values:
            raise self.error(name, "unknown option for this endpoint type")


def _interface(fields: _Fields, family: socket.AddressFamily) -> tuple[str, socket.AddressFamily]:
    """The address to listen on and its family; empty or absent means every address.

    As in Twisted, ``tcp``, ``ssl`` and ``udp`` listen on IPv6 when given an IPv6 interface;
    ``tcp6`` and ``udp6`` insist on one.
    """
    default = "::" if family == socket.AF_INET6 else ""
    host = fields.text("interface", default) or default
    if host == "":
        return host, family
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise fields.error("interface", f"{host!r} is not an IP address") from None
    if address.version == 6:
        return host, socket.AF_INET6
    if family == socket.AF_INET6:
        raise fields.error("interface", f"{host!r} is not an IPv6 address")
    return host, family


def _port(fields: _Fields) -> int:
    return fields.number("port", None, low=0, high=65535)


def _tcp(fields: _Fields, family: socket.AddressFamily, tls: bool) -> TCPEndpoint:
    port = _port(fields)
    host, family = _interface(fields, family)
    files = None
    if tls:
        key = fields.text("privateKey", "server.pem")
        files = TLSFiles(fields.text("certKey", key), key)
    backlog = fields.number("backlog", DEFAULT_BACKLOG, low=1, high=65535)
    reuse_port = fields.flag("reusePort")
    fields.done()
    return TCPEndpoint(fields.description, host, port, family, backlog, reuse_port, files)


def _udp(fields: _Fields, family: socket.AddressFamily) -> UDPEndpoint:
    port = _port(fields)
    host, family = _interface(fields, family)
    reuse_port = fields.flag("reusePort")
    fields.done()
    return UDPEndpoint(fields.description, host, port, family, reuse_port)


def _unix(fields: _Fields) -> UNIXEndpoint:
    path = fields.text("address")
    if not path:
        raise fields.error("address", "the socket path is empty")
    if "\0" in path:
        raise fields.error("address", "the socket path contains a NUL character")
    mode = fields.number("mode", 0o666, low=0, high=0o777, base=8)
    lockfile = fields.flag("lockfile")
    backlog = fields.number("backlog", DEFAULT_BACKLOG, low=1, high=65535)
    fields.done()
    return UNIXEndpoint(fields.description, path, mode, lockfile, backlog)


def _fd(fields: _Fields) -> FDEndpoint:
    fd = fields.number("fileno", None, low=0, high=2**31 - 1)
    fields.done()
    return FDEndpoint(fields.description, fd)


def _systemd(fields: _Fields, environ: Mapping[str, str]) -> FDEndpoint:
    fields.optional("domain")  # accepted for Twisted compatibility; the socket says its family
    index = fields.number("index", None, low=0, high=2**16)
    fields.done()
    if environ.get("LISTEN_PID") not in (None, str(os.getpid())):
        raise fields.error("index", "LISTEN_PID names another process; sockets are not ours")
    raw_count = environ.get("LISTEN_FDS", "0") or "0"
    try:
        count = int(raw_count)
    except ValueError:
        raise fields.error("index", f"LISTEN_FDS={raw_count!r} is not a number") from None
    if index >= count:
        raise fields.error("index", f"systemd passed {count} socket(s), no index {index}")
    return FDEndpoint(fields.description, 3 + index)


_SERVER_FIELDS: dict[str, tuple[str, ...]] = {
    "tcp": ("port",),
    "tcp6": ("port",),
    "ssl": ("port",),
    "udp": ("port",),
    "udp6": ("port",),
    "unix": ("address",),
    "fd": ("fileno",),
    "systemd": ("index",),
}


def parse_endpoint(description: str, environ: Mapping[str, str] | None = None) -> Endpoint:
    """Parse a server endpoint string such as ``tcp:8080:interface=127.0.0.1``."""
    kind, args, kwargs = split_description(description)
    names = _SERVER_FIELDS.get(kind)
    if names is None:
        known = ", ".join(sorted(_SERVER_FIELDS))
        raise EndpointError(description, "type", f"unknown endpoint type {kind!r} (known: {known})")
    fields = _Fields(description, names, args, kwargs)
    builders: dict[str, Callable[[], Endpoint]] = {
        "tcp": lambda: _tcp(fields, socket.AF_INET, tls=False),
        "tcp6": lambda: _tcp(fields, socket.AF_INET6, tls=False),
        "ssl": lambda: _tcp(fields, socket.AF_INET, tls=True),
        "udp": lambda: _udp(fields, socket.AF_INET),
        "udp6": lambda: _udp(fields, socket.AF_INET6),
        "unix": lambda: _unix(fields),
        "fd": lambda: _fd(fields),
        "systemd": lambda: _systemd(fields, os.environ if environ is None else environ),
    }
    return builders[kind]()


def _client_tcp(fields: _Fields, tls: bool) -> TCPClientEndpoint:
    host = fields.text("host")
    if not host:
        raise fields.error("host", "is empty")
    port = fields.number("port", None, low=1, high=65535)
    timeout = fields.seconds("timeout", DEFAULT_CONNECT_TIMEOUT)
    bind = fields.optional("bindAddress")
    options: dict[str, Any] = {}
    if tls:
        options = {
            "trust_roots": fields.optional("trustRoots") or fields.optional("caCertsDir"),
            "certificate": fields.optional("certificate"),
            "private_key": fields.optional("privateKey"),
        }
    fields.done()
    return TCPClientEndpoint(fields.description, host, port, timeout, bind, tls, **options)


def parse_client_endpoint(description: str) -> ClientEndpoint:
    """Parse a client endpoint string such as ``tcp:localhost:8080`` or ``unix:/run/x.sock``."""
    kind, args, kwargs = split_description(description)
    if kind in ("tcp", "ssl"):
        return _client_tcp(_Fields(description, ("host", "port"), args, kwargs), kind == "ssl")
    if kind == "unix":
        fields = _Fields(description, ("path",), args, kwargs)
        path = fields.text("path")
        timeout = fields.seconds("timeout", DEFAULT_CONNECT_TIMEOUT)
        fields.done()
        return UNIXClientEndpoint(description, path, timeout)
    raise EndpointError(description, "type", f"unknown client endpoint type {kind!r}")
