"""The README a newcomer reads: its stage table lists exactly the registered stages, no line is over 120 characters,
it stays short, and what it leaves to the documentation site (docs/, MkDocs) is there."""

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


def test_the_readme_stays_short_and_its_links_lead_somewhere():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250, "the detail belongs on the documentation site (docs/)"
    links = re.findall(r"\]\(((?:docs|bench)/[^)#]+)(?:#[^)]*)?\)", text)
    assert "docs/index.md" in links and "docs/stages/reference.md" in links
    missing = [link for link in links if not (REPO / link).is_file()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_what_left_the_readme_is_on_the_site():
    """The fault matrix, the recipes' funnels, the stage API and the house moved to docs/, each page in the nav."""
    nav = (REPO / "mkdocs.yml").read_text()
    for page, content in [
        ("outputs.md", "| driver SIGKILL during `minhash` (Ray) |"),
        ("recipes.md", "421 documents in, 38 kept (21,253 words)"),
        ("writing-stages.md", "@curate.filter"),
        ("architecture.md", "engine/segment.py"),
    ]:
        assert content in (REPO / "docs" / page).read_text(), (page, content)
        assert f": {page}" in nav, page
