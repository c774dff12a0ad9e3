"""What the differential tests share: the 3.11 standard library's own asynchat and smtpd (the
reference, where this Python still has them), and input cut into reads."""

from __future__ import annotations

import importlib
import itertools
import warnings
from types import ModuleType


def stdlib_module(name: str) -> ModuleType | None:
    """The standard library's module ``name``, or None where it is gone (3.12+)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module(name)
    except ImportError:
        return None
    # the legacy runner's finder, if installed, would hand out portside's module instead
    return module if module.__name__ == name else None


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` in pieces, cut at ``points`` (positions, any order, repeats allowed)."""
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)] or [b""]
