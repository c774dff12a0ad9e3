"""Counters a server keeps, and the frozen snapshot ``Server.statistics()`` returns."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Counters", "Statistics"]


@dataclass(frozen=True, slots=True)
class Statistics:
    """A snapshot of one server's counters since it started."""

    connections_open: int
    connections_total: int
    bytes_received: int
    bytes_sent: int
    datagrams_received: int
    datagrams_sent: int
    errors: int
    connection_errors: int
    timeouts: int
    write_pauses: int
    accept_pauses: int


class Counters:
    """Mutable totals owned by one server; live connections keep their own byte counts."""

    __slots__ = (
        "accept_pauses",
        "bytes_received",
        "bytes_sent",
        "connection_errors",
        "connections_total",
        "datagrams_received",
        "datagrams_sent",
        "errors",
        "timeouts",
        "write_pauses",
    )

    def __init__(self) -> None:
        self.connections_total = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.datagrams_received = 0
        self.datagrams_sent = 0
        self.errors = 0
        self.connection_errors = 0
        self.timeouts = 0
        self.write_pauses = 0
        self.accept_pauses = 0

    def snapshot(self, connections_open: int, bytes_received: int, bytes_sent: int) -> Statistics:
        """A frozen :class:`Statistics` of these totals.

        The caller gives what it counts elsewhere: the connections open, and the byte totals
        including the live connections' own counts.
        """
        return Statistics(
            connections_open=connections_open,
            connections_total=self.connections_total,
            bytes_received=bytes_received,
            bytes_sent=bytes_sent,
            datagrams_received=self.datagrams_received,
            datagrams_sent=self.datagrams_sent,
            errors=self.errors,
            connection_errors=self.connection_errors,
            timeouts=self.timeouts,
            write_pauses=self.write_pauses,
            accept_pauses=self.accept_pauses,
        )
