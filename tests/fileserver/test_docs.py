"""The documentation of the file server's options matches the dataclass they come from."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from portside.services.fileserver import FileServerOptions

DOC = Path(__file__).resolve().parents[2] / "docs" / "fileserver.md"


def test_options_table_matches_the_dataclass() -> None:
    rows = re.findall(r"^\| `(\w+)`[^|]*\| `([^`]*)` \| (.+?) \|$", DOC.read_text(), re.M)
    documented = {name: (default, text) for name, default, text in rows}
    fields = dataclasses.fields(FileServerOptions)
    assert list(documented) == [f.name for f in fields]
    for field in fields:
        default, text = documented[field.name]
        assert default == str(field.default), field.name
        assert text.replace("`", "") == field.metadata["help"].replace("'", ""), field.name
