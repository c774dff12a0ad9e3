"""Ready-to-run services, by name: what ``portside serve NAME`` runs.

Each entry of :data:`SERVICES` is a :class:`Service`, servable as it is::

    import portside
    from portside import services

    portside.serve(services.get("chargen"), "tcp:7019")
    portside.serve(services.get("qotd").with_options(quote_file="quotes.txt"), "tcp:7017")

Default endpoints are on 127.0.0.1: the file server (``http``) on 8000, the classic services on
7000 + the RFC's port over TCP and UDP, the SMTP sink on 7025.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from portside.internet.protocol import Factory
from portside.services import smtp
from portside.services.builtins import (
    Chargen,
    ChargenDatagram,
    Daytime,
    DaytimeDatagram,
    Discard,
    DiscardDatagram,
    Echo,
    EchoDatagram,
    QotdOptions,
    QuoteDatagram,
    QuoteFactory,
    Time,
    TimeDatagram,
    quotes_for,
)
from portside.services.fileserver import FileServer, FileServerOptions
from portside.services.registry import DEFAULT_INTERFACE, Service

__all__ = ["DEFAULT_INTERFACE", "SERVICES", "Service", "get"]

# Ports are 7000 + the well-known port, so they can be bound without privileges.
_CATALOG = (
    Service(
        "http",
        "serves a directory over HTTP/1.1: index.html, listings, ranges, 304s, sendfile",
        port=8000,
        rfc=9110,
        make_factory=FileServer,
        options_type=FileServerOptions,
    ),
    Service(
        "echo",
        "sends back whatever it receives",
        port=7007,
        rfc=862,
        make_factory=lambda: Factory.forProtocol(Echo),
        make_datagram=EchoDatagram,
    ),
    Service(
        "discard",
        "reads and drops everything",
        port=7009,
        rfc=863,
        make_factory=lambda: Factory.forProtocol(Discard),
        make_datagram=DiscardDatagram,
    ),
    Service(
        "daytime",
        "sends the date and time as text",
        port=7013,
        rfc=867,
        make_factory=lambda: Factory.forProtocol(Daytime),
        make_datagram=DaytimeDatagram,
    ),
    Service(
        "qotd",
        "sends a quote of the day",
        port=7017,
        rfc=865,
        make_factory=lambda options: QuoteFactory(quotes_for(options)),
        make_datagram=lambda options: QuoteDatagram(quotes_for(options)),
        options_type=QotdOptions,
    ),
    Service(
        "chargen",
        "streams a rotating pattern of characters",
        port=7019,
        rfc=864,
        make_factory=lambda: Factory.forProtocol(Chargen),
        make_datagram=ChargenDatagram,
    ),
    Service(
        "smtp",
        "accepts every message and stores it in a maildir (a mail catcher)",
        port=7025,
        rfc=5321,
        make_factory=smtp.sink_for,
        options_type=smtp.SMTPOptions,
    ),
    Service(
        "time",
        "sends the time as 32-bit seconds since 1900",
        port=7037,
        rfc=868,
        make_factory=lambda: Factory.forProtocol(Time),
        make_datagram=TimeDatagram,
    ),
)

SERVICES: Mapping[str, Service] = MappingProxyType({s.name: s for s in _CATALOG})
"""Every service by name, in port order."""


def get(name: str) -> Service:
    """The service called ``name``; KeyError lists the known names."""
    try:
        return SERVICES[name]
    except KeyError:
        raise KeyError(f"unknown service {name!r} (known: {', '.join(SERVICES)})") from None
