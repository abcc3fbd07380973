"""fastText quality classifiers: the text preparation shared by training and scoring, batched P(label) scoring,
and `curate classifier train | eval` (DCLM, Li et al. 2024, section 4.4: fastText on OpenHermes-2.5 + ELI5 as
`__label__hq` against RefinedWeb as `__label__cc`).

Training and scoring prepare text with one function, `prepare_text`, so that a model scores documents exactly as it
saw them while training. fastText is imported only when a model is trained or loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import ConfigError, CurateError, InputError, require

# DCLM's fastText settings (dclm baselines README, "Model-based quality filtering"): word bigrams, 100 dimensions,
# 5 epochs, learning rate 0.1, minimum count 1. fastText's own supervised defaults differ only in wordNgrams (1).
PRESETS: dict[str, dict[str, Any]] = {
    "dclm": {"word_ngrams": 2, "dim": 100, "epoch": 5, "lr": 0.1, "min_count": 1},
}

LABEL_PREFIX = "__label__"


def prepare_text(text: str | None) -> str:
    """A document as DCLM's classifier reads it: its lines joined with single spaces, nothing lower-cased (DCLM,
    baselines/mappers/enrichers/quality_prediction_enrichers_calc_fasttext.py, `classify_fasttext_hq_prob`).

    datatrove's FastTextClassifierFilter deletes newlines without a space by default, which glues the last word of a
    line to the first of the next and changes the scores; this keeps DCLM's behaviour, at training and at scoring."""
    return " ".join((text or "").strip().splitlines())


# -- models --------------------------------------------------------------------------------------------------------


def _fasttext() -> Any:
    return require(
        "fasttext", "fasttext-numpy2", "dev", what="fastText classifiers", hint="pip install fasttext-numpy2"
    )


def require_fasttext() -> None:
    """Raise MissingDependency (with the install hint) unless fastText imports; loads no model."""
    _fasttext()


def load_model(path: str | os.PathLike[str]) -> Any:
    """A fastText model from a local file (no download); InputError when it is missing or not a model."""
    _fasttext()
    from fasttext.FastText import _FastText

    if not Path(path).is_file():
        raise InputError(f"fastText model not found: {path}", hint="give the path of a fastText .bin/.ftz file")
    try:
        return _FastText(model_path=str(path))
    except Exception as e:  # fastText raises ValueError/RuntimeError on a file that is not a model
        raise InputError(f"could not load fastText model {path}: {e}") from e


def full_label(label: str) -> str:
    """'hq' -> '__label__hq'; a label given with its prefix stays as it is."""
    return label if label.startswith(LABEL_PREFIX) else LABEL_PREFIX + label


class Scorer:
    """P(label) of texts under a fastText classifier, one batched predict call per list of texts.

    With two labels (DCLM's format) the score is DCLM's own arithmetic: the best label's probability, or one minus
    it when the best label is the other one. With more labels it is the label's probability among all of them."""

    def __init__(self, model: Any, label: str = "__label__hq") -> None:
        self.model = model
        self.label = full_label(label)
        labels = list(model.get_labels())
        if self.label not in labels:
            raise InputError(
                f"the fastText model has no label {self.label!r} (its labels: {', '.join(labels[:10])})",
                hint="set `label:` to the model's high-quality label",
            )
        self.binary = len(labels) == 2

    def __call__(self, texts: list[str | None]) -> np.ndarray:
        """float32 scores, one per text (texts are prepared with prepare_text here)."""
        lines = [prepare_text(t) for t in texts]
        if not lines:
            return np.zeros(0, np.float32)
        if self.binary:
            labels, probs = self.model.predict(lines, k=1)
            p = np.array([float(pr[0]) for pr in probs], np.float32)
            is_label = np.array([lab[0] == self.label for lab in labels], bool)
            return np.where(is_label, p, np.float32(1) - p).astype(np.float32)
        labels, probs = self.model.predict(lines, k=-1)
        out = np.zeros(len(lines), np.float32)
        for i, (labs, prs) in enumerate(zip(labels, probs)):
            for lab, pr in zip(labs, prs):
                if lab == self.label:
                    out[i] = pr
                    break
        return out


# -- metrics -------------------------------------------------------------------------------------------------------


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random negative (ties count
    half), from the rank sum (Mann-Whitney U). NaN when one class is empty."""
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # average ranks over ties (1-based)
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def binary_metrics(scores: np.ndarray, positive: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision, recall and F1 of the positive class at `threshold`, accuracy, and ROC-AUC."""
    predicted = np.asarray(scores) >= threshold
    positive = np.asarray(positive, bool)
    tp = int((predicted & positive).sum())
    fp = int((predicted & ~positive).sum())
    fn = int((~predicted & positive).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float((predicted == positive).mean()) if len(positive) else float("nan")
    return {
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": accuracy,
        "roc_auc": roc_auc(scores, positive),
    }


def deciles(
    scores: np.ndarray, positive: np.ndarray, texts: list[str], examples: int = 2, chars: int = 160
) -> list[dict[str, Any]]:
    """Held-out documents by score decile (lowest first): score range, share of positives, a few example texts."""
    n = len(scores)
    if n == 0:
        return []
    order = np.argsort(scores, kind="mergesort")
    out = []
    for d in range(10):
        idx = order[d * n // 10 : (d + 1) * n // 10]
        if len(idx) == 0:
            continue
        picks = idx[np.linspace(0, len(idx) - 1, min(examples, len(idx))).round().astype(int)] if examples else []
        out.append(
            {
                "decile": d + 1,
                "docs": len(idx),
                "min_score": float(scores[idx].min()),
                "max_score": float(scores[idx].max()),
                "positive_share": float(np.asarray(positive)[idx].mean()),
                "examples": [
                    {"score": float(scores[i]), "positive": bool(positive[i]), "text": _snippet(texts[i], chars)}
                    for i in picks
                ],
            }
        )
    return out


def _snippet(text: str, chars: int) -> str:
    flat = prepare_text(text)
    return flat if len(flat) <= chars else flat[: chars - 3] + "..."


# -- documents -----------------------------------------------------------------------------------------------------


@dataclass
class DocSet:
    """Documents of one class: ids, texts, and the label they train as."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: list[str], texts: list[str]) -> None:
        for i, t in zip(ids, texts):
            if t and t.strip():  # an empty document teaches nothing and fastText skips a label-only line
                self.ids.append(i)
                self.texts.append(t)

    def select(self, keep: np.ndarray) -> DocSet:
        return DocSet([i for i, k in zip(self.ids, keep) if k], [t for t, k in zip(self.texts, keep) if k])


def split_words(text: str, words: int) -> list[str]:
    """A text cut at blank lines into pieces of at least `words` words (paragraphs kept whole; the last piece
    joins the one before when it is shorter)."""
    pieces: list[str] = []
    cur: list[str] = []
    n = 0
    for para in re.split(r"\r?\n[ \t]*\r?\n", text):
        if not para.strip():
            continue
        cur.append(para.strip("\r\n"))
        n += len(para.split())
        if n >= words:
            pieces.append("\n\n".join(cur))
            cur, n = [], 0
    if cur:
        if pieces:
            pieces[-1] += "\n\n" + "\n\n".join(cur)
        else:
            pieces.append("\n\n".join(cur))
    return pieces


def read_docs(paths: list[str], text_column: str = "text", txt_words: int | None = None) -> DocSet:
    """Documents of text/JSONL/Parquet files, globs, directories or curate outputs (their kept documents). A
    plain-text file is one document, or with `txt_words` many: cut at blank lines into >= txt_words words each."""
    from curate.train.data import input_files, iter_docs

    docs = DocSet()
    for f in input_files(paths):
        if txt_words and not f.endswith((".parquet", ".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            (text,) = next(iter_docs(f, text_column))[1]
            pieces = split_words(text, txt_words)
            docs.add([f"{os.path.basename(f)}:{k}" for k in range(len(pieces))], pieces)
            continue
        for ids, texts in iter_docs(f, text_column):
            # ids are namespaced by file: two inputs may number their rows the same way
            docs.add([f"{os.path.basename(f)}:{i}" for i in ids], texts)
    return docs


def rejected_files(out: str, stages: list[str] | None = None) -> list[str]:
    """The rejected-document shards of a finished curate output (all stages, or the named ones), from its
    manifest: what a pipeline removed makes ready negatives."""
    manifest = os.path.join(out, "manifest.json")
    if not os.path.exists(os.path.join(out, "_SUCCESS")) or not os.path.exists(manifest):
        raise InputError(f"'{out}' is not a finished curate output (no _SUCCESS or manifest.json)")
    with open(manifest, encoding="utf-8") as fh:
        shards = json.load(fh).get("shards", [])
    rejected = [s for s in shards if s.get("kind") == "rejected"]
    known = sorted({str(s.get("stage")) for s in rejected})
    if stages:
        missing = [s for s in stages if s not in known]
        if missing:
            raise InputError(
                f"curate output '{out}' has no rejected documents from stage(s) {', '.join(missing)}",
                hint=f"stages with rejected documents: {', '.join(known) or 'none'}",
            )
        rejected = [s for s in rejected if s.get("stage") in stages]
    if not rejected:
        raise InputError(f"curate output '{out}' has no rejected documents")
    return sorted(os.path.join(out, s["path"]) for s in rejected)


def _hash01(key: str, seed: int) -> float:
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")
    return (h >> 11) / float(1 << 53)


def split(docs: DocSet, val_fraction: float, seed: int) -> tuple[DocSet, DocSet]:
    """(train, held-out) by a hash of each id: the same document lands on the same side on every run."""
    val = np.array([_hash01(i, seed) < val_fraction for i in docs.ids], bool)
    return docs.select(~val), docs.select(val)


def cap(docs: DocSet, n: int, seed: int) -> DocSet:
    """At most n documents: the n with the smallest hash of (seed, id), so the choice does not depend on order."""
    if len(docs) <= n:
        return docs
    keys = np.array([_hash01(i, seed + 1) for i in docs.ids])
    keep = np.zeros(len(docs), bool)
    keep[np.argsort(keys, kind="mergesort")[:n]] = True
    return docs.select(keep)


# -- training ------------------------------------------------------------------------------------------------------


@dataclass
class FastTextOptions:
    """fastText supervised hyper-parameters (fastText's names in brackets); defaults are fastText's own."""

    word_ngrams: int = 1  # wordNgrams
    dim: int = 100
    epoch: int = 5
    lr: float = 0.1
    min_count: int = 1  # minCount
    bucket: int = 2_000_000  # hash buckets for word n-grams: the input matrix has (words + bucket) x dim floats
    loss: str = "softmax"
    threads: int = 1  # thread; one thread trains reproducibly under a fixed seed
    seed: int = 0

    def fasttext_args(self) -> dict[str, Any]:
        return {
            "wordNgrams": self.word_ngrams,
            "dim": self.dim,
            "epoch": self.epoch,
            "lr": self.lr,
            "minCount": self.min_count,
            "bucket": self.bucket,
            "loss": self.loss,
            "thread": self.threads,
            "seed": self.seed,
            "verbose": 0,
        }


def training_lines(pos: DocSet, neg: DocSet, pos_label: str, neg_label: str, seed: int) -> list[str]:
    """fastText's training format (`__label__x text`), both classes shuffled together by a hash of the id: fastText
    learns in file order, so one class after the other would leave the model leaning to the last."""
    rows = [(_hash01(i, seed + 2), pos_label, t) for i, t in zip(pos.ids, pos.texts)]
    rows += [(_hash01(i, seed + 3), neg_label, t) for i, t in zip(neg.ids, neg.texts)]
    rows.sort(key=lambda r: r[0])
    return [f"{label} {prepare_text(t)}" for _, label, t in rows]


# glibc serves allocations of 4 KiB and more from fresh (zeroed) pages in the training process; see train_model.
_TUNABLES = "glibc.malloc.mmap_threshold=4096"


def train_model(lines: list[str], options: FastTextOptions, out: str) -> None:
    """Train a fastText supervised model on prepared lines and save it to `out`, in a child process.

    Why a child: fasttext-numpy2 0.10.4 allocates its matrices uninitialised (posix_memalign), and fastText's
    uniform() initialises only the first tenth of the input matrix when training with fewer than ten threads, where
    upstream fastText's std::vector leaves the rest zero. The rest was then whatever the heap held: trainings with
    the same data, options and seed aborted with "Encountered NaN" in one attempt and not the next (small data and
    small buckets most often; DCLM's 2M buckets are mmapped, hence zero, hence unaffected). A child started with
    glibc's mmap threshold at 4 KiB gets its matrices on fresh zeroed pages, and trains reproducibly."""
    with tempfile.TemporaryDirectory(prefix="curate-ft-") as tmp:
        path = os.path.join(tmp, "train.txt")
        with open(path, "w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line + "\n")
        env = dict(os.environ)
        env["GLIBC_TUNABLES"] = ":".join(t for t in (env.get("GLIBC_TUNABLES"), _TUNABLES) if t)
        code = f"import sys; from {__name__} import _train_child; sys.exit(_train_child(sys.argv[1:]))"
        args = [sys.executable, "-c", code, path, out, json.dumps(options.fasttext_args())]
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["no output"])[-1]
            hint = "a lower --lr, or more training documents" if "NaN" in why else None
            raise CurateError(f"fastText training failed: {why}", hint=hint)


def _train_child(argv: list[str]) -> int:
    """The training process of train_model: train on argv[0], save to argv[1] (atomically), options in argv[2]."""
    path, out, options = argv[0], argv[1], json.loads(argv[2])
    try:
        model = _fasttext().train_supervised(input=path, **options)
    except (RuntimeError, ValueError) as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    tmp = f"{out}.tmp-{os.getpid()}"
    model.save_model(tmp)
    os.replace(tmp, out)
    return 0


def evaluate(
    model: Any, pos: DocSet, neg: DocSet, label: str, examples: int = 2, threshold: float = 0.5
) -> dict[str, Any]:
    """Held-out metrics of `model` on positives and negatives, scored exactly as the quality_score stage scores."""
    scorer = Scorer(model, label)
    texts = pos.texts + neg.texts
    truth = np.array([True] * len(pos) + [False] * len(neg), bool)
    scores = scorer(texts)
    return {
        "docs": {"positive": len(pos), "negative": len(neg)},
        "metrics": binary_metrics(scores, truth, threshold),
        "deciles": deciles(scores, truth, texts, examples),
    }


@dataclass
class TrainReport:
    """What `curate classifier train` did: documents per class and split, options, held-out metrics."""

    model: str
    options: dict[str, Any]
    labels: dict[str, str]
    docs: dict[str, dict[str, int]]
    heldout: dict[str, Any]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def train_classifier(
    positives: DocSet,
    negatives: DocSet,
    out: str,
    options: FastTextOptions,
    *,
    pos_label: str = "hq",
    neg_label: str = "cc",
    balance: str = "downsample",
    max_per_class: int | None = None,
    val_fraction: float = 0.1,
    heldout: tuple[DocSet, DocSet] | None = None,
    examples: int = 2,
) -> TrainReport:
    """Balance, split, train, save `out`, and evaluate on the held-out documents (an explicit held-out pair, or a
    hash split of `val_fraction`)."""
    import time

    t0 = time.perf_counter()
    pos_label, neg_label = full_label(pos_label), full_label(neg_label)
    if pos_label == neg_label:
        raise ConfigError(f"the positive and negative labels are the same ({pos_label})")
    read = {"positive": len(positives), "negative": len(negatives)}
    if heldout is None:
        pos_train, pos_val = split(positives, val_fraction, options.seed)
        neg_train, neg_val = split(negatives, val_fraction, options.seed)
    else:
        (pos_train, neg_train), (pos_val, neg_val) = (positives, negatives), heldout
    if not len(pos_train) or not len(neg_train):
        raise InputError(
            f"nothing to train on: {len(pos_train)} positive and {len(neg_train)} negative training documents",
            hint="give non-empty --positive and --negative inputs",
        )
    if max_per_class is not None:
        pos_train, neg_train = cap(pos_train, max_per_class, options.seed), cap(neg_train, max_per_class, options.seed)
    if balance == "downsample":
        n = min(len(pos_train), len(neg_train))
        pos_train, neg_train = cap(pos_train, n, options.seed), cap(neg_train, n, options.seed)
    elif balance != "none":
        raise ConfigError(f"unknown balance '{balance}' (downsample or none)")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    train_model(training_lines(pos_train, neg_train, pos_label, neg_label, options.seed), options, out)
    model = load_model(out)
    held = evaluate(model, pos_val, neg_val, pos_label, examples) if len(pos_val) + len(neg_val) else {}
    return TrainReport(
        model=out,
        options=asdict(options),
        labels={"positive": pos_label, "negative": neg_label},
        docs={
            "read": read,
            "train": {"positive": len(pos_train), "negative": len(neg_train)},
            "heldout": {"positive": len(pos_val), "negative": len(neg_val)},
        },
        heldout=held,
        seconds=round(time.perf_counter() - t0, 3),
    )
