"""`curate report OUT`: OUT/report.html, one self-contained page (plots as embedded PNG, no network) that shows
what a run did: the funnel of documents and words through the stages, rejections by reason, time per document,
languages, document lengths and score distributions with the thresholds the pipeline cut at, duplicate clusters,
and example documents for every rejection reason.

Distributions come from a bounded sample (`max_rows` rows, spread over the shards in proportion to their rows);
the counts (funnel, rejections) are exact, from stats.json.
"""

from __future__ import annotations

import html
import re
import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.output import sink
from curate.output.measure import doc_sizes
from curate.report import plots
from curate.report.output import RunOutput, Shard, thresholds
from curate.report.page import SCRIPT, STYLE, Page, toc_entry

REPORT = "report.html"
EXCERPT_CHARS = 320
# duplicate_of values read for the cluster sizes of a dedup stage without dedup_cluster_size (one short column)
MAX_DUPLICATE_IDS = 2_000_000


def write_report(out: str, max_rows: int = 10_000, examples: int = 3) -> str:
    """Write OUT/report.html; returns its path."""
    page = build_report(RunOutput.open(out), max_rows=max_rows, examples=examples)
    sink.write_text(out, REPORT, page)
    return sink.join(out, REPORT)


# -- the data the page shows -----------------------------------------------------------------------------------


def _sample(run: RunOutput, max_rows: int) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """A bounded sample of kept rows and of rejected rows (as they entered their stage), half the budget each;
    returns them and how many rows each side holds in all."""
    scores = run.score_columns()
    cols = ["id", "text", "language", "dedup_cluster_size", "reason", *scores]
    kept_shards, rej_shards = run.shards_of(kept=True), run.shards_of(kept=False)
    totals = {"kept": sum(s.rows for s in kept_shards), "rejected": sum(s.rows for s in rej_shards)}
    half = max(1, max_rows // 2)
    # what one side does not need, the other may use
    kept_budget = max(half, max_rows - min(half, totals["rejected"]))
    rej_budget = max(half, max_rows - min(kept_budget, totals["kept"]))
    return run.sample_rows(kept_shards, cols, kept_budget), run.sample_rows(rej_shards, cols, rej_budget), totals


def _values(table: pa.Table, column: str) -> np.ndarray:
    if table.num_rows == 0 or column not in table.column_names:
        return np.zeros(0)
    col = pc.cast(table.column(column), pa.float64())
    return np.asarray(pc.fill_null(col, np.nan).to_numpy(zero_copy_only=False), dtype=float)


def _word_lengths(table: pa.Table) -> np.ndarray:
    """Words per document, for the rows that have text."""
    if table.num_rows == 0 or "text" not in table.column_names:
        return np.zeros(0)
    has_text = np.asarray(table.column("text").is_valid().to_numpy(zero_copy_only=False), bool)
    words = doc_sizes(table.select(["text"]))[0]
    return words[has_text].astype(float)


def examples_by_reason(run: RunOutput, stage: str, reasons: list[str], k: int) -> dict[str, list[dict[str, Any]]]:
    """Up to k rejected documents per reason of `stage`: its shards' reason column is read once, then only the
    rows shown."""
    want = {r: k for r in reasons}
    picked: dict[str, list[tuple[Shard, int]]] = {r: [] for r in reasons}
    for shard in run.shards_of(stage=stage, kept=False):
        if not any(want.values()):
            break
        col = run.read(shard, ["reason"]).column("reason").to_pylist()
        for row, reason in enumerate(col):
            if want.get(reason, 0) > 0:
                picked[reason].append((shard, row))
                want[reason] -= 1
    cols = ["id", "url", "text", "reason", "duplicate_of", "language", "language_score", *run.score_columns()]
    out: dict[str, list[dict[str, Any]]] = {}
    for reason, where in picked.items():
        docs = []
        for shard, row in where:
            docs += run.take(shard, [row], cols).to_pylist()
        out[reason] = docs
    return out


_GRAM = re.compile(r"(?:top_(\d+)_gram|duplicated_(\d+)_n_grams)$")


def explain_excerpt(reason: str, doc: dict[str, Any]) -> str:
    """What explains the rejection, where it can be read off the document: the duplicate's id, the most repeated
    line or paragraph, the most frequent n-gram; else the start of the text."""
    text = doc.get("text") or ""
    if doc.get("duplicate_of"):
        return f"duplicate of {doc['duplicate_of']}"
    if reason.startswith(("dup_line", "dup_para")):
        parts = [p.strip() for p in (text.split("\n\n") if "para" in reason else text.split("\n")) if p.strip()]
        if parts:
            unit, n = Counter(parts).most_common(1)[0]
            if n > 1:
                return f"repeated {n} times: {_clip(unit, 200)}"
    m = _GRAM.match(reason)
    if m:
        size = int(m.group(1) or m.group(2))
        words = text.split()
        grams = Counter(tuple(words[i : i + size]) for i in range(max(0, len(words) - size + 1)))
        if grams:
            gram, n = grams.most_common(1)[0]
            if n > 1:
                return f"most frequent {size}-gram ({n} times): {_clip(' '.join(gram), 200)}"
    return ""


def _clip(text: str, n: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1].rstrip() + "\u2026"


# -- the page (its frame: curate.report.page) ------------------------------------------------------------------


def _n(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else html.escape(str(v))


def _plot(fn: Any, *args: Any, **kwargs: Any) -> bytes | None:
    return fn(*args, **kwargs) if plots.available() else None


def build_report(run: RunOutput, max_rows: int = 10_000, examples: int = 3) -> str:
    """The report page of a finished output as one HTML string."""
    stages = run.stats.get("stages", [])
    kept, rejected, totals = _sample(run, max_rows)
    page = Page()
    have_plots = plots.available()
    _funnel(page, stages)
    _rejections(page, stages)
    _counters(page, run, stages, examples)
    _time(page, stages)
    note = _sample_note(kept, rejected, totals, max_rows)
    _languages(page, kept, rejected, note)
    _distributions(page, run, kept, rejected, note)
    _duplicates(page, run, kept, stages)
    _examples(page, run, stages, examples)
    _contamination(page, run)
    return _document(page, run, have_plots)


def _funnel(page: Page, stages: list[dict[str, Any]]) -> None:
    """What each stage handed on: the funnel plot and its table (from stats.json)."""
    tokens = any("tokens_in" in s for s in stages)  # the pipeline named a tokenizer (output.tokenizer)
    page.section(
        "funnel",
        "Funnel",
        "What each stage handed on (documents, words, bytes"
        + (", tokens" if tokens else "")
        + "), from <code>stats.json</code> (exact counts): a bar "
        "shorter than the one above it is what that stage rejected, or removed from the text it kept. Words are "
        "whitespace-delimited runs of the text; bytes are UTF-8 bytes of the text (of the HTML before extraction)"
        + ("; tokens are the pipeline tokenizer's, special tokens not counted" if tokens else "")
        + ".",
    )
    page.figure("fig-funnel", _plot(plots.funnel, stages), "documents, words and bytes after each stage")
    keys = ("docs_in", "kept", "rejected", "words_in", "words_out", "bytes_in", "bytes_out")
    heads = ["documents in", "kept", "rejected", "words in", "words out", "bytes in", "bytes out"]
    if tokens:
        keys += ("tokens_in", "tokens_out")
        heads += ["tokens in", "tokens out"]
    rows = []
    for s in stages:
        attrs = " ".join(f'data-{k.replace("_", "-")}="{int(s.get(k, 0))}"' for k in keys)
        rows.append(
            f'<tr data-stage="{html.escape(s["id"])}" {attrs}><td>{html.escape(s["id"])}</td>'
            f"<td>{html.escape(str(s.get('uses', '')))}</td>"
            + "".join(f'<td class="n">{_n(s.get(k, 0))}</td>' for k in keys)
            + f'<td class="n">{s.get("ms_per_doc", 0.0):.3g}</td></tr>'
        )
    page.add(
        '<table id="funnel-table"><tr><th>stage</th><th>uses</th>'
        + "".join(f"<th>{h}</th>" for h in heads)
        + "<th>ms/doc</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    page.end()


def _rejections(page: Page, stages: list[dict[str, Any]]) -> None:
    """Each stage's rejections by reason: the plot and the table, linked to the examples."""
    page.section(
        "rejections",
        "Rejections by stage and reason",
        "Each stage's rejected documents by reason, with the words and bytes (and tokens, with a pipeline "
        "tokenizer) they held as they entered the stage.",
    )
    tokens = any("tokens_in" in s for s in stages)
    if any(s.get("rejected") for s in stages):
        page.figure("fig-rejections", _plot(plots.rejections, stages), "documents rejected per stage, by reason")
    rows = []
    for s in stages:
        for reason, n in s.get("reasons", {}).items():
            share = 100 * n / s["docs_in"] if s.get("docs_in") else 0.0
            rows.append(
                f'<tr data-stage="{html.escape(s["id"])}" data-reason="{html.escape(reason)}" data-docs="{n}">'
                f'<td>{html.escape(s["id"])}</td><td>{html.escape(reason)}</td><td class="n">{n:,}</td>'
                f'<td class="n">{share:.1f}%</td><td class="n">{_n(s.get("words_rejected", {}).get(reason, 0))}</td>'
                f'<td class="n">{_n(s.get("bytes_rejected", {}).get(reason, 0))}</td>'
                + (f'<td class="n">{_n(s.get("tokens_rejected", {}).get(reason, 0))}</td>' if tokens else "")
                + f'<td><a href="#ex-{_slug(s["id"], reason)}">examples</a></td></tr>'
            )
    page.add(
        '<table id="rejections-table"><tr><th>stage</th><th>reason</th><th>documents</th><th>of stage input</th>'
        "<th>words</th><th>bytes</th>"
        + ("<th>tokens</th>" if tokens else "")
        + "<th></th></tr>"
        + "".join(rows)
        + "</table>"
        if rows
        else "<p>No document was rejected.</p>"
    )
    page.end()


def _counters(page: Page, run: RunOutput, stages: list[dict[str, Any]], examples: int) -> None:
    """Every stage's counters from stats.json (lines, spans, paragraphs removed inside documents, candidate pairs...)
    and, for the stages that cut text out of the documents they kept, the first pieces they cut."""
    rows = [
        f'<tr data-stage="{html.escape(s["id"])}" data-counter="{html.escape(k)}" data-value="{v}">'
        f"<td>{html.escape(s['id'])}</td><td>{html.escape(str(s.get('uses', '')))}</td><td>{html.escape(k)}</td>"
        f'<td class="n">{_n(v)}</td></tr>'
        for s in stages
        for k, v in sorted(s.get("counters", {}).items())
        if isinstance(v, (int, float))
    ]
    if not rows:
        return
    page.section(
        "counters",
        "Counters",
        "What each stage counted as it ran, from <code>stats.json</code>: among them what stages that rewrite "
        "documents (line, substring and paragraph dedup, line corrections) removed from the text of the documents "
        "they kept. <code>curate explain OUT ID</code> shows what was cut from one document.",
    )
    page.add(
        '<table id="counters-table"><tr><th>stage</th><th>uses</th><th>counter</th><th>value</th></tr>'
        + "".join(rows)
        + "</table>"
    )
    cut_columns = sorted(c for c in run.columns(run.shards_of(kept=True)) if c.endswith("_cut"))
    for column in cut_columns:
        shown: list[str] = []
        for doc in run.documents(kept=True, columns=["id", column], n=200):
            for piece in doc.get(column) or []:
                shown.append(f"<li><code>{html.escape(str(doc['id']))}</code>: {html.escape(_clip(piece or ''))}</li>")
            if len(shown) >= examples * 2:
                break
        if shown:
            page.add(
                f'<h3 id="cut-{_slug(column)}">Cut by {html.escape(column.removesuffix("_cut"))} from kept '
                f'documents (first pieces)</h3><ul class="cuts">' + "".join(shown[: examples * 2]) + "</ul>"
            )
    page.end()


def _time(page: Page, stages: list[dict[str, Any]]) -> None:
    """Milliseconds per document, by stage."""
    page.section(
        "time",
        "Time per document",
        "Milliseconds each stage spent per document it was given (wall time in the worker, summed over workers).",
    )
    page.figure("fig-time", _plot(plots.stage_time, stages), "milliseconds per document, by stage")
    page.end()


def _sample_note(kept: pa.Table, rejected: pa.Table, totals: dict[str, int], max_rows: int) -> str:
    """What the distributions are drawn from: how much of the output the sample holds."""
    n_kept, n_rej = kept.num_rows, rejected.num_rows
    return (
        f"The distributions below use {n_kept:,} of {totals['kept']:,} kept documents and {n_rej:,} of "
        f"{totals['rejected']:,} rejected ones"
        + (
            " (all of them)."
            if n_kept == totals["kept"] and n_rej == totals["rejected"]
            else f" (at most {max_rows:,} rows read, from every shard in proportion to its rows)."
        )
        + " Rejected documents are shown as they entered the stage that rejected them."
    )


def _languages(page: Page, kept: pa.Table, rejected: pa.Table, sample_note: str) -> None:
    """The languages of the sampled documents, kept and rejected later (no section without labels)."""
    langs: dict[str, tuple[int, int]] = {}
    for table, side in ((kept, 0), (rejected, 1)):
        if "language" in table.column_names:
            for lang, count in Counter(v for v in table.column("language").to_pylist() if v).items():
                k, r = langs.get(lang, (0, 0))
                langs[lang] = (k + count, r) if side == 0 else (k, r + count)
    if langs:
        page.section(
            "languages",
            "Languages",
            "Languages of the documents that carry a language label (those that passed language ID: kept, or "
            "rejected by a later stage). " + sample_note,
        )
        page.figure("fig-languages", _plot(plots.categories, langs, "documents by language"), "documents by language")
        page.add(
            '<table id="languages-table"><tr><th>language</th><th>kept</th><th>rejected later</th></tr>'
            + "".join(
                f'<tr><td>{html.escape(k)}</td><td class="n">{v[0]:,}</td><td class="n">{v[1]:,}</td></tr>'
                for k, v in sorted(langs.items(), key=lambda kv: -sum(kv[1]))[:30]
            )
            + "</table>"
        )
        page.end()


def _distributions(page: Page, run: RunOutput, kept: pa.Table, rejected: pa.Table, sample_note: str) -> None:
    """Document lengths and every score column, kept against rejected, with the thresholds cut at."""
    page.section("distributions", "Document length and scores", sample_note)
    kept_len, rej_len = _word_lengths(kept), _word_lengths(rejected)
    if len(kept_len) + len(rej_len):
        page.figure(
            "fig-length",
            _plot(plots.histogram, kept_len, rej_len, "document length", "words (log scale)", None, True),
            "document length in words, kept and rejected",
        )
        page.add(_quantiles("words per kept document", kept_len))
    cuts = thresholds(run)
    for column in run.score_columns():
        k_v, r_v = _values(kept, column), _values(rejected, column)
        if not (np.isfinite(k_v).any() or np.isfinite(r_v).any()):
            continue
        lines = [(f"{sid}.{param}", value) for sid, param, value in cuts.get(column, [])]
        caption = f"{column}, kept and rejected" + (
            " (dashed: " + ", ".join(f"{label} = {v:g}" for label, v in lines) + ")" if lines else ""
        )
        scorers = [sid for sid, _, _ in cuts.get(column, []) if _scores_itself(run, sid)]
        if scorers:
            caption += (
                f"; the documents {', '.join(scorers)} rejected are not in it: rejected rows are stored as they "
                "entered the stage, before it scored them"
            )
        page.figure(
            f"fig-score-{_slug(column)}",
            _plot(plots.histogram, k_v, r_v, column, column, lines, _log_scale(column, k_v, r_v)),
            caption,
        )
        page.add(_quantiles(f"{column} of kept documents", k_v))
    page.end()


def _duplicates(page: Page, run: RunOutput, kept: pa.Table, stages: list[dict[str, Any]]) -> None:
    """The sizes of the duplicate clusters (no section without a dedup stage's traces)."""
    sizes = _cluster_sizes(run, kept)
    dedup_stages = [s["id"] for s in stages if s.get("uses") in ("minhash", "exact_dedup", "url_dedup")]
    if sizes is not None:
        multi = sizes[sizes > 1]
        largest = int(sizes.max()) if len(sizes) else 0
        page.section(
            "duplicates",
            "Duplicate clusters",
            f"Clusters of documents that {', '.join(dedup_stages) or 'deduplication'} found to be duplicates: "
            f"{len(multi):,} cluster(s) of two or more documents (the largest has {largest:,}), "
            f"{int((sizes == 1).sum()):,} documents without a duplicate. Each cluster kept one document.",
        )
        if len(multi):
            page.figure("fig-clusters", _plot(plots.cluster_sizes, multi), "duplicate cluster sizes")
        page.end()


def _examples(page: Page, run: RunOutput, stages: list[dict[str, Any]], examples: int) -> None:
    """Up to `examples` rejected documents per reason of each stage, with what explains the reason."""
    page.section(
        "examples",
        "Examples of each rejection reason",
        f"Up to {examples} documents per reason (the first in the output), with what explains the reason where the "
        "stage's output says it, and the start of the text. <code>curate inspect OUT --stage ID --reason R</code> "
        "shows more.",
    )
    score_names = run.score_columns()
    for s in stages:
        reasons = list(s.get("reasons", {}))
        if not reasons:
            continue
        found = examples_by_reason(run, s["id"], reasons, examples)
        for reason in reasons:
            page.add(
                f'<h3 id="ex-{_slug(s["id"], reason)}">{html.escape(s["id"])}: {html.escape(reason)} '
                f'<span class="muted">({s["reasons"][reason]:,} documents)</span></h3>'
            )
            docs = found.get(reason, [])
            if not docs:
                page.add(
                    '<p class="muted">No example: rejected documents were not written (output.write_rejected).</p>'
                )
            for doc in docs:
                page.add(_doc_html(doc, reason, score_names))
    page.end()


def _contamination(page: Page, run: RunOutput) -> None:
    """What `curate contamination OUT` found (OUT/contamination.json; no section when it was not run)."""
    rep = run.side_json("contamination.json")
    if rep is None:
        return
    n = rep.get("settings", {}).get("n_grams", "?")
    page.section(
        "contamination",
        "Benchmark contamination",
        f"{rep['contaminated_documents']:,} of {rep['documents']:,} documents (kept and rejected) hold a {n}-gram of "
        "an evaluation item (<code>curate contamination</code>); per set, the items found, most documents first.",
    )
    rows = []
    for s in rep["sets"]:
        found = "; ".join(
            f"{f['item']} ({f['documents']}: {', '.join(e['id'] for e in f['examples'])})" for f in s["found"][:10]
        )
        rows.append(
            f"<tr><td>{html.escape(s['name'])}</td><td class=n>{s['items_found']:,} / {s['items']:,}</td>"
            f"<td class=n>{s['documents']:,}</td><td>{html.escape(found)}</td></tr>"
        )
    page.add("<table><tr><th>set</th><th>items found</th><th>documents</th><th>items (documents: ids)</th></tr>")
    page.add("".join(rows) + "</table>")
    page.end()


def _document(page: Page, run: RunOutput, have_plots: bool) -> str:
    """The whole page: its head and summary, the note on missing plots, the contents and the sections."""
    stats = run.stats
    notes = []
    if not have_plots:
        notes.append(
            '<p class="note" id="no-matplotlib"><b>matplotlib is not installed, so this report has no plots</b> '
            "(the tables are complete). Install it with <code>pip install 'curate[report]'</code> and run "
            "<code>curate report OUT</code> again.</p>"
        )
    head = (
        f"<h1>curate report: {html.escape(str(stats.get('pipeline', '')))}</h1>"
        f'<p class="muted">{html.escape(run.path)} &middot; {stats.get("runner", "?")} runner &middot; '
        f"{stats.get('seconds', 0):,.1f}s &middot; report written {time.strftime('%Y-%m-%d %H:%M')}</p>"
        f'<p id="summary">{_n(stats.get("input_docs", 0))} documents in ({_n(stats.get("input_words", 0))} words, '
        f"{_n(stats.get('input_bytes', 0))} bytes of text or HTML), <b>{_n(stats.get('output_docs', 0))} kept</b> "
        f"({_n(stats.get('output_words', 0))} words, {_n(stats.get('output_bytes', 0))} bytes of text"
        + (f", {_n(stats['output_tokens'])} tokens of {_n(stats['input_tokens'])}" if "tokenizer" in stats else "")
        + f"), {_n(stats.get('rejected_docs', 0))} rejected.</p>"
    )
    nav = "<nav><ul>" + "".join(toc_entry(*entry) for entry in page.toc) + "</ul></nav>"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>curate report: {html.escape(str(stats.get('pipeline', '')))}</title><style>{STYLE}</style></head>"
        f"<body>{head}{''.join(notes)}{nav}{''.join(page.parts)}"
        f'<footer class="muted"><p>{page.figures} figure(s); written by <code>curate report</code>.</p></footer>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def _scores_itself(run: RunOutput, sid: str) -> bool:
    """Whether stage `sid` adds the score it cuts on (language ID), so that its rejected rows lack the score."""
    return run.stage_uses(sid) == "fasttext_langid"


def _log_scale(column: str, *arrays: np.ndarray) -> bool:
    """Perplexities and other positive, wide-ranging scores read better on a log axis."""
    values = np.concatenate([a[np.isfinite(a)] for a in arrays])
    return bool(len(values)) and values.min() > 0 and values.max() / max(values.min(), 1e-12) > 100


def _quantiles(label: str, values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
    if not len(v):
        return ""
    q = np.percentile(v, [10, 50, 90])
    return f'<p class="muted">{html.escape(label)}: 10th percentile {q[0]:.3g}, median {q[1]:.3g}, 90th {q[2]:.3g}.</p>'


def _cluster_sizes(run: RunOutput, kept: pa.Table) -> np.ndarray | None:
    """Cluster sizes: minhash's dedup_cluster_size on the kept documents, or, for other dedup stages, one plus
    the number of rejected documents naming each kept one as duplicate_of."""
    if "dedup_cluster_size" in kept.column_names:
        v = _values(kept, "dedup_cluster_size")
        return v[np.isfinite(v)].astype(int)
    counts: Counter[str] = Counter()
    left = MAX_DUPLICATE_IDS
    for shard in run.shards_of(kept=False):
        if left <= 0:
            break
        t = run.read(shard, ["duplicate_of"], limit=left)
        if "duplicate_of" in t.column_names:
            counts.update(v for v in t.column("duplicate_of").to_pylist() if v)
            left -= t.num_rows
    if not counts:
        return None
    singletons = max(0, run.stats.get("output_docs", 0) - len(counts))
    return np.array([n + 1 for n in counts.values()] + [1] * singletons, dtype=int)


def _doc_html(doc: dict[str, Any], reason: str, score_names: list[str]) -> str:
    why = explain_excerpt(reason, doc)
    scores = [(k, doc.get(k)) for k in ["language", *score_names] if doc.get(k) is not None]
    score_text = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in scores)
    url = doc.get("url") or ""
    return (
        f'<div class="doc"><code>{html.escape(str(doc.get("id")))}</code> '
        + (f'<span class="muted">{html.escape(url)}</span>' if url else "")
        + (f'<div class="why">{html.escape(why)}</div>' if why else "")
        + (f'<div class="muted">{html.escape(score_text)}</div>' if score_text else "")
        + f"<div>{html.escape(_clip(doc.get('text') or '(no text: rejected before extraction)'))}</div></div>"
    )


def _slug(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_-]+", "_", p) for p in parts)
