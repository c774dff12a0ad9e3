"""Preconditions (RFC 9110 13) and byte ranges (RFC 9110 14), as pure functions.

``evaluate`` applies the preconditions in the order RFC 9110 13.2.2 prescribes; ``ranges``
parses a ``Range`` field against a representation's length; ``if_range`` decides whether a
range request still applies to the current representation.
"""

from __future__ import annotations

import re
from typing import Final

from portside._fileserver.dates import parse_http_date

__all__ = [
    "MAX_RANGES",
    "UNSATISFIABLE",
    "accepted_codings",
    "coding_quality",
    "evaluate",
    "if_range",
    "ranges",
]

# More ranges than this (after merging overlapping and adjacent ones) and the Range field is
# ignored: the whole file is cheaper than a multipart body built to cost the server work
# (Apache's CVE-2011-3192 was exactly that); 16 covers real clients, which ask for a handful.
MAX_RANGES: Final = 16
# A Range field with more comma-separated parts than this is ignored without being parsed.
MAX_RANGE_PARTS: Final = 256

UNSATISFIABLE: Final = "unsatisfiable"
"""``ranges`` result: none of the ranges overlaps the representation (answer 416)."""

_ETAG_RE: Final = re.compile(rb'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
_LIST_ITEM_RE: Final = re.compile(rb'[ \t]*(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"[ \t]*')
_RANGE_RE: Final = re.compile(rb"([0-9]{0,18})[ \t]*-[ \t]*([0-9]{0,18})")
_CODING_RE: Final = re.compile(
    rb"[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*(?:;[ \t]*[qQ][ \t]*=[ \t]*([0-9.]{1,5}))?[ \t]*"
)


def _matches(field: bytes, etag: bytes, strong: bool) -> bool:
    """Whether an ``If-Match``/``If-None-Match`` value matches ``etag`` (a strong tag)."""
    if field.strip(b" \t") == b"*":
        return True
    for item in field.split(b","):
        if not item.strip(b" \t"):
            continue
        if _LIST_ITEM_RE.fullmatch(item) is None:
            return False  # not a list of entity-tags: treat as no match
        tag = item.strip(b" \t")
        if tag.startswith(b"W/"):
            if strong:
                continue
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def evaluate(method: bytes, fields: dict[bytes, bytes], etag: bytes, mtime: int) -> int:
    """The status the preconditions call for (304 or 412), or 0 to go on.

    ``etag`` is the representation's strong tag and ``mtime`` its ``Last-Modified`` in whole
    seconds. The order is RFC 9110 13.2.2: If-Match, else If-Unmodified-Since (412); then
    If-None-Match, else If-Modified-Since for GET and HEAD (304; 412 for other methods).
    """
    if_match = fields.get(b"if-match")
    if if_match is not None:
        if not _matches(if_match, etag, strong=True):
            return 412
    else:
        since = fields.get(b"if-unmodified-since")
        if since is not None:
            date = parse_http_date(since)
            if date is not None and mtime > date:
                return 412
    safe = method == b"GET" or method == b"HEAD"
    if_none_match = fields.get(b"if-none-match")
    if if_none_match is not None:
        if _matches(if_none_match, etag, strong=False):
            return 304 if safe else 412
    elif safe:
        since = fields.get(b"if-modified-since")
        if since is not None:
            date = parse_http_date(since)
            if date is not None and mtime <= date:
                return 304
    return 0


def if_range(field: bytes, etag: bytes, mtime: int) -> bool:
    """Whether a range request under ``If-Range: field`` still applies (RFC 9110 13.1.5).

    An entity-tag must match strongly; a date must equal ``Last-Modified`` exactly.
    """
    field = field.strip(b" \t")
    if field[:1] == b'"' or field[:2] == b"W/":
        return field == etag
    date = parse_http_date(field)
    return date is not None and date == mtime


def ranges(field: bytes, size: int) -> list[tuple[int, int]] | str | None:
    """Parse a ``Range`` field for a representation of ``size`` bytes.

    Returns inclusive ``(first, last)`` pairs, sorted with overlapping and adjacent ranges
    merged (RFC 9110 14.2 allows coalescing); :data:`UNSATISFIABLE` when none of them
    overlaps the representation; None when the field is to be ignored (another unit, bad
    syntax, or too many ranges), which means sending the whole representation.
    """
    unit, equals, spec = field.partition(b"=")
    if not equals or unit.strip(b" \t").lower() != b"bytes" or spec.count(b",") >= MAX_RANGE_PARTS:
        return None
    found: list[tuple[int, int]] = []
    for part in spec.split(b","):
        part = part.strip(b" \t")
        if not part:
            continue
        match = _RANGE_RE.fullmatch(part)
        if match is None:
            return None
        first, last = match.groups()
        if first:
            start = int(first)
            if last:
                end = int(last)
                if end < start:
                    return None
            else:
                end = size - 1
            if start >= size:
                continue  # this range is unsatisfiable; others may not be
            found.append((start, min(end, size - 1)))
        elif last:
            suffix = int(last)
            if suffix and size:
                found.append((max(0, size - suffix), size - 1))
        else:
            return None
    if not found:
        return UNSATISFIABLE
    found.sort()
    merged = [found[0]]
    for start, end in found[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end + 1:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged if len(merged) <= MAX_RANGES else None


def accepted_codings(field: bytes) -> dict[bytes, float]:
    """The content codings an ``Accept-Encoding`` value names, lowercased, with their q.

    A coding listed with ``q=0`` is kept with 0.0 (refused, whatever ``*`` says); ``*``
    stands for every coding not listed (RFC 9110 12.5.3); ``x-gzip`` is ``gzip`` (RFC 9110
    8.4.1.3). A malformed member is skipped; a repeated coding keeps its highest q.
    """
    accepted: dict[bytes, float] = {}
    for member in field.split(b","):
        match = _CODING_RE.fullmatch(member)
        if match is None:
            continue
        coding, q_text = match.groups()
        q = 1.0
        if q_text is not None:
            try:
                q = float(q_text)
            except ValueError:
                continue
            if not 0.0 <= q <= 1.0:
                continue
        coding = coding.lower()
        if coding == b"x-gzip":
            coding = b"gzip"
        if q >= accepted.get(coding, 0.0):
            accepted[coding] = q
    return accepted


def coding_quality(accepted: dict[bytes, float], coding: bytes) -> float:
    """How much ``accepted`` (from :func:`accepted_codings`) wants ``coding``: 0.0 is not at all."""
    q = accepted.get(coding)
    return accepted.get(b"*", 0.0) if q is None else q
