"""Scoring throughput, documents/s on one core: the quality_score stage beside fastText's predict called directly on
the same texts, and the perplexity stage beside the bare model forward on the same token windows.

    python bench/quality_throughput.py [--repeat 3] [--docs N] [--model M.bin] [--lm RUN]

Texts: every HTML page of ../shared/corpus through trafilatura (bench/corpus_docs.py, 1,391 real documents),
repeated to --docs. Everything runs in this one process on one thread (fastText's predict is single-threaded;
torch is set to one thread). Throughput is documents per CPU-second of this process (all its threads: HF
tokenizers may use several), i.e. per core, and robust to what else loads a shared machine; wall-clock figures
beside. The scorers take turns within each of --repeat rounds; best and median of the rounds:

- fastText predict, batched: `model.predict(lines, k=1)` on the already prepared lines of a whole batch, nothing
  else: the floor.
- DCLM's scorer: DCLM's `classify_fasttext_hq_prob`, one document at a time (join lines, predict, 1 - p).
- quality_score stage: `QualityScore.apply` on pyarrow batches of 1,000 (text column out of Arrow, preparation,
  one predict per batch, the score column back into Arrow) — what a pipeline pays per batch.
- quality_score in `curate run --runner local`: Parquet in, the stage, Parquet out, accounting; wall time.
- perplexity stage: `Perplexity.apply` (tokenizer, windows, padded batches, forward, loss) on the same documents,
  the first 512 tokens of each, with a `curate train tiny-cpu` model; and the model forward alone on the same
  windows (tokenization and padding done beforehand).

The fastText model is the DCLM-preset classifier of bench/quality_classifier.py (trained here if missing); the
language model is trained here for 20 steps if --lm is not given (throughput does not depend on its weights).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_docs import CACHE, extracted_docs  # noqa: E402

from curate.cli import main as curate  # noqa: E402
from curate_filters.quality.classifier import prepare_text  # noqa: E402
from curate_filters.quality.score import QualityScore  # noqa: E402


def dclm_score(model, content: str) -> float:
    """DCLM's scorer, verbatim (baselines/mappers/enrichers/quality_prediction_enrichers_calc_fasttext.py)."""
    text = " ".join(content.strip().splitlines())
    pred = model.predict(text)
    (pred_label, pred_prob) = pred
    pred_label = pred_label[0]
    hq_prob = pred_prob[0]
    if pred_label == "__label__cc":
        hq_prob = 1 - hq_prob
    return hq_prob


def timed(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, tuple[list[float], list[float]]]:
    """CPU seconds and wall seconds of each function over `repeat` rounds, the functions taking turns within a
    round (so a change of the machine's load hits them alike). CPU time is this process's, all its threads: on a
    shared machine it is what a core spends, whatever else runs."""
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            out[name][0].append(time.process_time() - c0)
            out[name][1].append(time.perf_counter() - t0)
    return out


def classifier_model(path: str | None) -> str:
    if path:
        return path
    default = CACHE / "quality_classifier" / "hash_split.bin"
    if not default.exists():
        import quality_classifier

        root = CACHE / "quality_classifier"
        root.mkdir(parents=True, exist_ok=True)
        files = quality_classifier.build(root, 300)
        pos = ["books_train", "books_held", "shakespeare"]
        neg = ["web_sample_crawl", "web_corpus_train", "web_corpus_held"]
        quality_classifier.train(files, root, "hash_split", pos, neg, ["--preset", "dclm"])
    return str(default)


def language_model(path: str | None, texts: list[str]) -> str:
    if path:
        return path
    run = CACHE / "quality_throughput" / "lm"
    if not (run / "ckpt.pt").exists():
        data = CACHE / "quality_throughput" / "lm-data.parquet"
        data.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}), data)
        args = ["train", "tiny-cpu", "--data", str(data), "--out", str(run), "--set", "train.max_steps=20"]
        if curate(args + ["--set", "train.eval_every=20", "--set", "train.threads=1"]):
            sys.exit("training the language model failed")
    return str(run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--docs", type=int, default=4000, help="documents per run (the corpus texts, repeated)")
    ap.add_argument("--model", help="fastText classifier (default: bench/quality_classifier.py's DCLM-preset model)")
    ap.add_argument("--lm", help="a `curate train` run directory for perplexity (default: trained here, 20 steps)")
    ap.add_argument("--ppl-docs", type=int, default=600, help="documents for the perplexity rows")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    base = [t for t in extracted_docs().column("text").to_pylist() if t]
    texts = (base * (args.docs // len(base) + 1))[: args.docs]
    words = sum(len(t.split()) for t in texts)
    model_path = classifier_model(args.model)
    batches = [pa.table({"id": [str(i) for i in range(j, j + 1000)], "text": texts[j : j + 1000]}) for j in
               range(0, len(texts), 1000)]  # fmt: skip
    stage = QualityScore(model=model_path, column="dclm_score")
    stage.setup()
    # the direct calls use the stage's own loaded model: the same 800 MB in the same pages, so that where the
    # matrix landed (huge pages or not) cannot favour either side
    model = stage._scorer.model

    # the stage scores exactly as DCLM's scorer does: check on the texts before timing anything
    ours = [s for b in batches for s in stage.apply(b).table.column("dclm_score").to_pylist()]
    theirs = [float(pa.scalar(dclm_score(model, t), pa.float32()).as_py()) for t in texts]
    same = sum(a == b for a, b in zip(ours, theirs))

    prepared = [prepare_text(t) for t in texts]

    def direct() -> None:
        for j in range(0, len(prepared), 1000):
            model.predict(prepared[j : j + 1000], k=1)

    tmp = tempfile.mkdtemp(prefix="curate-qt-")
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts}), f"{tmp}/in.parquet")
    Path(f"{tmp}/p.yaml").write_text(
        "name: qt\ninput: {format: parquet, path: in.parquet}\noutput: {path: out}\n"
        f"stages:\n  - {{id: q, uses: quality_score, with: {{model: '{model_path}', column: dclm_score}}}}\n"
    )

    def run() -> None:
        import os

        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the run's own summary table
                assert curate(["-q", "run", "p.yaml", "--runner", "local", "--overwrite"]) == 0
        finally:
            os.chdir(cwd)

    run()  # warm: model load and first imports are not what is measured
    scoring = {
        "fastText predict, batched (prepared lines)": direct,
        "DCLM's scorer, per document": lambda: [dclm_score(model, t) for t in texts],
        "quality_score stage (apply, batches of 1,000)": lambda: [stage.apply(b) for b in batches],
    }
    results = {name: (len(texts), cpu, wall) for name, (cpu, wall) in timed(scoring, args.repeat).items()}
    # a whole run loads (and frees) its own copy of the model: timed apart, so as not to disturb the rows above
    whole = timed({"quality_score in curate run --runner local": run}, args.repeat)
    results.update({name: (len(texts), cpu, wall) for name, (cpu, wall) in whole.items()})
    shutil.rmtree(tmp, ignore_errors=True)

    ppl_texts = texts[: args.ppl_docs]
    from curate_filters.quality.perplexity import Perplexity

    lm = Perplexity(model=language_model(args.lm, base), device="cpu", threads=1, max_tokens=512)
    lm.setup()
    ppl_batch = pa.table({"id": [str(i) for i in range(len(ppl_texts))], "text": ppl_texts})
    ids = [[lm._tok.eos_id, *x[:512]] for x in lm._tok.encode_batch(ppl_texts)]
    windows = sorted((s[i : i + lm._context + 1] for s in ids for i in range(0, len(s) - 1, lm._context)), key=len)
    tokens = sum(len(w) - 1 for w in windows)
    padded = []
    for j in range(0, len(windows), lm.batch_size):
        part = windows[j : j + lm.batch_size]
        width = max(len(w) for w in part) - 1
        padded.append(torch.tensor([w[:-1] + [0] * (width - len(w) + 1) for w in part]))

    def forward() -> None:
        with torch.inference_mode():
            for x in padded:
                lm._model(x)

    ppl = {
        "perplexity stage (tiny-cpu, first 512 tokens)": lambda: lm.apply(ppl_batch),
        "  the model forward alone, same windows": forward,
    }
    results.update({name: (len(ppl_texts), cpu, wall) for name, (cpu, wall) in timed(ppl, args.repeat).items()})

    print(f"{len(texts):,} documents ({words:,} words) from {len(base):,} corpus pages; classifier {model_path}")
    print(f"stage scores identical to DCLM's scorer: {same:,} / {len(texts):,}")
    print(f"perplexity rows: {len(ppl_texts):,} documents, {tokens:,} tokens scored\n")
    print("| scorer | docs per CPU-second (best / median) | docs/s wall (median) | CPU time vs batched predict |")
    print("|---|---:|---:|---:|")
    floor = statistics.median(results["fastText predict, batched (prepared lines)"][1])
    forward_cpu = statistics.median(results["  the model forward alone, same windows"][1])
    for name, (n, cpu, wall) in results.items():
        lm_row = "perplexity" in name or "forward" in name
        ratio = statistics.median(cpu) / (forward_cpu if lm_row else floor)
        rel = f"{ratio:.2f}x" + (" of the forward" if lm_row else "")
        print(
            f"| {name} | {n / min(cpu):,.0f} / {n / statistics.median(cpu):,.0f} | {n / statistics.median(wall):,.0f} "
            f"| {rel} |"
        )


if __name__ == "__main__":
    main()
