"""Settings written once, as dataclass fields with default and help; the CLI is derived from them.

Each field's ``metadata["help"]`` is the text the ``portside`` command shows; the reason for a
default sits in a comment beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Limits"]

KiB = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits and timeouts one server applies to every connection it accepts."""

    # nginx's worker_connections default is 512 per worker and uvicorn has no cap; 10,000 keeps
    # a runaway client population from exhausting file descriptors while covering a busy server.
    max_connections: int | None = field(
        default=10_000,
        metadata={"help": "Stop accepting at this many open connections (resume below it)."},
    )
    # Drops connections that neither send nor receive for five minutes: long enough for interactive
    # line protocols (a human at telnet), short enough that dead peers do not pile up.
    idle_timeout: float | None = field(
        default=300.0,
        metadata={"help": "Close a connection after this many seconds without traffic."},
    )
    # A TLS handshake takes a few round trips; 10 s covers slow mobile links while stopping
    # clients that open a connection and never speak TLS (asyncio's own default is 60 s).
    handshake_timeout: float = field(
        default=10.0, metadata={"help": "Seconds a TLS handshake may take."}
    )
    # 64 KiB is asyncio's default high-water mark and a typical socket send buffer: enough to keep
    # the link busy, small enough that 10,000 stalled readers cost under 1 GiB at worst.
    write_buffer_high: int = field(
        default=64 * KiB,
        metadata={"help": "Pause the producer when this many bytes wait to be sent."},
    )
    # Resume once a quarter of the high mark is left, as asyncio does, so a producer is not
    # woken for every small drain.
    write_buffer_low: int = field(
        default=16 * KiB, metadata={"help": "Resume the producer below this many waiting bytes."}
    )
    # systemd's default TimeoutStopSec is 90 s; finishing well inside it leaves room for the
    # forced abort step.
    shutdown_timeout: float = field(
        default=30.0,
        metadata={"help": "Seconds a graceful shutdown waits for connections before aborting."},
    )

    def __post_init__(self) -> None:
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("max_connections must be at least 1 (or None for no cap)")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive (or None for no timeout)")
        if not 0 <= self.write_buffer_low <= self.write_buffer_high:
            raise ValueError("need 0 <= write_buffer_low <= write_buffer_high")
        if self.handshake_timeout <= 0 or self.shutdown_timeout < 0:
            raise ValueError("handshake_timeout must be positive and shutdown_timeout >= 0")
