"""docs/server-behaviour.md stays in step with the code it describes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from portside.config import Limits
from portside.core.connection import SWEEPS_PER_TIMEOUT
from portside.core.listeners import ACCEPT_BACKOFF, ACCEPT_BATCH
from portside.core.metrics import Statistics

DOCS = Path(__file__).parents[2] / "docs"
PAGE = (DOCS / "server-behaviour.md").read_text()


def limits_table() -> str:
    """The table of limits, rendered from the dataclass: field, default, help and reason."""
    rows = ["| field | default | what it does | why this default |", "|---|---|---|---|"]
    for spec in dataclasses.fields(Limits):
        help_text, reason = spec.metadata["help"], spec.metadata["reason"]
        rows.append(f"| `{spec.name}` | `{spec.default!r}` | {help_text} | {reason} |")
    return "\n".join(rows)


def test_limits_table_is_generated_from_the_dataclass() -> None:
    block = re.search(r"<!-- limits: begin -->\n(.*?)\n<!-- limits: end -->", PAGE, re.S)
    assert block is not None, "the limits markers are missing"
    expected = limits_table()
    assert block.group(1) == expected, f"regenerate the table in the page:\n{expected}"


def test_every_limit_explains_its_default() -> None:
    for spec in dataclasses.fields(Limits):
        assert spec.metadata.get("help"), spec.name
        assert len(spec.metadata.get("reason", "")) > 20, spec.name


def test_every_statistics_field_is_described() -> None:
    section = PAGE.split("## Statistics", 1)[1].split("\n## ", 1)[0]
    for spec in dataclasses.fields(Statistics):
        assert f"| `{spec.name}` |" in section, f"{spec.name} is not described"


def test_documented_numbers_match_the_code() -> None:
    assert SWEEPS_PER_TIMEOUT == 4 and "four times per timeout" in PAGE
    assert "between T and 1.25 T" in PAGE
    assert f"{ACCEPT_BACKOFF} s" in PAGE
    assert f"at most {ACCEPT_BATCH} connections" in PAGE


def test_every_endpoint_type_is_documented() -> None:
    from portside.core.endpoints import _SERVER_FIELDS

    for kind in _SERVER_FIELDS:
        assert f"| `{kind}` |" in PAGE, kind
