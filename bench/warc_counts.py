"""Every WARC / ARC / WET file under ../shared/corpus read by curate's WarcReader, next to what warcio itself sees.

Columns: records (all, per warcio), responses (warcio), HTML (warcio: response records whose
WARC-Identified-Payload-Type, else HTTP Content-Type, is text/html or application/xhtml+xml; WET: conversion
records), curate docs + input rejections with statuses=[] (every status) and with the default statuses=[200],
and the same by warcio with status 200. ARC files, which warcio cannot read, are compared with their WARC twins.

    python bench/warc_counts.py [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curate.io.warc import WarcReader  # noqa: E402
from curate.schema import REASON  # noqa: E402


def warcio_counts(path: Path) -> tuple[int, int, int, int]:
    from warcio.archiveiterator import ArchiveIterator

    records = responses = html = html200 = 0
    with open(path, "rb") as fh:
        for r in ArchiveIterator(fh, arc2warc=True):
            records += 1
            if r.rec_type == "conversion":
                html += 1
                html200 += 1
                continue
            if r.rec_type != "response":
                continue
            responses += 1
            http = r.http_headers
            if http is None:
                continue
            mime = r.rec_headers.get_header("WARC-Identified-Payload-Type") or http.get_header("Content-Type") or ""
            if mime.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
                html += 1
                html200 += http.get_statuscode() == "200"
    return records, responses, html, html200


def curate_counts(path: Path, **options) -> tuple[int, Counter]:
    reader = WarcReader(path=str(path), **options)
    docs, rejected = 0, Counter()
    for unit in reader.units():
        for t in reader.read(unit):
            if REASON in t.column_names:
                rejected.update(r for r in t.column(REASON).to_pylist() if r)
                docs += t.column(REASON).null_count
            else:
                docs += t.num_rows
    return docs, rejected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpus"))
    args = ap.parse_args()
    files = sorted(p for p in Path(args.corpus).glob("*/*.gz") if ".arc" in p.name or ".warc" in p.name)
    head = f"{'file':<52}{'records':>8}{'resp':>6}{'HTML':>6}{'curate':>8}{'HTML200':>8}{'curate200':>10}  rejected"
    print(head)
    ok = True
    for path in files:
        twin = path.with_name(path.name.replace(".arc.gz", ".warc.gz")) if path.name.endswith(".arc.gz") else path
        records, responses, html, html200 = warcio_counts(twin)
        t0 = time.perf_counter()
        docs, rej = curate_counts(path, statuses=[])
        docs200, rej200 = curate_counts(path)
        seconds = time.perf_counter() - t0
        total, total200 = docs + sum(rej.values()), docs200 + sum(rej200.values())
        match = total == html and total200 == html200
        ok &= match
        name = f"{path.parent.name}/{path.name}"
        name = name if len(name) <= 50 else name[:22] + "..." + name[-25:]
        print(
            f"{name:<52}{records:>8}{responses:>6}{html:>6}{total:>8}{html200:>8}{total200:>10}  "
            f"{dict(rej) or '-'}{'' if match else '  MISMATCH'}  ({seconds:.2f}s)"
        )
    print("\nall files read without a crash; counts " + ("match warcio" if ok else "DIFFER from warcio"))


if __name__ == "__main__":
    main()
