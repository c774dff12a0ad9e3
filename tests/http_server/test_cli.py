"""``python -m portside.http.server``: the stdlib command line, run as a real process."""

from __future__ import annotations

import http.client
import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from portside.http import server as ps_server

from .support import CLIENT_TIMEOUT, JOIN_TIMEOUT

BANNER = re.compile(r"Serving (HTTPS?) on (\S+) port (\d+) \((https?)://(\S+):(\d+)/\) \.\.\.")


@contextmanager
def running(*args: str, cwd: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Start the server on port 0 and yield it with its port; SIGINT and reap it after."""
    with subprocess.Popen(
        [sys.executable, "-m", "portside.http.server", *args, "0"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            banner = proc.stdout.readline()
            match = BANNER.match(banner)
            assert match, f"no banner: {banner!r}"
            yield proc, int(match.group(3))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=JOIN_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
    assert proc.returncode == 0, err


def _get(port: int, path: str, **options: Any) -> tuple[http.client.HTTPResponse, bytes]:
    cls = http.client.HTTPSConnection if "context" in options else http.client.HTTPConnection
    conn = cls("127.0.0.1", port, timeout=CLIENT_TIMEOUT, **options)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.txt").write_text("served by -d")
    (tmp_path / "cwd.txt").write_text("served from the cwd")
    return tmp_path


def test_serve_directory_and_sigint(site: Path) -> None:
    with running("-b", "127.0.0.1", "-d", str(site / "www"), cwd=site) as (proc, port):
        response, body = _get(port, "/a.txt")
        assert (response.status, body) == (200, b"served by -d")
        assert response.version == 10
        assert _get(port, "/cwd.txt")[0].status == 404
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=JOIN_TIMEOUT)
    assert proc.returncode == 0
    assert "Keyboard interrupt received, exiting." in out
    assert '"GET /a.txt HTTP/1.1" 200 -' in err


@pytest.mark.parametrize("mode", [[], ["--green"]], ids=["thread", "green"])
def test_default_directory_protocol_and_banner(site: Path, mode: list[str]) -> None:
    with running("--bind", "127.0.0.1", "-p", "HTTP/1.1", *mode, cwd=site) as (_, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
        try:
            for _ in range(2):  # keep-alive: both on one connection
                conn.request("GET", "/cwd.txt")
                response = conn.getresponse()
                assert response.version == 11 and not response.will_close
                assert (response.status, response.read()) == (200, b"served from the cwd")
        finally:
            conn.close()


def test_cgi_flag(site: Path) -> None:
    script = site / "cgi-bin" / "hi.py"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\nprint('Content-Type: text/plain')\nprint()\nprint('cgi ok')\n"
    )
    script.chmod(0o755)
    with running("--cgi", "-b", "127.0.0.1", cwd=site) as (_, port):
        response, body = _get(port, "/cgi-bin/hi.py")
        assert (response.status, body) == (200, b"cgi ok\n")


def test_tls(site: Path, tls_files: Any) -> None:
    args = ("-b", "127.0.0.1", "--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key))
    with running(*args, cwd=site) as (_, port):
        response, body = _get(port, "/cwd.txt", context=tls_files.client_context())
        assert (response.status, body) == (200, b"served from the cwd")


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        ps_server.main(["--tls-key", "k.pem"])
    assert info.value.code == 2
    assert "--tls-cert" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ps_server.main(["not-a-port"])


def test_tls_password_file(tmp_path: Path, tls_files: Any) -> None:
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    key = serialization.load_pem_private_key(tls_files.key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"sekrit"),
        )
    )
    password = tmp_path / "password"
    parser = ps_server._parser()
    args = ["--tls-cert", str(tls_files.cert), "--tls-key", str(encrypted)]
    args += ["--tls-password-file", str(password)]
    password.write_text("sekrit\n")
    assert isinstance(ps_server._tls_context(parser.parse_args(args), parser), ssl.SSLContext)
    password.write_text("wrong\n")
    with pytest.raises(ssl.SSLError):
        ps_server._tls_context(parser.parse_args(args), parser)
