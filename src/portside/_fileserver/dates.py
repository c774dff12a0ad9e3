"""HTTP dates (RFC 9110 5.6.7) and the Common Log Format's date, each formatted once a second.

Formatting avoids ``time.strftime`` because ``%a`` and ``%b`` follow the process locale, and
HTTP dates are always English.
"""

from __future__ import annotations

import calendar
import re
import time
from email.utils import parsedate_tz
from typing import Final

__all__ = ["DateCache", "format_http_date", "parse_http_date"]

_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_MONTH_NUMBERS: Final = {name.encode(): n for n, name in enumerate(_MONTHS, 1)}
# IMF-fixdate, the one format senders must use: "Sun, 06 Nov 1994 08:49:37 GMT".
_IMF_FIXDATE: Final = re.compile(
    rb"[A-Z][a-z]{2}, ([0-9]{2}) ([A-Z][a-z]{2}) ([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)


def format_http_date(timestamp: float) -> bytes:
    """``timestamp`` (seconds since the epoch) as an IMF-fixdate."""
    t = time.gmtime(timestamp)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    ).encode("ascii")


def parse_http_date(value: bytes) -> int | None:
    """Seconds since the epoch for an HTTP-date in any of its three formats, else None.

    IMF-fixdate is parsed here; the obsolete RFC 850 and asctime forms, which recipients must
    still accept (RFC 9110 5.6.7), go through the email package's lenient parser.
    """
    value = value.strip(b" \t")
    match = _IMF_FIXDATE.fullmatch(value)
    if match is not None:
        number = _MONTH_NUMBERS.get(match[2])
        day, hour, minute, second = int(match[1]), int(match[4]), int(match[5]), int(match[6])
        # 60 seconds is a leap second
        if number is None or not (1 <= day <= 31 and hour < 24 and minute < 60 and second <= 60):
            return None
        return calendar.timegm((int(match[3]), number, day, hour, minute, second, 0, 0, 0))
    if not value.isascii() or len(value) > 64:
        return None
    parsed = parsedate_tz(value.decode("ascii"))
    if parsed is None or parsed[9] not in (0, None):
        return None
    try:  # the email parser already widened RFC 850's two-digit year
        return calendar.timegm((*parsed[:6], 0, 0, 0))
    except (ValueError, OverflowError):
        return None


class DateCache:
    """The current ``Date`` header value and access-log date, recomputed once a second."""

    __slots__ = ("_clf", "_http", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._http = b""
        self._clf = ""

    def _update(self, second: int) -> None:
        # The second is stored last: a worker thread (building a listing) that sees the new
        # second also sees the strings that belong to it.
        self._http = format_http_date(second)
        t = time.localtime(second)
        offset = t.tm_gmtoff // 60
        sign = "-" if offset < 0 else "+"
        self._clf = (
            f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} "
            f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
        )
        self._second = second

    def http(self) -> bytes:
        """Now, as a ``Date`` header value."""
        second = int(time.time())
        if second != self._second:
            self._update(second)
        return self._http

    def clf(self) -> str:
        """Now, as Common Log Format writes it: ``10/Oct/2000:13:55:36 -0700``."""
        second = int(time.time())
        if second != self._second:
            self._update(second)
        return self._clf
