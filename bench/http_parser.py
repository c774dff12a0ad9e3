"""Measure request-head parsing: portside's own parser against httptools (llhttp).

The workload is a typical browser-like GET of about 300 bytes with 8 headers, pipelined 100
times in one buffer. Each request's header block differs (a counter in the cookie), so the
head reader's per-connection memo of header blocks never hits; one more line measures the
case it is for, a client repeating the same header block. Each side does the same work per
request: find the head, validate it, collect ``(lowercased name, value)`` pairs and build a
``Request`` event. Run with ``python bench/http_parser.py``; figures are the best of several
rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from portside.proto._http_parse import Buffer, HeadReader, HTTPLimits
from portside.proto.http import (
    NEED_DATA,
    PAUSED,
    EndOfMessage,
    Request,
    Response,
    ServerConnection,
)

REQUEST = (
    b"GET /static/app.js?v=20240101 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101\r\n"
    b"Accept: */*\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://www.example.com/index.html\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=4f2a9c1e7b3d5a60; theme=dark; n=%03d\r\n"
    b"\r\n"
)
PIPELINE = 100
REQUESTS = [REQUEST % i for i in range(PIPELINE)]  # header blocks all different
PAYLOAD = b"".join(REQUESTS)
REPEATED = REQUESTS[0] * PIPELINE  # one header block again and again
ROUNDS = 200


def portside_parser() -> int:
    """The parser alone: the head reader over one buffer of pipelined requests."""
    buf = Buffer()
    buf.feed(PAYLOAD)
    reader = HeadReader(HTTPLimits())
    count = 0
    while (head := reader.read(buf)) is not None:
        count += head[0] is not None
    return count


def portside_parser_repeated() -> int:
    """The parser alone over one header block repeated (its memo hits)."""
    buf = Buffer()
    buf.feed(REPEATED)
    reader = HeadReader(HTTPLimits())
    count = 0
    while (head := reader.read(buf)) is not None:
        count += head[0] is not None
    return count


def portside_parser_single() -> int:
    """The parser alone, one request per received chunk (no pipelining)."""
    buf = Buffer()
    reader = HeadReader(HTTPLimits())
    count = 0
    for request in REQUESTS:
        buf.feed(request)
        count += reader.read(buf) is not None
    return count


def portside_machine() -> int:
    """The whole machine: next_event to EndOfMessage, then a minimal response."""
    conn = ServerConnection()
    conn.receive_data(PAYLOAD)
    response = Response(200, [(b"content-length", b"0")])
    end = EndOfMessage()
    count = 0
    while True:
        event = conn.next_event()
        if event is PAUSED:
            conn.send(response)
            conn.send(end)
        elif event is NEED_DATA:
            return count
        elif type(event) is Request:
            count += 1


def httptools_parser() -> int:
    """httptools' HttpRequestParser with callbacks collecting the same Request events."""
    import httptools  # optional: the comparison is skipped without it

    class Collector:
        def __init__(self) -> None:
            self.requests: list[Request] = []
            self.headers: list[tuple[bytes, bytes]] = []
            self.url = b""

        def on_message_begin(self) -> None:
            self.headers = []

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name.lower(), value))

        def on_headers_complete(self) -> None:
            parser.should_keep_alive()
            self.requests.append(
                Request(
                    parser.get_method(),
                    self.url,
                    parser.get_http_version().encode(),
                    self.headers,
                )
            )

    collector = Collector()
    parser = httptools.HttpRequestParser(collector)
    parser.feed_data(PAYLOAD)
    return len(collector.requests)


def httptools_parser_single() -> int:
    """httptools fed one request per chunk, with the same callbacks."""
    import httptools  # optional: the comparison is skipped without it

    requests: list[Request] = []

    class Collector:
        def __init__(self) -> None:
            self.headers: list[tuple[bytes, bytes]] = []
            self.url = b""

        def on_message_begin(self) -> None:
            self.headers = []

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name.lower(), value))

        def on_headers_complete(self) -> None:
            parser.should_keep_alive()
            version = parser.get_http_version().encode()
            requests.append(Request(parser.get_method(), self.url, version, self.headers))

    parser = httptools.HttpRequestParser(Collector())
    for request in REQUESTS:
        parser.feed_data(request)
    return len(requests)


def measure(contenders: dict[str, Callable[[], int]]) -> dict[str, float]:
    """Return each contender's best time per request in microseconds.

    Rounds interleave the contenders, so a noisy machine slows them alike.
    """
    best = dict.fromkeys(contenders, float("inf"))
    for name, run in contenders.items():
        assert run() == PIPELINE, name
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: seconds / PIPELINE * 1e6 for name, seconds in best.items()}


def main() -> None:
    """Run every contender and print the ratios."""
    print(f"{len(REQUESTS[0])}-byte GET, 8 headers, pipelined x{PIPELINE}; best of {ROUNDS}")
    contenders = {
        "portside HeadReader (parser only)": portside_parser,
        "portside HeadReader, 1 per feed": portside_parser_single,
        "portside HeadReader, repeated head": portside_parser_repeated,
        "portside ServerConnection (+ send)": portside_machine,
    }
    try:
        import httptools  # noqa: F401 - optional: no comparison without it
    except ImportError:
        print("httptools is not installed; no comparison")
    else:
        contenders["httptools HttpRequestParser"] = httptools_parser
        contenders["httptools, 1 per feed"] = httptools_parser_single
    results = measure(contenders)
    for name, per_request in results.items():
        print(f"{name:<36} {per_request:6.2f} us/request {1e6 / per_request:>10,.0f} requests/s")
    if "httptools HttpRequestParser" in results:
        llhttp = results["httptools HttpRequestParser"]
        own = results["portside HeadReader (parser only)"]
        print(f"parser ratio portside/httptools, pipelined: {own / llhttp:.2f}x")
        single = results["portside HeadReader, 1 per feed"] / results["httptools, 1 per feed"]
        print(f"parser ratio portside/httptools, 1 per feed: {single:.2f}x")


if __name__ == "__main__":
    main()
