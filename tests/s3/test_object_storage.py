"""Object storage as a first-class path: every input format read from s3://, outputs written there, a global stage's
checkpoints and side tables, a killed driver resumed, the lock's conditional write, `curate verify` (and --fix),
`curate report` and `inspect` — against a real S3 server on 127.0.0.1 (the session's `s3_server` fixture: SeaweedFS,
reached through AWS_ENDPOINT_URL and the AWS_* credentials in the environment, as a user's run would be)."""

from __future__ import annotations

import gzip
import io
import json
import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from faults import MATRIX_DOCS, MATRIX_PIPE, kill_when, matrix_workdir, outcome, start, wait_for
from helpers import build_workdir, contend_for_lock, write_docs, write_pipeline

from curate import config, engine
from curate.cli import main
from curate.errors import OutputError
from curate.io.warc import WarcReader
from curate.output.lock import OutputLock
from curate.output.verify import verify

pytestmark = pytest.mark.e2e
s3fs = pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'curate[s3]')")

RUN = ["run", "p.yaml", "--runner", "local"]

URL_STAGES = '''
import curate


@curate.filter
def odd_url(doc):
    """Reject documents whose URL ends in an odd digit (a stage that reads any input format's url column)."""
    return "odd_url" if (doc.url or "0")[-1] in "13579" else None
'''


# -- reading what a run left on the server -----------------------------------------------------------------------


def s3_outcome(fs: s3fs.S3FileSystem, out: str) -> dict[str, Counter]:
    """faults.outcome of an output on the server: where each document id ended up."""
    places: dict[str, Counter] = {}
    for path in sorted(fs.find(out)):
        rel = path[len(out) + 1 :]
        if not rel.endswith(".parquet") or not rel.startswith(("data/", "rejected/")):
            continue
        place = "kept" if rel.startswith("data/") else rel.rsplit("/", 1)[0]
        with fs.open(path, "rb") as fh:
            ids = pq.read_table(fh, columns=["id"]).column("id").to_pylist()
        places.setdefault(place, Counter()).update(ids)
    return places


def assert_exactly_once_on_s3(fs: s3fs.S3FileSystem, out: str, reference: dict[str, Counter]) -> None:
    """faults.assert_exactly_once for an output on the server: nothing lost or doubled against the run on local
    disk, no run state or lock left, and `verify` passes."""
    got = s3_outcome(fs, out)
    places = set(got) | set(reference)
    lost = {p: sum((reference.get(p, Counter()) - got.get(p, Counter())).values()) for p in places}
    doubled = {p: sum((got.get(p, Counter()) - reference.get(p, Counter())).values()) for p in places}
    assert sum(lost.values()) == 0 and sum(doubled.values()) == 0, f"lost {lost}, doubled or misplaced {doubled}"
    leftovers = [p for p in objects(fs, out) if p[len(out) + 1 :].startswith(("_progress/", "_checkpoint/", "_lock/"))]
    assert fs.exists(f"{out}/_SUCCESS") and not leftovers, leftovers
    report = verify(f"s3://{out}")
    assert report.ok, report.problems()


def objects(fs: s3fs.S3FileSystem, prefix: str) -> list[str]:
    """The objects under a prefix (s3fs's find() answers an emptied "folder" with the folder itself)."""
    return sorted(p for p, info in fs.find(prefix, detail=True).items() if info.get("type") != "directory")


def upload(fs: s3fs.S3FileSystem, local: Path, remote: str) -> None:
    for f in sorted(local.rglob("*")):
        if f.is_file():
            fs.put_file(str(f), f"{remote}/{f.relative_to(local).as_posix()}")


# -- inputs -----------------------------------------------------------------------------------------------------


def warc_record(i: int, words: int = 20, rng: random.Random | None = None) -> bytes:
    """One gzip member holding one HTML response record (a per-record gzip WARC is these, end to end)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = rng or random.Random(i)
    body = " ".join(
        rng.choice(("alpha", "beta", "gamma", "delta", "kappa", "omega")) + str(rng.randrange(10**6))
        for _ in range(words)
    )
    html = f"<html><body><p>Page {i}. {body}</p></body></html>".encode()
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
    rec = writer.create_warc_record(
        f"http://example.com/{i}",
        "response",
        payload=io.BytesIO(html),
        http_headers=headers,
        warc_headers_dict={"WARC-Record-ID": f"<urn:uuid:00000000-0000-4000-8000-{i:012d}>"},
    )
    writer.write_record(rec)
    return buf.getvalue()


def write_inputs(fs: s3fs.S3FileSystem, bucket: str, n: int) -> dict[str, str]:
    """The same n documents in every input format on the server: format name -> (reader format, s3 path)."""
    rows = [
        {"id": f"doc-{i:04d}", "text": f"Document {i} has words.", "url": f"https://example.org/{i}"} for i in range(n)
    ]
    lines = "".join(json.dumps(r) + "\n" for r in rows).encode()
    table = pa.Table.from_pylist(rows)
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=max(1, n // 4))
    import zstandard

    files = {
        "parquet": ("parquet", "in/docs.parquet", buf.getvalue()),
        "jsonl": ("jsonl", "in/docs.jsonl", lines),
        "jsonl.gz": ("jsonl", "in/docs.jsonl.gz", gzip.compress(lines)),
        "jsonl.zst": ("jsonl", "in/docs.jsonl.zst", zstandard.ZstdCompressor().compress(lines)),
        "warc.gz": ("warc", "in/docs.warc.gz", b"".join(warc_record(i) for i in range(n))),
    }
    for _, name, data in files.values():
        fs.pipe_file(f"{bucket}/{name}", data)
    return {k: (fmt, f"s3://{bucket}/{name}") for k, (fmt, name, _) in files.items()}


@pytest.mark.parametrize("kind", ["parquet", "jsonl", "jsonl.gz", "jsonl.zst", "warc.gz"])
def test_every_input_format_reads_from_s3_and_writes_to_s3(s3_server, s3_bucket, make_workdir, capsys, kind):
    fs = s3_server.filesystem()
    n = 20
    fmt, path = write_inputs(fs, s3_bucket, n)[kind]
    out = f"s3://{s3_bucket}/out-{kind}"
    make_workdir(
        files={"url_stages.py": URL_STAGES},
        pipeline=f"""
        name: s3-{fmt}
        input: {{format: {fmt}, path: "{path}"}}
        output: {{path: "{out}", shard_rows: 7}}
        stages:
          - {{id: odd, uses: "url_stages:odd_url"}}
        """,
    )
    assert main(RUN) == 0, capsys.readouterr().err[-3000:]
    stats = json.loads(fs.cat_file(f"{s3_bucket}/out-{kind}/stats.json"))
    assert stats["input_docs"] == n and stats["conserved"]
    urls = []
    for f in fs.find(f"{s3_bucket}/out-{kind}/data"):
        with fs.open(f, "rb") as fh:
            urls += pq.read_table(fh, columns=["url"]).column("url").to_pylist()
    host = "example.com" if fmt == "warc" else "example.org"
    assert sorted(urls) == sorted(f"http{'s' if fmt != 'warc' else ''}://{host}/{i}" for i in range(0, n, 2))
    assert verify(out).ok


def test_warc_units_read_their_byte_ranges_not_whole_files(s3_server, s3_bucket, monkeypatch):
    """A 5 MB per-record-gzip WARC on S3, split in 1 MiB units: planning fetches one 1 MiB range, each unit fetches
    about its own bytes (not s3fs's default 50 MiB read-ahead from where it starts, nor the whole file), and the
    units together read every record once."""
    fs = s3_server.filesystem()
    rng = random.Random(7)
    data = b"".join(warc_record(i, words=1500, rng=rng) for i in range(720))
    assert len(data) > 4 << 20
    fs.pipe_file(f"{s3_bucket}/big/crawl.warc.gz", data)
    fetched: list[tuple[int, int]] = []
    real_fetch = s3fs.core.S3File._fetch_range
    real_cat = s3fs.S3FileSystem._cat_file

    def fetch_range(self, start, end):
        fetched.append((start, end))
        return real_fetch(self, start, end)

    async def cat_file(self, path, version_id=None, start=None, end=None):
        fetched.append((start or 0, end if end is not None else len(data)))
        return await real_cat(self, path, version_id=version_id, start=start, end=end)

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", fetch_range)
    monkeypatch.setattr(s3fs.S3FileSystem, "_cat_file", cat_file)
    reader = WarcReader(path=f"s3://{s3_bucket}/big/crawl.warc.gz", split_bytes=1 << 20, min_units=1)
    units = reader.units()
    assert len(units) >= 4 and all(u.path.startswith("s3://") for u in units)
    assert sum(e - s for s, e in fetched) <= 1 << 20  # the splittability probe: one ranged read
    seen: Counter = Counter()
    per_unit = []
    for unit in units:
        fetched.clear()
        for table in reader.read(unit):
            seen.update(table.column("url").to_pylist())
        start = unit.options[0]
        per_unit.append(sum(e - s for s, e in fetched))
        assert min(s for s, _ in fetched if s > 0 or start == 0) >= start - (1 << 16) or start == 0
        # its own bytes, plus a read-ahead block and the record that crosses its end; never the whole file
        assert per_unit[-1] <= unit.size_bytes + (1 << 20) + (1 << 17) and per_unit[-1] < len(data), (unit, fetched)
    assert seen == Counter(f"http://example.com/{i}" for i in range(720))
    assert sum(per_unit) < 2 * len(data), per_unit  # 1.9x with 1 MiB units, ~1x with 256 MiB ones


# -- a run with a global stage, killed and resumed; the lock -----------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Counter]:
    """The matrix pipeline (faults.MATRIX_PIPE: two phases around exact_dedup) run on local disk."""
    d = build_workdir(tmp_path_factory.mktemp("reference"), **matrix_workdir())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        mp.delenv("MATRIX_SLOW", raising=False)
        stats = engine.run(config.load("p.yaml"), runner="local")
    assert stats["conserved"] and stats["input_docs"] == MATRIX_DOCS
    return outcome(d / "out")


@pytest.fixture
def s3_workdir(s3_server, s3_bucket, make_workdir, monkeypatch):
    """The matrix run folder with its input uploaded to the bucket and its output there too; (folder, bucket)."""
    monkeypatch.delenv("MATRIX_SLOW", raising=False)
    d = make_workdir(**matrix_workdir())
    upload(s3_server.filesystem(), d / "in", f"{s3_bucket}/in")
    pipe = MATRIX_PIPE.replace("path: in", f'path: "s3://{s3_bucket}/in"')
    write_pipeline(d / "p.yaml", pipe.replace("path: out", f'path: "s3://{s3_bucket}/out"'))
    return d, s3_bucket


def _commits(fs: s3fs.S3FileSystem, out: str, phase: int) -> int:
    return sum(1 for p in fs.find(f"{out}/_progress/{phase}/commits") if p.endswith(".json"))


def test_killed_driver_in_the_global_phase_resumes_on_s3_and_the_lock_holds(s3_server, s3_workdir, reference, capsys):
    """A run on S3 input and output: while it runs, a second run (with --overwrite too) is refused by the lock and
    `curate verify` refuses the unfinished output; SIGKILLed in the phase after the global stage (its checkpoint on
    S3), the rerun takes the dead holder's lock over, keeps phase 0 and finishes exactly once."""
    workdir, bucket = s3_workdir
    fs = s3_server.filesystem()
    out = f"{bucket}/out"
    proc = start(RUN, workdir, slow=True)
    wait_for(proc, lambda: _commits(fs, out, 0) >= 2, timeout=180)
    for extra in ([], ["--overwrite"]):
        assert main(RUN + extra) == 2
        err = capsys.readouterr().err
        assert "is being written by" in err and f"pid {proc.pid}" in err, err
    assert main(["verify", f"s3://{out}"]) == 2
    assert "is being written by a run" in capsys.readouterr().err
    kill_when(proc, lambda: fs.exists(f"{out}/_progress/0/DONE") and _commits(fs, out, 1) >= 2, timeout=180)
    checkpoint = [p for p in objects(fs, f"{out}/_checkpoint") if p.endswith(".parquet")]
    assert checkpoint, "the global stage's input was not checkpointed on S3"
    assert [p for p in objects(fs, f"{out}/_lock") if p.endswith(".json")]  # the dead holder's record
    assert main(RUN) == 0
    err = capsys.readouterr().err
    assert "taking over output" in err and "is gone" in err and "phase 0 already finished" in err, err
    stats = json.loads(fs.cat_file(f"{out}/stats.json"))
    assert stats["attempts"] == 2 and stats["conserved"]
    assert_exactly_once_on_s3(fs, out, reference)


def test_the_lock_on_s3_takes_one_of_many_and_a_dead_holder_over(s3_server, s3_bucket):
    """Eight simultaneous acquirers on one S3 output: the conditional PUT lets exactly one win (the losers of the
    race get 412 from the server, which must read as "another run was first"). A holder whose lease expired is
    taken over by the next run."""
    out = f"s3://{s3_bucket}/locked"
    results = contend_for_lock(out)
    winners = [r for r in results if isinstance(r, OutputLock)]
    assert len(winners) == 1 and len(results) == 8
    assert all("is being written by" in str(r) for r in results if isinstance(r, OutputError)), results
    winners[0].release()
    fs = s3_server.filesystem()
    assert not [p for p in objects(fs, f"{s3_bucket}/locked") if "/_lock/" in p]
    # a holder on another host that stopped renewing: its lease expires, the next run takes over
    stale = {"token": "theirs", "host": "elsewhere", "boot": "b", "pid": 4242, "pid_start": "", "attempt": 1}
    stale.update(command="curate run p.yaml", since=0.0, renewed=1.0, lease_s=60.0)
    fs.pipe_file(f"{s3_bucket}/locked/_lock/0000000001.json", json.dumps(stale).encode())
    with OutputLock(out) as lock:
        assert lock.generation == 2
        assert not fs.exists(f"{s3_bucket}/locked/_lock/0000000001.json")


# -- verify, report, inspect ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(s3_server, tmp_path_factory) -> str:
    """A finished run of the matrix pipeline with its input and output on S3 (made once: the report test reads it,
    then the verify test damages it); its bucket/prefix."""
    bucket = s3_server.bucket()
    d = build_workdir(tmp_path_factory.mktemp("finished"), **matrix_workdir())
    upload(s3_server.filesystem(), d / "in", f"{bucket}/in")
    pipe = MATRIX_PIPE.replace("path: in", f'path: "s3://{bucket}/in"')
    write_pipeline(d / "p.yaml", pipe.replace("path: out", f'path: "s3://{bucket}/out"'))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        mp.delenv("MATRIX_SLOW", raising=False)
        assert main(RUN) == 0
    return f"{bucket}/out"


def test_report_and_inspect_read_an_s3_output(s3_server, finished, capsys):
    fs = s3_server.filesystem()
    url = f"s3://{finished}"
    assert main(["report", url]) == 0
    assert f"report: {url}/report.html" in capsys.readouterr().out
    html = fs.cat_file(f"{finished}/report.html").decode()
    assert "exact_dedup" in html or "dedup" in html
    assert main(["inspect", url, "--stage", "dedup", "-n", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(rows) == 2 and all(r.get("reason") for r in rows)
    assert main(["verify", url]) == 0  # the report is curate's own file, not a stray one


def test_verify_on_s3_passes_a_clean_output_and_names_damage(s3_server, finished, capsys):
    fs = s3_server.filesystem()
    url = f"s3://{finished}"
    assert main(["verify", url]) == 0
    text = capsys.readouterr().out
    assert "ok" in text and f"{MATRIX_DOCS} ids, none twice" in text and "no unlisted files" in text
    shards = sorted(p for p in fs.find(f"{finished}/data") if p.endswith(".parquet"))
    stray = f"{finished}/data/part-stray-000.parquet"
    fs.copy(shards[1], stray)
    fs.pipe_file(f"{finished}/_progress/0/commits/leftover.json", b"{}")  # run state a crash after _SUCCESS left
    fs.rm(shards[0])
    assert main(["verify", url]) == 1
    err = capsys.readouterr().err
    assert f"missing: data/{shards[0].rsplit('/', 1)[1]}" in err
    assert "unlisted: data/part-stray-000.parquet" in err and "unlisted: _progress" in err and "--fix" in err
    assert main(["verify", url, "--fix"]) == 1  # the missing shard needs a rerun; the strays are gone
    err = capsys.readouterr().err
    assert err.count("removed: ") == 2 and "unlisted" not in err and "missing: data/" in err
    assert not fs.exists(stray) and not objects(fs, f"{finished}/_progress")


# -- the Ray runner: workers write what the driver lists ---------------------------------------------------------

MINHASH_PIPE = """
name: s3-minhash
input: {{format: parquet, path: "{inp}"}}
output: {{path: "{out}", shard_rows: 25}}
engine: {{batch_rows: 20, progress_seconds: 0}}
stages:
  - {{id: gq, uses: gopher_quality, with: {{min_doc_words: 3}}}}
  - {{id: dedup, uses: minhash, with: {{index: {{write: "{index}"}}}}}}
"""


@pytest.mark.ray
@pytest.mark.slow
def test_ray_run_with_a_global_stage_and_its_side_table_on_s3(s3_server, s3_bucket, ray_session, tmp_path, monkeypatch):
    """On the shared Ray: Ray workers write the shards, commit records and the MinHash index (a side table outside
    OUT) to S3, and the driver, which listed the run state before they wrote, commits all of it (an object-store
    listing cached by the driver would lose their records)."""
    fs = s3_server.filesystem()
    for k in range(4):
        write_docs(tmp_path / "in" / f"part{k}.parquet", 60, start=60 * k, dup_every=5)
    upload(fs, tmp_path / "in", f"{s3_bucket}/in")
    out, index = f"s3://{s3_bucket}/out", f"s3://{s3_bucket}/index"
    write_pipeline(tmp_path / "p.yaml", MINHASH_PIPE.format(inp=f"s3://{s3_bucket}/in", out=out, index=index))
    monkeypatch.chdir(tmp_path)
    stats = engine.run(config.load("p.yaml"), runner="ray")
    assert stats["conserved"] and stats["input_docs"] == 240
    places = s3_outcome(fs, f"{s3_bucket}/out")
    assert sum(places["kept"].values()) == stats["output_docs"] and max(places["kept"].values()) == 1
    assert sum(places.get("rejected/dedup", Counter()).values()) > 0
    manifest = json.loads(fs.cat_file(f"{s3_bucket}/out/manifest.json"))
    assert manifest["external"] and all(e["root"] == index for e in manifest["external"])
    assert fs.exists(f"{s3_bucket}/index/_manifest.json")
    report = verify(out)
    assert report.ok and report.ids == 240, report.problems()
