"""CGIHTTPRequestHandler running real scripts (Python with a shebang, and sh)."""

from __future__ import annotations

import functools
import http.client
import http.server
import os
import socket
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.http import server as ps_server
from portside.http._cgi import _collapse_path

from .support import CLIENT_TIMEOUT, MODES, Quiet, serving


class Scripts(Quiet, ps_server.CGIHTTPRequestHandler):
    pass


ENV_SCRIPT = """\
#!{python}
import os, sys
body = sys.stdin.buffer.read()
sys.stdout.write("Content-Type: text/plain\\r\\nX-Script: env\\r\\n\\r\\n")
for name in ("REQUEST_METHOD", "QUERY_STRING", "PATH_INFO", "SCRIPT_NAME", "CONTENT_LENGTH",
             "CONTENT_TYPE", "GATEWAY_INTERFACE", "SERVER_PROTOCOL", "REMOTE_ADDR",
             "HTTP_USER_AGENT", "SERVER_SOFTWARE"):
    sys.stdout.write(name + "=" + os.environ.get(name, "<unset>") + "\\n")
sys.stdout.write("ARGV=" + repr(sys.argv[1:]) + "\\n")
sys.stdout.write("BODY=" + repr(body) + "\\n")
"""

STREAM_SCRIPT = """\
#!{python}
import os, sys, time
sys.stdout.write("Content-Type: text/plain\\r\\n\\r\\nfirst\\n")
sys.stdout.flush()
deadline = time.monotonic() + 5
while not os.path.exists({marker!r}) and time.monotonic() < deadline:
    time.sleep(0.01)
sys.stdout.write("second\\n" if os.path.exists({marker!r}) else "timeout\\n")
"""

BIG_SCRIPT = """\
#!{python}
import sys
n = len(sys.stdin.buffer.read())
sys.stdout.write("Content-Type: application/octet-stream\\r\\nX-Read: %d\\r\\n\\r\\n" % n)
sys.stdout.flush()
sys.stdout.buffer.write(b"x" * (1 << 20))
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "cgi-bin"
    bin_dir.mkdir()
    marker = str(tmp_path / "marker")
    for name, text in (
        ("env.py", ENV_SCRIPT),
        ("stream.py", STREAM_SCRIPT),
        ("big.py", BIG_SCRIPT),
    ):
        script = bin_dir / name
        script.write_text(text.format(python=sys.executable, marker=marker))
        script.chmod(0o755)
    shell = bin_dir / "hello.sh"
    shell.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nsh says %s' \"$1\"\n")
    shell.chmod(0o755)
    (bin_dir / "plain.sh").write_text("#!/bin/sh\necho no\n")
    (bin_dir / "sub").mkdir()
    (tmp_path / "index.html").write_text("files still work")
    return tmp_path


@pytest.fixture(params=["thread", "green"])
def address(request: pytest.FixtureRequest, root: Path, loop_kind: str) -> Iterator[Any]:
    handler = functools.partial(Scripts, directory=root)
    server = MODES[request.param](("127.0.0.1", 0), handler, event_loop=loop_kind)
    with serving(server) as served:
        yield served


def _request(
    address: Any, method: str, path: str, body: bytes | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection(address[0], address[1], timeout=CLIENT_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers={"User-Agent": "tester/1"})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def _env(body: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in body.decode().splitlines())


def test_get_with_query_and_path_info(address: Any) -> None:
    response, body = _request(address, "GET", "/cgi-bin/env.py/extra/p%20q?a=1&b=two")
    assert (response.status, response.reason) == (200, "Script output follows")
    assert response.headers["X-Script"] == "env"
    env = _env(body)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["QUERY_STRING"] == "a=1&b=two"
    assert env["PATH_INFO"] == "/extra/p q"
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.py"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_USER_AGENT"] == "tester/1"
    assert env["SERVER_SOFTWARE"].startswith("SimpleHTTP/0.6 Python/")
    assert env["ARGV"] == "[]"
    assert env["BODY"] == "b''"


def test_post_body_to_stdin(address: Any) -> None:
    response, body = _request(address, "POST", "/cgi-bin/env.py", body=b"x=1&y=%20")
    env = _env(body)
    assert response.status == 200
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_LENGTH"] == "9"
    assert env["BODY"] == "b'x=1&y=%20'"


def test_shell_script_and_isindex_argument(address: Any) -> None:
    response, body = _request(address, "GET", "/cgi-bin/hello.sh?big+world")
    assert (response.status, body) == (200, b"sh says big world")


def test_large_body_both_ways(address: Any) -> None:
    response, body = _request(address, "POST", "/cgi-bin/big.py", body=b"y" * (1 << 20))
    assert response.headers["X-Read"] == str(1 << 20)
    assert body == b"x" * (1 << 20)


def test_output_is_streamed(address: Any, root: Path) -> None:
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(b"GET /cgi-bin/stream.py HTTP/1.0\r\n\r\n")
        received = b""
        while b"first\n" not in received:
            chunk = sock.recv(4096)
            assert chunk, "the server closed before the first line"
            received += chunk
        (root / "marker").touch()  # the script finishes only now
        while chunk := sock.recv(4096):
            received += chunk
    assert received.endswith(b"first\nsecond\n")


def test_errors(address: Any) -> None:
    assert _request(address, "GET", "/cgi-bin/missing.py")[0].status == 404
    assert _request(address, "GET", "/cgi-bin/plain.sh")[0].status == 403
    assert _request(address, "GET", "/cgi-bin/sub/")[0].status == 403
    assert _request(address, "POST", "/index.html", body=b"")[0].status == 501
    assert _request(address, "GET", "/")[1] == b"files still work"


def test_is_cgi_collapses_paths() -> None:
    probe: Any = object.__new__(Scripts)
    cases = {
        "/cgi-bin/x.py": ("/cgi-bin", "x.py"),
        "/htbin/a/b?q=1": ("/htbin", "a/b?q=1"),
        "/static/../cgi-bin/x.py": ("/cgi-bin", "x.py"),
        "/%63gi-bin/x.py": ("/cgi-bin", "x.py"),
        "/cgi-bin/../etc/passwd": None,
        "/cgi-binx/y": None,
        "/cgi-bin": None,
    }
    for path, info in cases.items():
        probe.path = path
        assert probe.is_cgi() == (info is not None), path
        if info is not None:
            assert probe.cgi_info == info, path


def test_module_still_importable_without_fork_path() -> None:
    assert "CGIHTTPRequestHandler" in ps_server.__all__
    assert os.access(sys.executable, os.X_OK)


COMPAT_SCRIPT = """\
#!{python}
import os, sys
body = sys.stdin.buffer.read(int(os.environ.get("CONTENT_LENGTH") or 0))
print("Content-Type: text/plain")
print("Status: 200 OK")
print()
for name in sorted(os.environ):
    if name not in {{"SERVER_NAME", "SERVER_PORT", "PATH", "PWD", "OLDPWD", "SHLVL", "_"}}:
        print(name, "=", os.environ[name])
print("BODY", body)
"""


# The stdlib's CGI handler warns of its removal (3.13+) and forks in a threaded process (3.12+).
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_same_script_output_as_stdlib(tmp_path: Path, loop_kind: str) -> None:
    import http.server

    stdlib_cgi = getattr(http.server, "CGIHTTPRequestHandler", None)
    if stdlib_cgi is None:
        pytest.skip("this Python has no CGIHTTPRequestHandler")
    script = tmp_path / "cgi-bin" / "vars.py"
    script.parent.mkdir()
    script.write_text(COMPAT_SCRIPT.format(python=sys.executable))
    script.chmod(0o755)
    requests = [
        ("GET", "/cgi-bin/vars.py/a%20b/c?x=1&y=2", None),
        ("POST", "/cgi-bin/vars.py?q", b"a=1&b=2"),
        ("GET", "/htbin/../cgi-bin/vars.py", None),
    ]
    answers = []
    for base, server_class in (
        (stdlib_cgi, http.server.ThreadingHTTPServer),
        (ps_server.CGIHTTPRequestHandler, ps_server.ThreadingHTTPServer),
    ):
        # have_fork=False: the stdlib's fork path runs scripts as "nobody", who cannot
        # reach pytest's private tmp_path; its subprocess path is the comparable one.
        cls = type("Handler", (Quiet, base), {"have_fork": False})
        handler = functools.partial(cls, directory=str(tmp_path))
        options: dict[str, Any] = {}
        if server_class is ps_server.ThreadingHTTPServer:
            options["event_loop"] = loop_kind
        server = server_class(("127.0.0.1", 0), handler, **options)
        with serving(server) as address:
            replies = [_request(address, method, path, body) for method, path, body in requests]
        answers.append([(reply.status, reply.reason, body) for reply, body in replies])
    assert answers[0] == answers[1]
    assert b"BODY b'a=1&b=2'" in answers[0][1][2]
    assert b"PATH_INFO = /a b/c" in answers[0][0][2]


DIRECTORIES = tuple(d + "/" for d in ps_server.CGIHTTPRequestHandler.cgi_directories)
CGI_SEGMENTS = ["cgi-bin", "htbin", "%63gi-bin", "cgi-binx", "..", ".", "", "a", "x.py"]
CGI_SEGMENTS += ["%2e%2e", "%2F", "?q=1", "a?b/../c", "%3F", "..%2F"]


@pytest.mark.skipif(
    not hasattr(http.server, "CGIHTTPRequestHandler"), reason="the stdlib's CGI is gone"
)
@settings(max_examples=500, deadline=None)
@given(segments=st.lists(st.sampled_from(CGI_SEGMENTS), max_size=6))
def test_is_cgi_agrees_with_the_stdlib(segments: list[str]) -> None:
    """Which URL paths are scripts, and the (directory, rest) split, as the stdlib decides."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs: Any = object.__new__(http.server.CGIHTTPRequestHandler)
    ours: Any = object.__new__(Scripts)
    theirs.path = ours.path = "/" + "/".join(segments)
    try:
        expected = theirs.is_cgi()
    except IndexError:
        # The stdlib's fails on a path that climbs above the root ("/../cgi-bin/x"); ours
        # stays at the root, as RFC 3986 resolves dot segments (a documented difference).
        resolved = _collapse_path(ours.path)
        assert ours.is_cgi() == (resolved.find("/", 1) > 0 and resolved.startswith(DIRECTORIES))
        return
    assert ours.is_cgi() == expected
    assert getattr(ours, "cgi_info", None) == getattr(theirs, "cgi_info", None)
