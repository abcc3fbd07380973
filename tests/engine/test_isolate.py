"""The isolation of poison records (engine/isolate.py) in this process, without Ray: a child per batch, the row it
worked on, confirmation of crashes, bisection, deadlines, the memory limit, and the segment runner's rejected rows
and figures."""

from __future__ import annotations

import ctypes
import os
import re
import time

import pyarrow as pa
import pytest

from curate import config, inflight
from curate.engine.isolate import Limits, Sandbox, guarded, limits_for, parse_bytes, run_child
from curate.engine.segment import SegmentRunner
from curate.errors import ConfigError
from curate.ledger import Ledger
from curate.output.figures import Figures
from curate.schema import FIGURES, REASON, STAGE
from curate.stage import Filter

pytestmark = pytest.mark.unit

LIMITS = Limits([5.0], 512 << 20)


def _guarded(run, n: int, limits: Limits = LIMITS):
    """guarded() over run(rows) in one warm child (a Sandbox), as the segment runner calls it."""
    box = Sandbox(run)
    try:
        return guarded(lambda rows: box.call((rows,), limits, len(rows)), n)
    finally:
        box.close()


def _rows_runner(crash_on: int | None = None, tracked: bool = True, how: str = "segfault", flag: str = ""):
    """run(rows) for guarded(): walks its rows (reporting them when `tracked`) and crashes on row crash_on (only
    while the file `flag` exists, when given: a transient failure that the first crash removes)."""

    def run(rows: list[int]) -> list[int]:
        inflight.stage(0, rows)
        for r in inflight.tracked(rows) if tracked else rows:
            if r == crash_on and (not flag or os.path.exists(flag)):
                if flag:
                    os.unlink(flag)
                if how == "segfault":
                    ctypes.string_at(0)
                elif how == "exit":
                    os._exit(2)
                elif how == "hang":
                    re.match(r"(a+)+$", "a" * 40 + "b")
                elif how == "memory":
                    blob = []
                    while True:
                        blob.append(b"x" * (1 << 24))
        return rows

    return run


def test_a_clean_batch_runs_once_in_a_child_and_comes_back_whole():
    results, isolated = _guarded(_rows_runner(), 100)
    assert results == [list(range(100))] and isolated == []


def test_a_crash_on_a_known_row_is_confirmed_once_then_that_row_alone_is_isolated():
    results, isolated = _guarded(_rows_runner(crash_on=37), 100)
    (iso,) = isolated
    assert iso.row == 37 and iso.failure.reason == "worker_crashed" and "SIGSEGV" in iso.failure.detail
    assert iso.runs == 2  # the crash, its confirmation; then the other 99 rows in one more run
    assert sorted(r for part in results for r in part) == [r for r in range(100) if r != 37]


def test_a_transient_crash_rejects_nothing(tmp_path):
    flag = tmp_path / "once"
    flag.touch()
    results, isolated = _guarded(_rows_runner(crash_on=10, how="exit", flag=str(flag)), 50)
    assert isolated == [] and results == [list(range(50))]


def test_a_row_that_is_not_reported_is_found_by_bisection():
    results, isolated = _guarded(_rows_runner(crash_on=77, tracked=False, how="exit"), 128)
    (iso,) = isolated
    assert iso.row == 77 and iso.failure.detail == "exited with code 2"
    assert iso.runs <= 2 + 2 * 7 + 1  # the whole batch twice, then halves down to one row (and its confirmation)
    assert sorted(r for part in results for r in part) == [r for r in range(128) if r != 77]


def test_a_hang_that_holds_the_gil_is_stopped_at_the_deadline():
    t0 = time.monotonic()
    results, isolated = _guarded(_rows_runner(crash_on=3, how="hang"), 10, Limits([0.5], 0))
    seconds = time.monotonic() - t0
    (iso,) = isolated
    assert iso.row == 3 and iso.failure.reason == "stage_timeout" and iso.runs == 1
    assert 0.5 <= seconds < 5
    assert sorted(r for part in results for r in part) == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_a_memory_blow_up_stops_at_the_limit_and_leaves_this_process_alone():
    before = _rss()
    results, isolated = _guarded(_rows_runner(crash_on=5, how="memory"), 10, Limits([5.0], 256 << 20))
    (iso,) = isolated
    assert iso.row == 5 and iso.failure.reason == "out_of_memory"
    assert _rss() - before < 64 << 20


def test_the_child_stays_warm_between_batches_and_is_replaced_after_a_crash():
    box = Sandbox(lambda: os.getpid())
    first, _ = box.call((), LIMITS, 1)
    again, _ = box.call((), LIMITS, 1)
    assert first == again != os.getpid()  # one child, for batch after batch
    crash = Sandbox(lambda: ctypes.string_at(0))
    assert crash.call((), LIMITS, 1)[1].reason == "worker_crashed" and crash.pid == 0
    box.close()
    assert box.pid == 0


class _Finalized:
    """Cyclic garbage whose finalizer leaves a file named after the process that ran it (as a Ray ObjectRef's
    runs Ray's reference counting and talks to Ray)."""

    def __init__(self, folder) -> None:
        self.folder, self.me = folder, self

    def __del__(self) -> None:
        (self.folder / str(os.getpid())).touch()


def test_the_child_never_finalizes_what_this_process_holds(tmp_path):
    import gc

    gc.disable()
    try:
        _Finalized(tmp_path)  # garbage now, in a cycle: only the cyclic collector would finalize it
        child, _ = run_child(lambda: (gc.collect(), os.getpid())[1], LIMITS, 1)
        assert not (tmp_path / str(child)).exists()  # frozen at the fork: the child's collection left it alone
        assert gc.get_freeze_count() == 0  # and thawed here
        gc.collect()
        assert (tmp_path / str(os.getpid())).exists()  # here it is finalized, as it should be
    finally:
        gc.enable()


def test_a_child_stuck_outside_its_stages_is_replaced(monkeypatch):
    from curate.engine import isolate

    monkeypatch.setattr(isolate, "OUTSIDE_STAGES", 0.5)
    stuck = Sandbox(lambda: time.sleep(30))  # never reports a stage (a lock held at the fork, say)
    t0 = time.monotonic()
    result, failure = stuck.call((), Limits([0.2], 0), 1)
    assert time.monotonic() - t0 < 10 and result is None and stuck.pid == 0
    assert failure.reason == "worker_crashed" and "outside its stages" in failure.detail
    none, failure = Sandbox(lambda: time.sleep(1)).call((), Limits([0.0], 0), 1)  # no deadlines: no limit either
    assert failure is None


def test_an_exception_in_the_child_is_raised_here():
    def boom() -> None:
        raise ValueError("a stage's own error")

    with pytest.raises(ValueError, match="a stage's own error"):
        run_child(boom, LIMITS, 1)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Crashy(Filter):
    reasons = ("long",)

    def reject(self, doc):
        if "POISON" in doc.text:
            ctypes.string_at(0)
        return "long" if len(doc.text) > 30 else None


def _spec(tmp_path, engine: str = "") -> config.Pipeline:
    (tmp_path / "p.yaml").write_text(
        f"""
name: t
input: {{format: parquet, path: in}}
output: {{path: out}}
{engine}
stages:
  - {{id: crashy, uses: "test_isolate:Crashy", deadline: 2}}
"""
    )
    return config.load(str(tmp_path / "p.yaml"), check_input=False)


def test_the_segment_runner_rejects_the_poison_row_with_its_figures(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    pipe = _spec(tmp_path)
    limits = limits_for(pipe.stages, pipe.engine)
    assert limits.deadlines == [2.0] and limits.memory >= 1 << 30
    texts = ["short one", "a POISON document", "a much longer document than thirty characters"]
    batch = pa.table({"id": ["a", "b", "c"], "text": texts})
    ledger = Ledger()
    out = SegmentRunner(pipe.stages, ledger, limits=limits)(batch)
    got = dict(zip(out.column("id").to_pylist(), out.column(REASON).to_pylist()))
    assert got == {"a": None, "b": "worker_crashed", "c": "long"}
    assert out.column(STAGE).to_pylist()[out.column("id").to_pylist().index("b")] == "crashy"
    figures = Figures()
    for value in out.column(FIGURES).drop_null().to_pylist():
        figures.add(Figures.from_json(value))
    fig = figures.stages["crashy"]
    assert fig.docs_in == 3 and fig.rejected == {"long": 1, "worker_crashed": 1}
    assert [f["id"] for f in fig.failures] == ["b"] and ledger.figures.stages["crashy"].docs_in == 3


def test_settings_are_checked_when_the_pipeline_loads(tmp_path):
    assert parse_bytes("4GiB") == 4 << 30 and parse_bytes("512MB") == 512 * 10**6 and parse_bytes(7) == 7
    with pytest.raises(ConfigError, match="memory_limit"):
        parse_bytes("lots")
    pipe = _spec(tmp_path, "engine: {isolation: none}")
    assert limits_for(pipe.stages, pipe.engine) is None
    (tmp_path / "bad.yaml").write_text(
        "name: t\ninput: {format: parquet, path: in}\noutput: {path: out}\n"
        "stages:\n  - {id: c, uses: c4_badwords, deadline: soon}\n"
    )
    with pytest.raises(ConfigError, match="deadline must be seconds"):
        config.load(str(tmp_path / "bad.yaml"), check_input=False)
