"""Settings written once, as dataclass fields with default and help; the CLI is derived from them.

Each field's ``metadata["help"]`` is the text the ``portside`` command shows, and
``metadata["reason"]`` says why the default is what it is; docs/server-behaviour.md renders
its table of limits from both (a test keeps the page and the code in step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Limits"]

KiB = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits and timeouts one server applies to every connection it accepts."""

    max_connections: int | None = field(
        default=10_000,
        metadata={
            "help": "Stop accepting at this many open connections (resume below it).",
            "reason": "nginx's worker_connections default is 512 per worker and uvicorn has no "
            "cap; 10,000 keeps a runaway client population from exhausting file descriptors "
            "while covering a busy server.",
        },
    )
    idle_timeout: float | None = field(
        default=300.0,
        metadata={
            "help": "Close a connection after this many seconds without traffic.",
            "reason": "Long enough for interactive line protocols (a human at telnet), short "
            "enough that dead peers do not pile up.",
        },
    )
    handshake_timeout: float = field(
        default=10.0,
        metadata={
            "help": "Seconds a TLS handshake may take.",
            "reason": "A handshake takes a few round trips; 10 s covers slow mobile links while "
            "dropping clients that connect and never speak TLS (asyncio's own default is 60 s).",
        },
    )
    write_buffer_high: int = field(
        default=64 * KiB,
        metadata={
            "help": "Pause the producer when this many bytes wait to be sent.",
            "reason": "asyncio's default and a typical socket send buffer: enough to keep the "
            "link busy, small enough that 10,000 stalled readers cost under 1 GiB at worst.",
        },
    )
    write_buffer_low: int = field(
        default=16 * KiB,
        metadata={
            "help": "Resume the producer below this many waiting bytes.",
            "reason": "A quarter of the high mark, as asyncio does, so a producer is not woken "
            "for every small drain.",
        },
    )
    shutdown_timeout: float = field(
        default=30.0,
        metadata={
            "help": "Seconds a graceful shutdown waits for connections before aborting.",
            "reason": "systemd's default TimeoutStopSec is 90 s; finishing well inside it leaves "
            "room for the forced abort step.",
        },
    )

    def __post_init__(self) -> None:
        # Comparisons are written so that NaN fails them.
        if self.max_connections is not None and not self.max_connections >= 1:
            raise ValueError("max_connections must be at least 1 (or None for no cap)")
        if self.idle_timeout is not None and not self.idle_timeout > 0:
            raise ValueError("idle_timeout must be positive (or None for no timeout)")
        if not 0 <= self.write_buffer_low <= self.write_buffer_high:
            raise ValueError("need 0 <= write_buffer_low <= write_buffer_high")
        if not (self.handshake_timeout > 0 and self.shutdown_timeout >= 0):
            raise ValueError("handshake_timeout must be positive and shutdown_timeout >= 0")
