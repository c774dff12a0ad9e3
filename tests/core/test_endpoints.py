"""The endpoint-string parser: every type, every option, every mistake, and a fuzz property."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.core.endpoints import (
    DEFAULT_BACKLOG,
    FDEndpoint,
    TCPClientEndpoint,
    TCPEndpoint,
    TLSFiles,
    UDPEndpoint,
    UNIXClientEndpoint,
    UNIXEndpoint,
    parse_client_endpoint,
    parse_endpoint,
    split_description,
)
from portside.errors import EndpointError


def error_field(description: str, **kwargs: object) -> str:
    with pytest.raises(EndpointError) as info:
        parse_endpoint(description, **kwargs)  # type: ignore[arg-type]
    assert info.value.description == description
    assert info.value.field in str(info.value)
    return info.value.field


# -- split_description --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("tcp:80", ("tcp", ["80"], {})),
        ("TCP:80", ("tcp", ["80"], {})),
        ("tcp:80:interface=127.0.0.1", ("tcp", ["80"], {"interface": "127.0.0.1"})),
        (r"tcp6:80:interface=\:\:1", ("tcp6", ["80"], {"interface": "::1"})),
        (r"unix:/tmp/a\:b", ("unix", ["/tmp/a:b"], {})),
        (r"unix:/tmp/a\=b", ("unix", ["/tmp/a=b"], {})),
        (r"unix:/tmp/a\\b", ("unix", ["/tmp/a\\b"], {})),
        ("tcp:80:interface=a=b", ("tcp", ["80"], {"interface": "a=b"})),
        ("tcp:", ("tcp", [""], {})),
        ("tcp", ("tcp", [], {})),
    ],
)
def test_split_description(description: str, expected: tuple[object, ...]) -> None:
    assert split_description(description) == expected


@pytest.mark.parametrize(
    ("description", "field"),
    [
        ("", "type"),
        (":80", "type"),
        ("tcp:80\\", "syntax"),
        ("tcp:interface=127.0.0.1:80", "80"),
        ("tcp:80:backlog=1:backlog=2", "backlog"),
    ],
)
def test_split_description_errors(description: str, field: str) -> None:
    with pytest.raises(EndpointError) as info:
        split_description(description)
    assert info.value.field == field


def test_trailing_backslash_reason() -> None:
    with pytest.raises(EndpointError, match="trailing backslash"):
        split_description("unix:/tmp/x\\")


def test_positional_after_keyword_reason() -> None:
    with pytest.raises(EndpointError, match="positional argument after key=value"):
        parse_endpoint("tcp:interface=127.0.0.1:80")


def test_duplicate_option_reason() -> None:
    with pytest.raises(EndpointError, match="given twice"):
        parse_endpoint("tcp:80:interface=127.0.0.1:interface=127.0.0.2")


# -- tcp / tcp6 / ssl ---------------------------------------------------------------------


def test_tcp_defaults() -> None:
    assert parse_endpoint("tcp:8080") == TCPEndpoint("tcp:8080", "", 8080, socket.AF_INET)
    endpoint = parse_endpoint("tcp:0")
    assert isinstance(endpoint, TCPEndpoint)
    assert (endpoint.port, endpoint.backlog, endpoint.reuse_port) == (0, DEFAULT_BACKLOG, False)


def test_tcp_every_option() -> None:
    text = "tcp:port=80:interface=127.0.0.1:backlog=5:reusePort=1"
    assert parse_endpoint(text) == TCPEndpoint(text, "127.0.0.1", 80, socket.AF_INET, 5, True)


def test_tcp_with_an_ipv6_interface_listens_on_ipv6() -> None:
    endpoint = parse_endpoint(r"tcp:80:interface=\:\:1")
    assert isinstance(endpoint, TCPEndpoint)
    assert (endpoint.host, endpoint.family) == ("::1", socket.AF_INET6)


def test_tcp6_defaults_to_every_address() -> None:
    endpoint = parse_endpoint("tcp6:80")
    assert isinstance(endpoint, TCPEndpoint)
    assert (endpoint.host, endpoint.family) == ("::", socket.AF_INET6)


def test_tcp6_interface_escaped_as_twisted_does() -> None:
    endpoint = parse_endpoint(r"tcp6:80:interface=\:\:1")
    assert isinstance(endpoint, TCPEndpoint)
    assert endpoint.host == "::1"
    scoped = parse_endpoint(r"tcp6:80:interface=fe80\:\:1%lo")
    assert isinstance(scoped, TCPEndpoint)
    assert scoped.host == "fe80::1%lo"


def test_empty_interface_means_every_address() -> None:
    endpoint = parse_endpoint("tcp6:80:interface=")
    assert isinstance(endpoint, TCPEndpoint)
    assert endpoint.host == "::"


def test_ssl_files() -> None:
    endpoint = parse_endpoint("ssl:443:privateKey=key.pem:certKey=cert.pem")
    assert isinstance(endpoint, TCPEndpoint)
    assert endpoint.tls == TLSFiles("cert.pem", "key.pem")
    assert endpoint.port == 443


def test_ssl_cert_defaults_to_private_key_and_key_to_server_pem() -> None:
    endpoint = parse_endpoint("ssl:443:privateKey=both.pem")
    assert isinstance(endpoint, TCPEndpoint)
    assert endpoint.tls == TLSFiles("both.pem", "both.pem")
    bare = parse_endpoint("ssl:443")
    assert isinstance(bare, TCPEndpoint)
    assert bare.tls == TLSFiles("server.pem", "server.pem")


def test_ssl_interface_and_backlog() -> None:
    endpoint = parse_endpoint("ssl:443:privateKey=k:interface=127.0.0.1:backlog=7")
    assert isinstance(endpoint, TCPEndpoint)
    assert (endpoint.host, endpoint.backlog) == ("127.0.0.1", 7)


@pytest.mark.parametrize(
    ("description", "field", "reason"),
    [
        ("nope:80", "type", "unknown endpoint type"),
        ("a=b:80", "type", "unknown endpoint type"),
        ("tcp", "port", "is required"),
        ("tcp:http", "port", "not a number"),
        ("tcp:", "port", "not a number"),
        ("tcp:-1", "port", "out of range"),
        ("tcp:65536", "port", "out of range"),
        ("tcp:80:interface=localhost", "interface", "not an IP address"),
        ("tcp:80:interface=999.1.1.1", "interface", "not an IP address"),
        ("tcp6:80:interface=127.0.0.1", "interface", "not an IPv6 address"),
        ("udp6:80:interface=127.0.0.1", "interface", "not an IPv6 address"),
        ("tcp:80:color=blue", "color", "unknown option"),
        ("tcp:80:mode=600", "mode", "unknown option"),
        ("tcp:80:81", "81", "unexpected extra argument"),
        ("tcp:80:port=81", "port", "given both by position and by name"),
        ("tcp:80:backlog=0", "backlog", "out of range"),
        ("tcp:80:backlog=x", "backlog", "not a number"),
        ("tcp:80:reusePort=yes", "reusePort", "must be 0 or 1"),
        ("udp:80:backlog=5", "backlog", "unknown option"),
        ("unix:", "address", "empty"),
        ("unix", "address", "is required"),
        ("unix:/tmp/x:mode=999", "mode", "not a number"),
        ("unix:/tmp/x:mode=1777", "mode", "out of range"),
        ("unix:/tmp/x:mode=rw", "mode", "not a number"),
        ("unix:/tmp/x:lockfile=2", "lockfile", "must be 0 or 1"),
        ("unix:/tmp/x:interface=127.0.0.1", "interface", "unknown option"),
        ("unix:/tmp/\0x", "address", "NUL"),
        ("fd:", "fileno", "not a number"),
        ("fd:-3", "fileno", "out of range"),
        ("fd:3:mode=600", "mode", "unknown option"),
        ("systemd", "index", "is required"),
    ],
)
def test_server_endpoint_errors(description: str, field: str, reason: str) -> None:
    with pytest.raises(EndpointError, match=reason) as info:
        parse_endpoint(description, environ={})
    assert info.value.field == field
    assert info.value.description == description
    assert repr(description) in str(info.value)


# -- unix / udp / fd / systemd ------------------------------------------------------------


def test_unix_defaults_and_options() -> None:
    assert parse_endpoint("unix:/run/x.sock") == UNIXEndpoint("unix:/run/x.sock", "/run/x.sock")
    text = "unix:/run/x.sock:mode=0660:lockfile=1:backlog=9"
    assert parse_endpoint(text) == UNIXEndpoint(text, "/run/x.sock", 0o660, True, 9)
    assert parse_endpoint("unix:address=/r:mode=660") == UNIXEndpoint(
        "unix:address=/r:mode=660", "/r", 0o660
    )


def test_udp() -> None:
    assert parse_endpoint("udp:9999") == UDPEndpoint("udp:9999", "", 9999)
    text = "udp:9999:interface=127.0.0.1:reusePort=1"
    assert parse_endpoint(text) == UDPEndpoint(text, "127.0.0.1", 9999, socket.AF_INET, True)
    v6 = parse_endpoint(r"udp6:9999:interface=\:\:1")
    assert isinstance(v6, UDPEndpoint)
    assert (v6.host, v6.family) == ("::1", socket.AF_INET6)


def test_fd() -> None:
    assert parse_endpoint("fd:3") == FDEndpoint("fd:3", 3)
    assert parse_endpoint("fd:fileno=7") == FDEndpoint("fd:fileno=7", 7)


def test_systemd_maps_index_to_descriptor() -> None:
    environ = {"LISTEN_FDS": "2", "LISTEN_PID": str(os.getpid())}
    assert parse_endpoint("systemd:1", environ) == FDEndpoint("systemd:1", 4)
    assert parse_endpoint("systemd:domain=INET:index=0", environ) == FDEndpoint(
        "systemd:domain=INET:index=0", 3
    )


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
        ({}, "passed 0 socket"),
        ({"LISTEN_FDS": "1"}, "no index 1"),
        ({"LISTEN_FDS": "2", "LISTEN_PID": "1"}, "another process"),
        ({"LISTEN_FDS": "two"}, "not a number"),
    ],
)
def test_systemd_errors(environ: dict[str, str], reason: str) -> None:
    with pytest.raises(EndpointError, match=reason) as info:
        parse_endpoint("systemd:1", environ)
    assert info.value.field == "index"


# -- client endpoints ---------------------------------------------------------------------


def test_client_endpoints() -> None:
    assert parse_client_endpoint("tcp:localhost:80") == TCPClientEndpoint(
        "tcp:localhost:80", "localhost", 80
    )
    text = "ssl:host=example.org:port=443:timeout=2.5:trustRoots=ca.pem:bindAddress=10.0.0.1"
    endpoint = parse_client_endpoint(text)
    assert isinstance(endpoint, TCPClientEndpoint)
    assert (endpoint.tls, endpoint.timeout, endpoint.trust_roots, endpoint.bind_address) == (
        True,
        2.5,
        "ca.pem",
        "10.0.0.1",
    )
    assert parse_client_endpoint("unix:/run/x:timeout=1") == UNIXClientEndpoint(
        "unix:/run/x:timeout=1", "/run/x", 1.0
    )


@pytest.mark.parametrize(
    ("description", "field"),
    [
        ("udp:h:1", "type"),
        ("tcp::80", "host"),
        ("tcp:h:0", "port"),
        ("tcp:h:80:timeout=0", "timeout"),
        ("tcp:h:80:timeout=nan", "timeout"),
        ("tcp:h:80:timeout=soon", "timeout"),
        ("tcp:h:80:trustRoots=ca.pem", "trustRoots"),
    ],
)
def test_client_endpoint_errors(description: str, field: str) -> None:
    with pytest.raises(EndpointError) as info:
        parse_client_endpoint(description)
    assert info.value.field == field


# -- fuzz ---------------------------------------------------------------------------------

_pieces = st.sampled_from(
    [
        "tcp",
        "tcp6",
        "ssl",
        "udp",
        "udp6",
        "unix",
        "fd",
        "systemd",
        ":",
        "=",
        "\\",
        "\\:",
        "0",
        "80",
        "65536",
        "-1",
        "interface",
        "backlog",
        "mode",
        "lockfile",
        "reusePort",
        "privateKey",
        "certKey",
        "port",
        "index",
        "domain",
        "::1",
        "127.0.0.1",
        "1",
        "0660",
        "\0",
        "%",
        "é",
        "٣",
    ]
)
_descriptions = st.one_of(
    st.text(max_size=40),
    st.lists(_pieces, max_size=12).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(_descriptions)
def test_parse_endpoint_returns_an_endpoint_or_raises_endpoint_error(description: str) -> None:
    try:
        endpoint = parse_endpoint(description, environ={"LISTEN_FDS": "1"})
    except EndpointError as exc:
        assert exc.description == description
        return
    assert isinstance(endpoint, TCPEndpoint | UNIXEndpoint | UDPEndpoint | FDEndpoint)


@settings(max_examples=300, deadline=None)
@given(_descriptions)
def test_split_description_splits_or_raises_endpoint_error(description: str) -> None:
    try:
        kind, args, kwargs = split_description(description)
    except EndpointError:
        return
    assert kind == kind.strip().lower()
    assert all(isinstance(arg, str) for arg in args)
    assert all(isinstance(value, str) for value in kwargs.values())


@settings(max_examples=300, deadline=None)
@given(_descriptions)
def test_parse_client_endpoint_returns_or_raises_endpoint_error(description: str) -> None:
    try:
        endpoint = parse_client_endpoint(description)
    except EndpointError:
        return
    assert isinstance(endpoint, TCPClientEndpoint | UNIXClientEndpoint)


@given(st.text(alphabet="abc:=\\", max_size=20))
def test_escaping_round_trips_a_positional(value: str) -> None:
    escaped = "".join("\\" + c if c in ":=\\" else c for c in value)
    kind, args, kwargs = split_description(f"unix:{escaped}")
    assert (kind, args, kwargs) == ("unix", [value], {})
