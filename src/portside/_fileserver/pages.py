"""The HTML the server writes itself: small error pages and the directory listing.

Every name and path put into a page is escaped with :func:`html.escape`, and every link is
percent-encoded, so a file called ``<script>`` is shown as text and links to itself.
"""

from __future__ import annotations

import html
import os
import stat
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Final
from urllib.parse import quote

__all__ = ["HTML", "Entry", "error_page", "listing_page", "scan"]

HTML: Final = b"text/html; charset=utf-8"

_STYLE: Final = (
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;"
    "max-width:60rem;padding:0 1rem;color:#222;background:#fff}"
    "h1{font-size:1.3rem;font-weight:600;word-break:break-all}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eee}"
    "th{font-weight:600;color:#555;border-bottom:2px solid #ddd}"
    "td.n{word-break:break-all}td.s,th.s{text-align:right;white-space:nowrap}"
    "td.d{white-space:nowrap;color:#555;font-variant-numeric:tabular-nums}"
    "a{color:#0645ad;text-decoration:none}a:hover{text-decoration:underline}"
    "tr:hover td{background:#f6f8fa}footer{margin-top:1rem;color:#888;font-size:.85rem}"
    "@media (prefers-color-scheme:dark){body{color:#ddd;background:#161616}"
    "a{color:#8ab4f8}th,td{border-color:#333}tr:hover td{background:#222}}"
)
_pages: dict[int, bytes] = {}


def error_page(status: int) -> bytes:
    """A small HTML page naming ``status`` (the same bytes every time)."""
    page = _pages.get(status)
    if page is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        title = f"{status} {html.escape(phrase)}"
        page = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{title}</title></head>\n<body><h1>{title}</h1></body></html>\n"
        ).encode()
        _pages[status] = page
    return page


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


Entry = tuple[str, bool, int, float]
"""A listed name: ``(name, is_directory, size, mtime)``."""


def _readable(name: str) -> str:
    """A file name for display: bytes that are not UTF-8 become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def scan(path: str, visible: Callable[[str, str, bool], bool]) -> list[Entry]:
    """The entries of directory ``path`` that ``visible(name, entry_path, is_link)`` allows.

    Directories come first, then files, each sorted by name without regard to case. Entries
    that cannot be stat'ed (broken links) and special files are left out.
    """
    entries: list[Entry] = []
    with os.scandir(path) as it:
        for item in it:
            if not visible(item.name, item.path, item.is_symlink()):
                continue
            try:
                st = item.stat()
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if is_dir or stat.S_ISREG(st.st_mode):
                entries.append((item.name, is_dir, st.st_size, st.st_mtime))
    entries.sort(key=lambda e: (not e[1], e[0].casefold(), e[0]))
    return entries


def listing_page(shown_path: str, entries: list[Entry], at_root: bool) -> bytes:
    """The HTML listing of a directory shown as ``shown_path`` (decoded, unescaped)."""
    title = html.escape(f"Index of {_readable(shown_path)}")
    rows = []
    if not at_root:
        rows.append(
            '<tr><td class="n"><a href="../">../</a></td><td class="s">—</td><td></td></tr>'
        )
    for name, is_dir, size, mtime in entries:
        label = html.escape(_readable(name) + ("/" if is_dir else ""))
        # quote() encodes ":" too, so no name can read as a scheme ("javascript:...").
        href = html.escape(quote(name, errors="surrogateescape") + ("/" if is_dir else ""))
        size_cell = "—" if is_dir else f'<span title="{size} bytes">{_size(size)}</span>'
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(mtime))
        rows.append(
            f'<tr><td class="n"><a href="{href}">{label}</a></td>'
            f'<td class="s">{size_cell}</td><td class="d">{when} UTC</td></tr>'
        )
    body = "\n".join(rows)
    count = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n<body><h1>{title}</h1>\n"
        f'<table><thead><tr><th>Name</th><th class="s">Size</th><th>Modified</th></tr></thead>'
        f"<tbody>\n{body}\n</tbody></table>\n<footer>{count} · portside</footer>\n"
        f"</body></html>\n"
    ).encode()
