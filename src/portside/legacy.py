"""The legacy runner: run an unmodified asyncore/asynchat/smtpd program on portside.

::

    python -m portside.legacy [--loop KIND] SCRIPT [ARGS...]
    python -m portside.legacy [--loop KIND] -m MODULE [ARGS...]
    python -m portside.legacy -m smtpd -n -c DebuggingServer localhost:8025

Before the program starts, ``import asyncore``, ``import asynchat`` and ``import smtpd``
(and ``from asyncore import ...``) are made to resolve to :mod:`portside.asyncore`,
:mod:`portside.asynchat` and :mod:`portside.smtpd` by a finder placed first on
``sys.meta_path``, so the names work on Python 3.12 and later, where the standard library no
longer has them, and take precedence over the deprecated copies of 3.11. The program runs as
``__main__`` with ``sys.argv`` set as if it had been started directly. ``--loop`` picks the
engine loop (``auto``, ``uvloop``, ``asyncio``) through ``PORTSIDE_LOOP``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import runpy
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["ALIASES", "LegacyFinder", "install", "main"]

ALIASES = {
    "asyncore": "portside.asyncore",
    "asynchat": "portside.asynchat",
    "smtpd": "portside.smtpd",
}
"""The removed module names and the portside modules they resolve to."""

USAGE = "usage: python -m portside.legacy [--loop KIND] (SCRIPT | -m MODULE) [ARGS...]"


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The portside module is already executed: nothing to do."""


class LegacyFinder(importlib.abc.MetaPathFinder):
    """Resolves the removed module names to portside's modules (the same module objects)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        alias = ALIASES.get(fullname)
        if alias is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(alias))


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once) and drop stdlib copies already loaded."""
    if not any(isinstance(finder, LegacyFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, LegacyFinder())
    for name, alias in ALIASES.items():
        module = sys.modules.get(name)
        if module is not None and module.__name__ != alias:
            del sys.modules[name]


def main(argv: Sequence[str] | None = None) -> int:
    """Run a program as the module docstring describes; returns the exit status for usage
    errors (the program's own exit status leaves through SystemExit, as when run directly)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0].startswith("--loop"):
        option = args.pop(0)
        kind = option.partition("=")[2] or (args.pop(0) if args else "")
        if not kind:
            print(USAGE, file=sys.stderr)
            return 2
        os.environ["PORTSIDE_LOOP"] = kind
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 0 if args else 2
    if args[0] == "-m" and len(args) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    install()
    if args[0] == "-m":
        module = args[1]
        sys.argv = [module, *args[2:]]
        runpy.run_module(ALIASES.get(module, module), run_name="__main__", alter_sys=True)
        return 0
    script = args[0]
    sys.argv = list(args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
