"""The installed import names: curate, curate_filters (the filters/ folder) and curate_pipelines (pipelines/), never
`filters` or `pipelines`, which are other distributions on PyPI. .ci/run installs those two next to curate, so
that these tests check curate against them as a user who has them would run it."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from pathlib import Path

import pytest
from helpers import REPO

FOREIGN = ("filters", "pipelines")


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    # From a folder of its own: in the repository root, the folders filters/ and pipelines/ would be importable
    # as themselves, which is not what an installed curate sees.
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_curate_and_every_builtin_stage_import_without_the_foreign_names(tmp_path):
    code = (
        "import sys, curate, curate.cli, curate.engine, curate.output.stats\n"
        "from curate.config import registry\n"
        "classes = [registry.load(n) for n in registry.names()]\n"
        "curate.cli.build_parser()\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FOREIGN!r})\n"
        "print(len(classes), bad)\n"
        "sys.exit(1 if bad or not classes else 0)\n"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_builtin_stage_is_registered_from_curate_filters():
    eps = [ep for ep in entry_points(group="curate.stages") if ep.dist is not None and ep.dist.name == "curate"]
    assert len(eps) >= 20
    for ep in eps:
        assert ep.value.startswith("curate_filters."), f"{ep.name} = {ep.value}"
        module = Path(importlib.util.find_spec(ep.module).origin).resolve()
        assert module.is_relative_to(REPO / "filters") or "curate_filters" in module.parts, (ep.name, module)


def test_curate_defines_no_stage():
    """curate/ is the engine: the stage API's base classes, and no stage of its own (a class deriving from them)."""
    bases = {"Stage", "Filter", "Mapper", "GlobalStage", "GroupFilter", "WordFilter"}
    found = []
    for path in (REPO / "curate").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if names & bases and path.name != "stage.py":
                    found.append(f"{path.relative_to(REPO)}:{node.name}")
    assert not found


@pytest.mark.parametrize("name", FOREIGN)
def test_the_foreign_distributions_keep_their_own_files(name, tmp_path):
    """Where PyPI's `filters` / `pipelines` are installed (.ci/run installs them), their import name is still
    theirs: curate's wheel installs nothing under it. Looked up in a fresh interpreter in a folder of its own, as an
    installed curate sees it (this process may have the repository on sys.path: a `uses: module:attr` run from the
    repository root puts it there)."""
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        pytest.skip(f"the PyPI distribution {name} is not installed here")
    code = (
        "import importlib.util, json\n"
        "from importlib.metadata import distribution\n"
        f"origin = importlib.util.find_spec({name!r}).origin\n"
        "files = [str(f) for f in distribution('curate').files or []]\n"
        "print(json.dumps([origin, files]))\n"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    origin, curate_files = json.loads(done.stdout)
    assert Path(origin).resolve().is_relative_to(Path(dist.locate_file("")).resolve())
    assert not Path(origin).resolve().is_relative_to(REPO / name)
    assert not [f for f in curate_files if f.split("/")[0] == name]


@pytest.mark.e2e
def test_the_main_job_runs_with_the_foreign_distributions_installed(tmp_path):
    """The README's main job, from a folder of its own, on a small sample crawl (local runner)."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "curate.cli", "-q", "run", "fineweb.yaml", "--runner", "local"]
    cmd += ["--input", "sample:crawl?pages=120", "--output", str(out)]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "_SUCCESS").exists() and (out / "stats.json").exists()


def test_every_folder_with_files_ships_as_a_package(monkeypatch):
    """setup.py lists each folder of curate/ and filters/ that holds files (the data folders have no __init__.py),
    so that a wheel, not only an editable install, carries the word lists, models and configs."""
    import runpy

    import setuptools

    captured: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    monkeypatch.chdir(REPO)
    runpy.run_path(str(REPO / "setup.py"))
    packages, dirs = set(captured["packages"]), captured["package_dir"]
    for top, name in (("curate", "curate"), ("filters", "curate_filters")):
        for folder in [REPO / top, *(p for p in (REPO / top).rglob("*") if p.is_dir())]:
            if folder.name == "__pycache__" or not any(f.is_file() for f in folder.iterdir()):
                continue
            dotted = ".".join([name, *folder.relative_to(REPO / top).parts])
            assert dotted in packages, f"{folder.relative_to(REPO)} is not shipped (setup.py packages)"
    assert dirs == {"curate_filters": "filters", "curate_pipelines": "pipelines"}
