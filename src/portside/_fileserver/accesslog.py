"""Access log lines in Common Log Format, through :mod:`logging` (logger ``portside.access``).

``host ident authuser [date] "request line" status bytes``, for example::

    127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a.png HTTP/1.1" 200 2326

What the client sent is escaped before it reaches the log: control characters, bytes above
0x7e, ``"`` and ``\\`` become ``\\xHH`` (as nginx writes them), so a request can neither
forge a log line nor smuggle terminal escape sequences to whoever reads the log.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from portside._fileserver.dates import DateCache

__all__ = ["AccessLog", "escape"]

log = logging.getLogger("portside.access")

_TABLE: Final = {i: f"\\x{i:02X}" for i in (*range(0x20), *range(0x7F, 0x100), ord('"'), ord("\\"))}
# A request line is cut to this length in the log; the request itself was limited to 8 KiB.
MAX_LOGGED_LINE: Final = 2048


def escape(raw: bytes) -> str:
    """``raw`` as printable ASCII, with the unsafe bytes written as ``\\xHH``."""
    return raw[:MAX_LOGGED_LINE].decode("latin-1").translate(_TABLE)


class AccessLog:
    """Writes one line per answered request while ``portside.access`` logs at INFO."""

    __slots__ = ("_dates",)

    def __init__(self, dates: DateCache) -> None:
        self._dates = dates

    @staticmethod
    def enabled() -> bool:
        """True when lines would be emitted (checked before building one)."""
        return log.isEnabledFor(logging.INFO)

    def write(self, peer: Any, request_line: bytes, status: int, size: int) -> None:
        """Log one exchange: ``size`` is the body bytes sent (``-`` when none)."""
        host = peer[0] if isinstance(peer, tuple) and peer else "-"
        log.info(
            '%s - - [%s] "%s" %d %s',
            host,
            self._dates.clf(),
            escape(request_line) if request_line else "-",
            status,
            size or "-",
        )
