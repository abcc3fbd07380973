"""The documentation site: its stage reference is generated from the stage registry (curate.config.reference, put
on the page by docs/hooks/stage_reference.py), so it lists every stage, parameter and declared reason that
`curate stages` knows; and the whole site builds with `mkdocs build --strict` and renders in a browser."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import REPO
from helpers import chromium, chromium_command

import curate
from curate.cli import main
from curate.config import registry
from curate.config.reference import (
    StageEntry,
    declared_reasons,
    stage_entries,
    stage_kind,
    stage_reference_markdown,
)


def _sections(markdown: str) -> dict[str, str]:
    """The reference's text per stage, from its `## `name`` heading to the next."""
    parts = re.split(r"^## `([a-z0-9_]+)` \{#[a-z0-9_]+\}$", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_reference_lists_every_stage_its_parameters_and_its_declared_reasons():
    markdown = stage_reference_markdown()
    sections = _sections(markdown)
    assert sorted(sections) == registry.names()
    for name in registry.names():
        cls = registry.load(name)
        body = sections[name]
        assert cls.summary().split()[0] in body, name
        for p in cls.params():
            assert f"| `{p.name}` |" in body, (name, p.name)
        reasons = [r for r, _ in declared_reasons(cls)]
        for reason in reasons:
            assert f"- `{reason}`" in body, (name, reason)
        if not reasons:
            assert "Rejects with: none declared." in body, name


def test_the_reference_says_what_curate_stages_says():
    """Kind, parameter types and defaults as `curate stages --json` prints them: one registry, one type formatter."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["stages", "--json"]) == 0
    sections = _sections(stage_reference_markdown())
    for row in json.loads(out.getvalue()):
        body = sections[row["name"]]
        assert f"**{row['kind']}**" in body, row["name"]
        for p in row["params"]:
            line = next(line for line in body.splitlines() if line.startswith(f"| `{p['name']}` |"))
            assert line.split(" | ")[1] == p["type"], (row["name"], line)
            if p["required"]:
                assert line.endswith("| **required** |"), (row["name"], line)
            elif p["default"] is None or isinstance(p["default"], (bool, int, float)):  # the same value after JSON
                assert line.endswith(f"| `{p['default']!r}` |"), (row["name"], line)


class _Declares(curate.Filter):
    """A test stage that declares its reasons."""

    reasons = ("too_short", "lines_removed_{n}")
    limit: int = 3

    def reject(self, doc):
        return None


class _Says(curate.Mapper):
    """A <test> stage with described reasons and a `required` parameter."""

    model: str

    def map(self, doc):
        return None


def test_declared_reasons_are_names_or_a_mapping_and_may_be_missing():
    assert declared_reasons(_Declares) == [("too_short", ""), ("lines_removed_{n}", "")]
    assert declared_reasons(SimpleNamespace(reasons={"bad": "why it is bad"})) == [("bad", "why it is bad")]
    assert declared_reasons(SimpleNamespace()) == []  # a stage class from before `reasons` existed
    assert declared_reasons(SimpleNamespace(reasons=None)) == []
    assert stage_kind(_Declares) == "filter" and stage_kind(_Says) == "mapper"


def test_the_reference_renders_reasons_required_parameters_and_broken_stages():
    entries = [
        StageEntry(
            "declares",
            "my.mod:Declares",
            "filter",
            _Declares.summary(),
            [("limit", "int", "3")],
            declared_reasons(_Declares),
        ),
        StageEntry(
            "says",
            "my.mod:Says",
            "mapper",
            _Says.summary(),
            [("model", "str", "required")],
            [("bad", "a <why> it is bad")],
        ),
        StageEntry("broken", "my.mod:Broken", error="ImportError: no module named 'my'"),
    ]
    markdown = stage_reference_markdown(entries)
    sections = _sections(markdown)
    assert "- `too_short`" in sections["declares"] and "- `lines_removed_{n}`" in sections["declares"]
    assert "| `limit` | int | `3` |" in sections["declares"]
    assert "| `model` | str | **required** |" in sections["says"]
    assert "A &lt;test&gt; stage" in sections["says"] and "- `bad` — a &lt;why&gt; it is bad" in sections["says"]
    assert "cannot be loaded here: ImportError" in sections["broken"]
    assert "| [`broken`](#broken) | cannot load |" in markdown


def _hook():
    spec = importlib.util.spec_from_file_location(
        "stage_reference_hook", REPO / "docs" / "hooks" / "stage_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hook_fills_the_reference_page_and_leaves_the_others_alone():
    hook = _hook()
    page_text = (REPO / "docs" / hook.PAGE).read_text()
    assert hook.MARKER in page_text
    page = SimpleNamespace(file=SimpleNamespace(src_uri=hook.PAGE))
    filled = hook.on_page_markdown(page_text, page=page, config={}, files=[])
    assert hook.MARKER not in filled and sorted(_sections(filled)) == registry.names()
    other = SimpleNamespace(file=SimpleNamespace(src_uri="index.md"))
    assert hook.on_page_markdown("text " + hook.MARKER, page=other, config={}, files=[]) == "text " + hook.MARKER
    assert [e.name for e in stage_entries()] == registry.names()


@pytest.mark.e2e
def test_the_site_builds_strict_and_the_stage_reference_renders_in_a_browser(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # the config's paths are its own, not the working directory's
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr[-4000:]
    page = site / "stages" / "reference" / "index.html"
    assert page.is_file()
    assert "Filters: parity with datatrove" in (site / "benchmarks" / "index.html").read_text()  # bench/README.md

    if chromium() is None:
        pytest.skip("no chromium (apt-get install chromium)")
    browser = chromium_command(tmp_path / "profile")
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for name in registry.names():
        assert f'id="{name}"' in html, name
        first = registry.load(name).params()
        if first:
            assert f"<code>{first[0].name}</code>" in html, (name, first[0].name)
    assert "<code>language_threshold</code>" in html
    shot = tmp_path / "reference.png"
    proc = subprocess.run(
        [*browser, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
