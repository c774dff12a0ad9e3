"""Preconditions, ranges, codings and dates, as the RFCs lay them out."""

from __future__ import annotations

import pytest

from portside._fileserver.conditional import (
    MAX_RANGES,
    UNSATISFIABLE,
    accepted_codings,
    coding_quality,
    evaluate,
    if_range,
    ranges,
)
from portside._fileserver.dates import DateCache, format_http_date, parse_http_date

ETAG = b'"abc-10"'
MTIME = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = b"Sat, 05 Nov 1994 08:49:37 GMT"
LATER = b"Mon, 07 Nov 1994 08:49:37 GMT"
TOO_MANY = b"bytes=" + b",".join(b"%d-%d" % (i * 10, i * 10 + 1) for i in range(MAX_RANGES + 1))


@pytest.mark.parametrize(
    ("fields", "method", "status"),
    [
        ({}, b"GET", 0),
        ({b"if-none-match": ETAG}, b"GET", 304),
        ({b"if-none-match": b'W/"abc-10"'}, b"GET", 304),  # weak comparison
        ({b"if-none-match": b'"x", "abc-10"'}, b"HEAD", 304),
        ({b"if-none-match": b"*"}, b"GET", 304),
        ({b"if-none-match": b'"other"'}, b"GET", 0),
        ({b"if-none-match": ETAG}, b"POST", 412),
        ({b"if-modified-since": DATE}, b"GET", 304),
        ({b"if-modified-since": LATER}, b"GET", 304),
        ({b"if-modified-since": EARLIER}, b"GET", 0),
        ({b"if-modified-since": b"not a date"}, b"GET", 0),
        ({b"if-modified-since": DATE}, b"POST", 0),  # only for GET and HEAD
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3)
        ({b"if-none-match": b'"other"', b"if-modified-since": LATER}, b"GET", 0),
        ({b"if-match": ETAG}, b"GET", 0),
        ({b"if-match": b"*"}, b"GET", 0),
        ({b"if-match": b'"other"'}, b"GET", 412),
        ({b"if-match": b'W/"abc-10"'}, b"GET", 412),  # strong comparison
        ({b"if-match": b"garbage"}, b"GET", 412),
        ({b"if-unmodified-since": EARLIER}, b"GET", 412),
        ({b"if-unmodified-since": DATE}, b"GET", 0),
        # If-Match is evaluated first: a match means If-Unmodified-Since is ignored
        ({b"if-match": ETAG, b"if-unmodified-since": EARLIER}, b"GET", 0),
        # ... and 412 beats 304
        ({b"if-match": b'"other"', b"if-none-match": ETAG}, b"GET", 412),
        ({b"if-unmodified-since": EARLIER, b"if-none-match": ETAG}, b"GET", 412),
    ],
)
def test_evaluate_follows_rfc_9110_order(
    fields: dict[bytes, bytes], method: bytes, status: int
) -> None:
    assert evaluate(method, fields, ETAG, MTIME) == status


@pytest.mark.parametrize(
    ("field", "size", "expected"),
    [
        (b"bytes=0-99", 1000, [(0, 99)]),
        (b"bytes=900-", 1000, [(900, 999)]),
        (b"bytes=-100", 1000, [(900, 999)]),
        (b"bytes=-5000", 1000, [(0, 999)]),
        (b"bytes=0-5000", 1000, [(0, 999)]),
        (b"bytes= 0-1 , 5-6", 1000, [(0, 1), (5, 6)]),
        (b"BYTES=5-6,0-1", 1000, [(0, 1), (5, 6)]),  # sorted
        (b"bytes=0-10,5-20", 1000, [(0, 20)]),  # overlapping ranges merged
        (b"bytes=0-10,11-20", 1000, [(0, 20)]),  # adjacent ranges merged
        (b"bytes=0-1,2000-3000", 1000, [(0, 1)]),  # the unsatisfiable one dropped
        (b"bytes=1000-", 1000, UNSATISFIABLE),
        (b"bytes=-0", 1000, UNSATISFIABLE),
        (b"bytes=0-0", 0, UNSATISFIABLE),
        (b"bytes=-1", 0, UNSATISFIABLE),
        (b"bytes=5-1", 1000, None),  # invalid: ignored
        (b"bytes=a-b", 1000, None),
        (b"bytes=-", 1000, None),
        (b"items=0-1", 1000, None),
        (b"bytes 0-1", 1000, None),
        (TOO_MANY, 1000, None),
        (b"bytes=" + b"0-1," * 300, 1000, None),
        (b"bytes=99999999999999999999-", 1000, None),  # beyond 18 digits: not a number we take
    ],
)
def test_ranges(field: bytes, size: int, expected: object) -> None:
    assert ranges(field, size) == expected


def test_if_range() -> None:
    assert if_range(ETAG, ETAG, MTIME)
    assert not if_range(b'"other"', ETAG, MTIME)
    assert not if_range(b'W/"abc-10"', ETAG, MTIME)  # weak tags never match
    assert if_range(DATE, ETAG, MTIME)
    assert not if_range(LATER, ETAG, MTIME)  # an exact match only
    assert not if_range(b"nonsense", ETAG, MTIME)


def test_accepted_codings() -> None:
    assert accepted_codings(b"gzip, deflate, br") == {b"gzip": 1.0, b"deflate": 1.0, b"br": 1.0}
    assert accepted_codings(b"br;q=0, GZIP;q=0.5") == {b"br": 0.0, b"gzip": 0.5}
    assert accepted_codings(b"*;q=0.1, gzip;q=0") == {b"*": 0.1, b"gzip": 0.0}
    assert accepted_codings(b"gzip;q=abc, ,, br, x;q=2") == {b"br": 1.0}
    assert accepted_codings(b"x-gzip;q=0.3, gzip;q=0.2") == {b"gzip": 0.3}
    assert accepted_codings(b"") == {}


@pytest.mark.parametrize(
    ("field", "gzip", "br"),
    [
        (b"*", 1.0, 1.0),  # RFC 9110 12.5.3: "*" matches any coding not listed
        (b"*;q=0.5, br;q=0", 0.5, 0.0),  # ...but a listed q=0 excludes that one
        (b"gzip;q=0, *", 0.0, 1.0),
        (b"*;q=0", 0.0, 0.0),
        (b"identity", 0.0, 0.0),  # not listed, no "*": not acceptable
        (b"", 0.0, 0.0),
    ],
)
def test_coding_quality(field: bytes, gzip: float, br: float) -> None:
    accepted = accepted_codings(field)
    assert (coding_quality(accepted, b"gzip"), coding_quality(accepted, b"br")) == (gzip, br)


def test_http_dates() -> None:
    assert format_http_date(MTIME) == DATE
    assert parse_http_date(DATE) == MTIME
    assert parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT") == MTIME  # RFC 850
    assert parse_http_date(b"Sun Nov  6 08:49:37 1994") == MTIME  # asctime
    for bad in (b"", b"yesterday", b"Sun, 06 Nov 1994 08:49:37 +0100", b"Sun, 32 Nov 1994 ..."):
        assert parse_http_date(bad) is None
    assert parse_http_date(b"Sun, 31 Xyz 1994 08:49:37 GMT") is None
    assert parse_http_date(b"Sun, 06 Nov 1994 25:49:37 GMT") is None
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT\xe9".encode("latin-1")) is None


def test_date_cache_formats() -> None:
    dates = DateCache()
    assert dates.http().endswith(b" GMT") and len(dates.http()) == 29
    clf = dates.clf()
    day, month, rest = clf.split("/", 2)
    assert len(day) == 2 and month in ("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec")
    assert rest[4] == ":" and rest[-5] in "+-"
