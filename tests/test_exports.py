"""The public surface: every ``__all__`` name imports, and ``proto/`` stays free of I/O."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import portside

SRC = Path(portside.__file__).parent
# Modules whose import has effects (running the command line) rather than defining things.
NOT_IMPORTABLE = {"portside.__main__"}
FORBIDDEN_IN_PROTO = ("asyncio", "socket", "ssl", "portside.core")


def all_modules() -> list[str]:
    found = pkgutil.walk_packages([str(SRC)], prefix="portside.")
    return sorted(["portside", *(i.name for i in found if i.name not in NOT_IMPORTABLE)])


def test_top_level_names() -> None:
    for name in portside.__all__:
        assert getattr(portside, name) is not None, name
    assert {"serve", "Server", "Limits", "EndpointError", "BindError"} <= set(portside.__all__)
    with pytest.raises(AttributeError):
        portside.no_such_name  # noqa: B018


@pytest.mark.parametrize("module_name", all_modules())
def test_every_public_name_imports(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        return
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ has duplicates"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names what it lacks: {missing}"


def test_engine_and_testing_packages_declare_their_surface() -> None:
    for name in ("portside.core", "portside.testing"):
        module = importlib.import_module(name)
        assert module.__all__, name
        for exported in module.__all__:
            assert getattr(module, exported).__doc__, f"{name}.{exported} has no docstring"


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module an import statement in ``path`` names, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted((SRC / "proto").rglob("*.py")), ids=lambda p: p.name)
def test_proto_imports_no_io(path: Path) -> None:
    bad = [
        (line, name)
        for line, name in imported_modules(path, "portside.proto")
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_PROTO)
    ]
    assert not bad, f"{path.name} imports I/O or the engine: {bad}"


def test_the_import_scanner_sees_relative_and_nested_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from ..core import server\ndef f():\n    import ssl\nfrom . import framing\n"
    )
    names = {name for _, name in imported_modules(sample, "portside.proto")}
    assert {"portside.core", "portside.core.server", "ssl", "portside.proto.framing"} <= names


def test_importing_proto_loads_no_io_module() -> None:
    modules = [f"portside.proto.{p.stem}" for p in (SRC / "proto").glob("*.py")]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(sorted(m for m in {FORBIDDEN_IN_PROTO!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "[]"
