"""Fixtures for the file server tests: a served tree and a sparse huge file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fileserver.helpers import MEDIUM, SMALL


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A served directory: small and medium files, an index, a listing, siblings, a secret."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "small.txt").write_bytes(SMALL)
    (root / "medium.bin").write_bytes(MEDIUM)
    (root / "page.html").write_text("<p>page</p>")
    (root / "with index").mkdir()
    (root / "with index" / "index.html").write_text("<h1>index</h1>")
    (root / "listed").mkdir()
    (root / "listed" / "b.txt").write_text("b")
    (root / "listed" / "A.txt").write_text("a")
    (root / "listed" / "sub").mkdir()
    (root / "listed" / ".hidden").write_text("hidden")
    (root / "app.js").write_text("console.log('plain');\n" * 50)
    (root / "app.js.gz").write_bytes(b"gzip bytes")
    (root / "app.js.br").write_bytes(b"brotli bytes")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "outside.txt").write_text("outside the root")
    return root


@pytest.fixture
def sparse_file(tree: Path) -> Iterator[Path]:
    """A 300 MiB file that takes no disk space (a hole), for downloads that must not buffer."""
    path = tree / "huge.bin"
    with path.open("wb") as f:
        f.truncate(300 * 1024 * 1024)
    yield path
    os.unlink(path)
