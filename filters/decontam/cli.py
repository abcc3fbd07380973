"""`curate contamination OUT --against EVALS...`: which evaluation items occur in a corpus, and in which documents --
the analysis without removal (a model card's contamination section). For a finished curate output it reads the
kept and the rejected documents, writes OUT/contamination.json, and `curate report OUT` shows it."""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from typing import Any

import numpy as np

from curate.errors import InputError
from curate_filters.decontam.evals import PRESETS, EvalSpec, read_sets
from curate_filters.decontam.index import NORMALIZATIONS, IndexSettings, NgramIndex, cached_index, doc_ngrams

REPORT_FILE = "contamination.json"


def _is_output(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "manifest.json")) and os.path.isdir(os.path.join(path, "data"))


def document_files(paths: list[str], rejected: bool = True) -> list[tuple[str, str]]:
    """(file, where) for every document file: a curate output's kept shards ('kept') and rejected shards
    ('rejected/<stage>'), or the Parquet/JSONL/text files given (their names)."""
    from curate.train.data import input_files
    from curate_filters.quality.classifier import rejected_files

    out: list[tuple[str, str]] = []
    for p in paths:
        if _is_output(p):
            out += [(f, "kept") for f in input_files(p)]
            if rejected:
                try:
                    files = rejected_files(p)
                except InputError:  # nothing was rejected
                    files = []
                out += [(f, "/".join(os.path.relpath(f, p).split(os.sep)[:2])) for f in files]
        else:
            out += [(f, os.path.basename(f)) for f in input_files(p)]
    return out


def scan(
    files: list[tuple[str, str]], index: NgramIndex, examples: int = 3, text_column: str = "text"
) -> dict[str, Any]:
    """Per evaluation set and item: the documents that hold one of its n-grams (their number, and `examples` of
    them with where they are and the n-gram found)."""
    from curate.train.data import iter_docs

    n = index.settings.n_grams
    norm = index.settings.normalizer
    docs_of_item: dict[int, set[str]] = defaultdict(set)
    shown: dict[int, list[dict[str, Any]]] = defaultdict(list)
    contaminated: set[str] = set()
    total = 0
    for path, where in files:
        for ids, texts in iter_docs(path, text_column):
            total += len(ids)
            docs, pos, rows, _ = doc_ngrams(texts, index)
            if not len(docs):
                continue
            # every item holding a matched n-gram (the index has one row per n-gram and item)
            ends = np.searchsorted(index.hashes, index.hashes[rows], "right")
            reps = ends - rows
            doc_rep = np.repeat(docs, reps)
            pos_rep = np.repeat(pos, reps)
            row_rep = np.repeat(rows, reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
            items = np.asarray(index.items)[row_rep]
            pairs, first = np.unique(np.stack([doc_rep, items], axis=1), axis=0, return_index=True)
            words_cache: dict[int, list[str]] = {}
            for (d, item), k in zip(pairs.tolist(), first.tolist()):
                doc_id = ids[d]
                contaminated.add(f"{where}\0{doc_id}")
                docs_of_item[item].add(f"{where}\0{doc_id}")
                if len(shown[item]) < examples:
                    words = words_cache.get(d)
                    if words is None:
                        words = words_cache[d] = norm.words(texts[d])
                    p = int(pos_rep[k])
                    shown[item].append({"id": doc_id, "where": where, "ngram": " ".join(words[p : p + n])})
    sets = []
    for s, name in enumerate(index.sets):
        mine = [i for i in docs_of_item if int(index.item_set[i]) == s]
        mine.sort(key=lambda i: (-len(docs_of_item[i]), index.item_keys[i]))
        in_set = int((np.asarray(index.item_set) == s).sum())
        docs_in_set = set().union(*(docs_of_item[i] for i in mine)) if mine else set()
        sets.append(
            {
                "name": name,
                "items": in_set,
                "items_found": len(mine),
                "documents": len(docs_in_set),
                "found": [
                    {"item": index.item_keys[i], "documents": len(docs_of_item[i]), "examples": shown[i]} for i in mine
                ],
            }
        )
    return {"documents": total, "contaminated_documents": len(contaminated), "sets": sets}


def format_report(report: dict[str, Any], max_items: int = 20) -> str:
    lines = [
        f"{report['documents']:,} documents scanned, {report['contaminated_documents']:,} hold an evaluation n-gram "
        f"({report['settings']['n_grams']}-grams, {report['settings']['normalization']} normalization)",
        f"index: {report['index']['description']}",
    ]
    for s in report["sets"]:
        share = s["items_found"] / s["items"] if s["items"] else 0.0
        lines.append(
            f"\n{s['name']}: {s['items_found']:,} of {s['items']:,} items ({share:.1%}) in {s['documents']:,} documents"
        )
        if s["found"]:
            lines.append(f"  {'item':<40} {'docs':>6}  examples (where: id)")
        for f in s["found"][:max_items]:
            ex = ", ".join(f"{e['where']}: {e['id']}" for e in f["examples"])
            lines.append(f"  {f['item'][:40]:<40} {f['documents']:>6}  {ex}")
        if len(s["found"]) > max_items:
            lines.append(f"  ... {len(s['found']) - max_items} more (--json for all)")
    return "\n".join(lines)


def settings_from(args: argparse.Namespace) -> IndexSettings:
    if args.datatrove:
        return IndexSettings(12, "datatrove", args.language, False, True, None, None)
    return IndexSettings(
        args.n_grams,
        args.normalization,
        args.language,
        not args.no_query_ngrams,
        True,
        args.max_items_per_ngram or None,
        args.stop_ngrams,
    )


def specs_from(args: argparse.Namespace) -> list[EvalSpec]:
    entries: list[Any] = []
    for path in args.against:
        name, sep, rest = path.partition("=")
        entry: dict[str, Any] = {"path": rest, "name": name} if sep and not os.path.exists(path) else {"path": path}
        if args.preset:
            entry["preset"] = args.preset
        entries.append(entry)
    return read_sets(entries)


def cmd_contamination(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    specs = specs_from(args)
    index = cached_index(specs, settings, args.cache_dir)
    files = document_files(args.inputs, rejected=not args.kept_only)
    report = scan(files, index, args.examples, args.text_column)
    report["settings"] = {k: v for k, v in settings.__dict__.items()}
    report["index"] = {**index.stats, "rows": len(index.hashes), "bytes": index.nbytes, "description": index.describe()}
    report["evals"] = [{"name": s.name, "path": s.path} for s in specs]
    if len(args.inputs) == 1 and _is_output(args.inputs[0]) and not args.no_write:
        from curate.output import sink

        sink.write_json(args.inputs[0], REPORT_FILE, report)
        where = os.path.join(args.inputs[0], REPORT_FILE)
    else:
        where = None
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report, args.max_items))
        if where:
            print(f"\nwritten: {where} (curate report shows it)")
    return 0


def register_cli(sub: Any) -> None:
    p = sub.add_parser(
        "contamination",
        help="which evaluation items occur in a finished output (or Parquet/JSONL files), in which documents",
    )
    p.add_argument("inputs", nargs="+", metavar="OUT", help="a finished curate output, or Parquet/JSONL/text files")
    p.add_argument(
        "--against",
        nargs="+",
        required=True,
        metavar="EVALS",
        help="evaluation files (JSONL, JSON, Parquet, CSV/TSV, text; globs); NAME=PATH names a set",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="field layout of every --against file (default: guess)")
    p.add_argument("--n-grams", type=int, default=13, help="words per n-gram (default 13, GPT-3)")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default="datatrove", help="default datatrove")
    p.add_argument("--language", default="en", help="word tokenizer language (default en)")
    p.add_argument("--no-query-ngrams", action="store_true", help="only n-grams holding the answer (datatrove)")
    p.add_argument("--max-items-per-ngram", type=int, default=10, help="ignore n-grams of more items (0: keep all)")
    p.add_argument("--stop-ngrams", help="a text file of phrases whose n-grams are ignored")
    p.add_argument("--datatrove", action="store_true", help="datatrove's settings: 12-grams, answer n-grams, no cap")
    p.add_argument("--examples", type=int, default=3, help="example documents per item (default 3)")
    p.add_argument("--max-items", type=int, default=20, help="items printed per set (default 20; --json: all)")
    p.add_argument("--kept-only", action="store_true", help="a curate output's kept documents only")
    p.add_argument("--text-column", default="text", help="text column of Parquet/JSONL inputs")
    p.add_argument("--cache-dir", help="where the index is cached (default $CURATE_CACHE or the temporary folder)")
    p.add_argument("--no-write", action="store_true", help="do not write OUT/contamination.json")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(fn=cmd_contamination)
