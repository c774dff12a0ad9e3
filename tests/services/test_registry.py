"""The service registry: names, default endpoints, options, and what the engine is handed."""

from __future__ import annotations

from pathlib import Path

import pytest

from portside.app import as_handlers
from portside.internet.protocol import Factory
from portside.services import SERVICES, Service, get
from portside.services.builtins import EchoDatagram, QotdOptions

RFC_PORTS = {"echo": 7, "discard": 9, "daytime": 13, "qotd": 17, "chargen": 19, "time": 37}


CLASSICS = {name: s for name, s in SERVICES.items() if name in RFC_PORTS}


def test_every_classic_service_is_registered_on_7000_plus_its_rfc_port() -> None:
    assert {name: s.port - 7000 for name, s in CLASSICS.items()} == RFC_PORTS
    for name, service in CLASSICS.items():
        assert service.name == name and service.rfc and service.summary
        assert service.endpoints == (
            f"tcp:{service.port}:interface=127.0.0.1",
            f"udp:{service.port}:interface=127.0.0.1",
        )


def test_a_classic_service_is_servable_over_both_transports() -> None:
    for name, service in CLASSICS.items():
        handlers = as_handlers(service)
        assert handlers.name == name
        assert handlers.stream is not None and handlers.datagram is not None
        assert handlers.started is not None and handlers.stopped is not None


def test_each_serving_gets_fresh_protocol_objects() -> None:
    echo = get("echo")
    assert echo.factory() is not echo.factory()
    assert isinstance(echo.factory(), Factory)
    assert isinstance(echo.datagram_protocol(), EchoDatagram)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown service 'gopher' .*echo, discard"):
        get("gopher")


def test_options() -> None:
    qotd = get("qotd")
    assert qotd.options == QotdOptions()
    changed = qotd.with_options(quote_file=Path("q.txt"))
    assert changed.options == QotdOptions(quote_file=Path("q.txt"))
    assert qotd.options.quote_file is None  # the registered service is unchanged
    assert qotd.with_options(QotdOptions(Path("x"))).options.quote_file == Path("x")
    with pytest.raises(TypeError, match=r"echo.*takes no options"):
        get("echo").with_options(quote_file="q.txt")
    with pytest.raises(TypeError, match="takes QotdOptions, not str"):
        Service("q", "quotes", 1, make_datagram=EchoDatagram, options_type=QotdOptions, options="x")


def test_a_service_must_speak_something() -> None:
    with pytest.raises(ValueError, match="neither TCP nor UDP"):
        Service("mute", "says nothing", 7000)


def test_a_udp_only_service_has_only_a_udp_endpoint() -> None:
    service = Service("u", "udp echo", 7100, make_datagram=EchoDatagram)
    assert service.endpoints == ("udp:7100:interface=127.0.0.1",)
    handlers = as_handlers(service)
    assert handlers.stream is None and handlers.started is None
