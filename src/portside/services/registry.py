"""What a named service is: its protocols, default endpoints and options, servable as it is.

A :class:`Service` is what ``portside serve NAME`` runs, and anything else can serve it too::

    portside.serve(services.get("echo"), "tcp:7007", "udp:7007")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from portside.core.server import Handlers

__all__ = ["DEFAULT_INTERFACE", "Servable", "Service"]

DEFAULT_INTERFACE = "127.0.0.1"
"""Where services listen by default: loopback, so trying one out exposes nothing."""


class Servable(Protocol):
    """Anything the engine can serve: a Twisted ``Factory`` or ``DatagramProtocol``, a front
    door's server, another service."""

    def __portside_handlers__(self) -> Handlers: ...


@dataclass(frozen=True)
class Service:
    """A named service: what serves its streams and its datagrams, its port and its options.

    ``make_factory`` builds what serves streams (a Twisted-door ``Factory``, or any other
    servable with a ``stream`` handler) and ``make_datagram`` what serves UDP (a
    ``DatagramProtocol``), fresh each time the service is served. They take the options when
    the service has an ``options_type`` (a dataclass whose fields carry ``metadata["help"]``,
    from which the CLI derives its options) and nothing otherwise. Either may be None when
    the service does not speak that transport.
    """

    name: str
    summary: str
    port: int
    rfc: int | None = None
    make_factory: Callable[..., Any] | None = None
    make_datagram: Callable[..., Servable] | None = None
    options_type: type[Any] | None = None
    options: Any = None

    def __post_init__(self) -> None:
        if self.make_factory is None and self.make_datagram is None:
            raise ValueError(f"service {self.name!r} speaks neither TCP nor UDP")
        if self.options_type is None:
            if self.options is not None:
                raise TypeError(f"service {self.name!r} takes no options")
        elif self.options is None:
            object.__setattr__(self, "options", self.options_type())
        elif not isinstance(self.options, self.options_type):
            raise TypeError(
                f"service {self.name!r} takes {self.options_type.__name__}, "
                f"not {type(self.options).__name__}"
            )

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The default endpoints: TCP and/or UDP on the service's port, on loopback."""
        found = []
        if self.make_factory is not None:
            found.append(f"tcp:{self.port}:interface={DEFAULT_INTERFACE}")
        if self.make_datagram is not None:
            found.append(f"udp:{self.port}:interface={DEFAULT_INTERFACE}")
        return tuple(found)

    def with_options(self, options: Any = None, **changes: Any) -> Service:
        """This service with other options: a new options object, or fields to change."""
        if self.options_type is None:
            raise TypeError(f"service {self.name!r} takes no options")
        base = self.options if options is None else options
        if changes:
            base = dataclasses.replace(base, **changes)
        return dataclasses.replace(self, options=base)

    def _build(self, make: Callable[..., Servable]) -> Servable:
        return make() if self.options_type is None else make(self.options)

    def factory(self) -> Any:
        """A new factory (or other servable) serving this service over streams (None: no TCP)."""
        return None if self.make_factory is None else self._build(self.make_factory)

    def datagram_protocol(self) -> Servable | None:
        """A new datagram protocol serving this service over UDP (None: no UDP)."""
        return None if self.make_datagram is None else self._build(self.make_datagram)

    def __portside_handlers__(self) -> Handlers:
        """The engine handlers: the factory's for streams, the datagram protocol's for UDP.

        Options are applied here, so a bad option (a missing quote file) raises before any
        port is bound.
        """
        factory, datagram = self.factory(), self.datagram_protocol()
        stream = None if factory is None else factory.__portside_handlers__()
        udp = None if datagram is None else datagram.__portside_handlers__()
        return Handlers(
            stream=None if stream is None else stream.stream,
            datagram=None if udp is None else udp.datagram,
            name=self.name,
            started=None if stream is None else stream.started,
            stopped=None if stream is None else stream.stopped,
        )
