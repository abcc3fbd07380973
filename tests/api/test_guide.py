"""docs/python-api.md is a notebook in Markdown: its Python cells run here in order, as one session, in a fresh folder,
so that the guide cannot rot. A ```text block right after a cell is what the cell prints: each of its lines must match
(whitespace aside; `...` stands for anything, `/home/you` for the folder)."""

from __future__ import annotations

import ast
import contextlib
import io
import re
import sys
import types

import pytest
from conftest import REPO

GUIDE = REPO / "docs" / "python-api.md"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```$", re.M | re.S)

pytestmark = pytest.mark.e2e


def cells(markdown: str) -> list[tuple[str, str | None]]:
    """(python source, the text block that follows it or None), in order."""
    blocks = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(markdown)]
    out = []
    for i, (lang, body, _, end) in enumerate(blocks):
        if lang != "python":
            continue
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        follows = nxt is not None and nxt[0] == "text" and not markdown[end : nxt[2]].strip()
        out.append((body, nxt[1] if follows else None))
    return out


def _matches(expected: str, printed: str) -> bool:
    want = [" ".join(line.split()) for line in expected.strip().splitlines()]
    got = [" ".join(line.split()) for line in printed.strip().splitlines()]
    if len(want) != len(got):
        return False
    return all(re.fullmatch(".*".join(map(re.escape, w.split("..."))), g) for w, g in zip(want, got))


def run_cell(source: str, name: str, namespace: dict) -> None:
    """Run a cell as Jupyter does: a last expression's value is shown (its repr, printed here)."""
    tree = ast.parse(source, name)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, name, "exec"), namespace)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)
        if value is not None:
            print(repr(value))


def test_the_cells_parse():
    found = cells(GUIDE.read_text())
    assert len(found) >= 8 and sum(t is not None for _, t in found) >= 3


def test_the_python_guide_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    # the notebook's namespace is an importable module, as Jupyter's __main__ is (stages defined in it are found)
    notebook = types.ModuleType("guide_notebook")
    monkeypatch.setitem(sys.modules, "guide_notebook", notebook)
    for n, (source, expected) in enumerate(cells(GUIDE.read_text()), 1):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            run_cell(source, f"{GUIDE.name} cell {n}", notebook.__dict__)
        if expected is not None:
            shown = printed.getvalue().replace(str(tmp_path), "/home/you")
            assert _matches(expected, shown), f"cell {n} printed:\n{shown}\nthe guide says:\n{expected}"
