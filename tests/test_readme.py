"""The README a newcomer reads: its stage table lists exactly the registered stages, and no line is over 120
characters."""

from __future__ import annotations

import re

from conftest import REPO

from curate.config import registry


def _stage_table() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Stages\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M)


def test_the_stage_table_lists_every_registered_stage_once():
    table = _stage_table()
    assert len(table) == len(set(table)), "a stage is listed twice"
    assert sorted(table) == sorted(registry.names())


def test_no_readme_line_is_over_120_characters():
    long = [
        (i, len(line)) for i, line in enumerate((REPO / "README.md").read_text().splitlines(), 1) if len(line) > 120
    ]
    assert not long, f"lines over 120 characters (line, length): {long}"


def test_the_first_lines_give_the_two_commands():
    head = (REPO / "README.md").read_text().split("\n## ", 1)[0]
    assert "pip install -e . && curate run fineweb.yaml" in head
    assert "pip install torch==2.13.0 -e '.[dev]' && pytest" in head
