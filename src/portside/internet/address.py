"""Twisted's address objects: what ``getPeer()`` and ``getHost()`` return."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["IPv4Address", "IPv6Address", "UNIXAddress", "from_sockaddr"]


@dataclass(frozen=True, slots=True)
class IPv4Address:
    """An IPv4 socket address; ``type`` is ``"TCP"`` or ``"UDP"``."""

    type: Literal["TCP", "UDP"]
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class IPv6Address:
    """An IPv6 socket address; ``type`` is ``"TCP"`` or ``"UDP"``."""

    type: Literal["TCP", "UDP"]
    host: str
    port: int
    flowInfo: int = 0
    scopeID: int | str = 0


@dataclass(frozen=True, slots=True)
class UNIXAddress:
    """A Unix socket address; ``name`` is the path, or None for an unnamed peer."""

    name: str | bytes | None


def from_sockaddr(
    address: Any, kind: Literal["TCP", "UDP"] = "TCP", family: int | None = None
) -> IPv4Address | IPv6Address | UNIXAddress:
    """Turn a socket-module address into the matching Twisted address object."""
    if isinstance(address, str | bytes) or family == socket.AF_UNIX:
        return UNIXAddress(address or None)
    if len(address) == 4:
        return IPv6Address(kind, address[0], address[1], address[2], address[3])
    return IPv4Address(kind, address[0], address[1])
