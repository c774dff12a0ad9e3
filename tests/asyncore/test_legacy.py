"""The legacy runner: unmodified programs importing asyncore/asynchat/smtpd run on portside."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portside import legacy

PROGRAM = """
import sys
import asyncore, asynchat, smtpd
from asyncore import dispatcher
print(asyncore.__name__, asynchat.__name__, smtpd.__name__, dispatcher.__module__)
print(sys.argv[1:])
"""


def test_runner_resolves_the_removed_names(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    out = subprocess.run(
        [sys.executable, "-W", "error", "-m", "portside.legacy", str(script), "a", "--b"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    assert out == [
        "portside.asyncore portside.asynchat portside.smtpd portside.asyncore",
        "['a', '--b']",
    ]


def test_runner_runs_python_m_smtpd(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "portside.legacy",
            "--loop",
            "asyncio",
            "-m",
            "smtpd",
            "-n",
            "-c",
            "DebuggingServer",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=5)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        with client:
            client.sendmail("a@b.c", ["d@e.f"], b"Subject: legacy\r\n\r\nbody\r\n")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "---------- MESSAGE FOLLOWS ----------" in out and "b'Subject: legacy'" in out


def test_usage() -> None:
    assert legacy.main([]) == 2
    assert legacy.main(["--loop"]) == 2
    assert legacy.main(["-m"]) == 2


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="only 3.11 has stdlib copies to replace")
def test_install_replaces_stdlib_copies_already_imported() -> None:
    import warnings

    saved_path = list(sys.meta_path)
    saved = {name: sys.modules.get(name) for name in legacy.ALIASES}
    try:
        sys.modules.pop("asyncore", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import asyncore  # the 3.11 standard library's
        assert asyncore.__name__ == "asyncore"
        legacy.install()
        legacy.install()
        assert sum(isinstance(f, legacy.LegacyFinder) for f in sys.meta_path) == 1
        import asyncore as again

        assert again.__name__ == "portside.asyncore"
    finally:
        sys.meta_path[:] = saved_path
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
