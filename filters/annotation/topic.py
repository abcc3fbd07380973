"""Topic of every document, offline on CPU: spherical k-means over TF-IDF word vectors of a deterministic sample, each
document then assigned its nearest centroid (the LLaMA 3 recipe's knowledge classifier stands in for this, Dubey et
al. 2024, section 3.1.2 "Data mix": "we develop a classifier to categorize the types of information contained in our
web data" and downsample over-represented categories; we cluster instead of classifying so that no labelled data or
model is needed). The method is the classic document clustering of Steinbach, Karypis and Kumar (2000), "A comparison
of document clustering techniques" (TF-IDF, cosine, k-means) with Dhillon and Modha's spherical k-means (2001) and
k-means++ seeding (Arthur and Vassilvitskii 2007).

- words: maximal runs of letters and digits, lower-cased, digits folded to 0 (scores and dates become `0`-words),
  2-30 characters;
- the sample: the `sample_docs` documents with the smallest hash of (seed, id) (every document when there are
  fewer), so the same on any runner, batching and input order;
- the vocabulary: the `max_vocab` words of the sample with the highest document frequency, at least `min_df`
  documents and at most a `max_df` share of them (ties by the word); idf = ln((1 + n) / (1 + df)) + 1;
- a document's vector: (1 + ln tf) * idf for its vocabulary words, L2-normalised;
- k-means: cosine similarity, k-means++ seeding from numpy's PCG64 seeded with (`seed`, restart), at most
  `iterations` rounds (stops when no assignment changes), the best of `restarts` runs (highest total similarity); an
  empty cluster is re-seeded with the sample document farthest from its centroid;
- topics are numbered by size in the sample (0 the largest, ties by label) and labelled by their `label_words` most
  distinguishing words: (the topic's mean weight of the word minus the sample's) times its idf, highest first.

Each document gets `topic` (int, -1 for a document without a vocabulary word) and `topic_words` (the label). The
fitted model (vocabulary, idf, centroids, labels) can be written to Parquet (`write_model:`) and applied to another
corpus (`model:`), which then needs no fitting pass.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import ConfigError, InputError, StageError
from curate.stage import Docs, GlobalStage
from curate_filters.sampling.common import uniform

NO_TOPIC = -1
MODEL_KEY = b"curate.topic"
WORDS_VERSION = "lower-alnum-runs/digits0/2-30/v1"

_WORD = re.compile(r"[^\W_]+")
_DIGIT = re.compile(r"\d")

SAMPLE = pa.schema([("id", pa.string()), ("tie", pa.float64()), ("words", pa.list_(pa.string())),
                    ("counts", pa.list_(pa.int32()))])  # fmt: skip


def words(text: str) -> list[str]:
    """The words of a text for topic features: lower-cased runs of letters and digits, digits folded to 0,
    2 to 30 characters long."""
    return [w for w in _WORD.findall(_DIGIT.sub("0", text.lower())) if 2 <= len(w) <= 30]


class Model:
    """A fitted topic model: vocabulary, idf and unit-length centroids (k x V), and a label per topic."""

    def __init__(self, vocab: list[str], idf: np.ndarray, centroids: np.ndarray, labels: list[str]) -> None:
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}
        self.idf = np.asarray(idf, np.float64)
        self.centroids = np.asarray(centroids, np.float64)
        self.labels = labels

    @property
    def k(self) -> int:
        return len(self.labels)

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(vocabulary indices, L2-normalised weights) of a text; empty when it has no vocabulary word."""
        c = Counter(w for w in words(text) if w in self.index)
        if not c:
            return np.zeros(0, np.int64), np.zeros(0)
        idx = np.fromiter((self.index[w] for w in c), np.int64, len(c))
        tf = np.fromiter(c.values(), np.float64, len(c))
        weight = (1.0 + np.log(tf)) * self.idf[idx]
        return idx, weight / np.linalg.norm(weight)

    def assign(self, text: str) -> int:
        idx, weight = self.vector(text)
        if not len(idx):
            return NO_TOPIC
        return int(np.argmax(self.centroids[:, idx] @ weight))

    # -- the model file --------------------------------------------------------------------------------------------

    def to_table(self) -> pa.Table:
        """One row per vocabulary word: word, idf, its weight in every centroid; the labels in the schema metadata."""
        meta = {MODEL_KEY: json.dumps({"labels": self.labels, "words": WORDS_VERSION}).encode()}
        weights = pa.FixedSizeListArray.from_arrays(pa.array(self.centroids.T.reshape(-1), pa.float64()), self.k)
        table = pa.table({"word": pa.array(self.vocab, pa.string()), "idf": self.idf, "weights": weights})
        return table.replace_schema_metadata(meta)

    @classmethod
    def from_table(cls, table: pa.Table, where: str = "the model") -> Model:
        meta = (table.schema.metadata or {}).get(MODEL_KEY)
        if meta is None or not {"word", "idf", "weights"} <= set(table.column_names):
            raise InputError(f"topic: {where} is not a topic model (write one with write_model:)")
        info = json.loads(meta)
        if info.get("words") != WORDS_VERSION:
            raise ConfigError(f"topic: {where} was made with words {info.get('words')!r}, not {WORDS_VERSION!r}",
                              hint="fit and write the model again with this version")  # fmt: skip
        labels = list(info["labels"])
        table = table.sort_by("word")  # parts in any order
        k = len(labels)
        flat = table.column("weights").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        centroids = flat.reshape(table.num_rows, k).T if table.num_rows else np.zeros((k, 0))
        return cls(table.column("word").to_pylist(), table.column("idf").to_numpy(), centroids, labels)


def read_model(path: str) -> Model:
    """A model written by `write_model:` (a folder of Parquet parts, a file, a glob or a URL)."""
    from curate.io.base import expand_paths

    parts = [pq.read_table(p) for p in expand_paths(path, (".parquet",))]
    if not parts:
        raise InputError(f"topic: no model under {path}")
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    return Model.from_table(table.replace_schema_metadata(parts[0].schema.metadata), path)


# -- fitting (on the driver, over the sample) ------------------------------------------------------------------------


def vocabulary(docs: list[dict[str, int]], max_vocab: int, min_df: int, max_df: float) -> tuple[list[str], np.ndarray]:
    """(words, idf) of the sample: the max_vocab words of highest document frequency (ties by the word) with
    min_df <= df <= max_df * n."""
    n = len(docs)
    df: Counter[str] = Counter()
    for d in docs:
        df.update(d.keys())
    allowed = [(w, c) for w, c in df.items() if c >= min_df and c <= max_df * n]
    allowed.sort(key=lambda wc: (-wc[1], wc[0]))
    chosen = sorted(w for w, _ in allowed[:max_vocab])
    idf = np.array([math.log((1 + n) / (1 + df[w])) + 1.0 for w in chosen], np.float64)
    return chosen, idf


class Sparse:
    """Row-normalised sparse document vectors (CSR: indptr, indices, data) of the fitted documents."""

    def __init__(self, docs: list[dict[str, int]], index: dict[str, int], idf: np.ndarray) -> None:
        indptr, indices, data = [0], [], []
        for d in docs:
            items = sorted((index[w], c) for w, c in d.items() if w in index)
            if items:
                idx = np.array([i for i, _ in items], np.int64)
                w = (1.0 + np.log(np.array([c for _, c in items], np.float64))) * idf[idx]
                indices.append(idx)
                data.append(w / np.linalg.norm(w))
            indptr.append(indptr[-1] + len(items))
        self.indptr = np.array(indptr, np.int64)
        self.indices = np.concatenate(indices) if indices else np.zeros(0, np.int64)
        self.data = np.concatenate(data) if data else np.zeros(0)
        self.rows = np.repeat(np.arange(len(docs)), np.diff(self.indptr))
        self.n = len(docs)

    def dot(self, centroids: np.ndarray) -> np.ndarray:
        """Similarity of every row with every centroid (n x k), one centroid at a time (memory: the entries)."""
        out = np.empty((self.n, centroids.shape[0]))
        for j in range(centroids.shape[0]):
            out[:, j] = np.bincount(self.rows, weights=self.data * centroids[j, self.indices], minlength=self.n)
        return out

    def row(self, i: int, v: int) -> np.ndarray:
        out = np.zeros(v)
        s, e = self.indptr[i], self.indptr[i + 1]
        out[self.indices[s:e]] = self.data[s:e]
        return out

    def means(self, assign: np.ndarray, k: int, v: int) -> np.ndarray:
        """The sum of the rows of every cluster (k x v)."""
        flat = assign[self.rows] * v + self.indices
        return np.bincount(flat, weights=self.data, minlength=k * v).reshape(k, v)


def _unit(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def kmeans(x: Sparse, v: int, k: int, seed: int, iterations: int, restarts: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means with k-means++ seeding, the best of `restarts` runs (highest total cosine similarity of
    the rows to their centroids; the first on a tie): (unit centroids k x v, assignment of every row)."""
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for r in range(restarts):
        centroids, assign = _kmeans_once(x, v, k, np.random.default_rng([seed, r]), iterations)
        score = float(x.dot(centroids)[np.arange(x.n), assign].sum())
        if best is None or score > best[0] + 1e-9:
            best = (score, centroids, assign)
    assert best is not None
    return best[1], best[2]


def _kmeans_once(x: Sparse, v: int, k: int, rng: np.random.Generator, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    first = int(rng.integers(x.n))
    centroids = x.row(first, v)[None, :]
    best = x.dot(centroids)[:, 0]
    while centroids.shape[0] < k:
        d2 = np.maximum(1.0 - best, 0.0) ** 2
        total = d2.sum()
        pick = int(rng.choice(x.n, p=d2 / total)) if total > 0 else int(rng.integers(x.n))
        c = x.row(pick, v)
        centroids = np.vstack([centroids, c])
        best = np.maximum(best, x.dot(c[None, :])[:, 0])
    assign = np.full(x.n, -1)
    for _ in range(max(1, iterations)):
        sims = x.dot(centroids)
        new = np.argmax(sims, axis=1)
        sums = x.means(new, k, v)
        sizes = np.bincount(new, minlength=k)
        for j in np.flatnonzero(sizes == 0):  # re-seed: the row farthest from its centroid
            far = int(np.argmin(sims[np.arange(x.n), new]))
            new[far] = j
            sums = x.means(new, k, v)
            sims[far, :] = np.inf
        centroids = _unit(sums)
        if np.array_equal(new, assign):
            break
        assign = new
    return centroids, assign


def fit(docs: list[dict[str, int]], k: int, *, seed: int = 0, iterations: int = 30, restarts: int = 4,
        max_vocab: int = 20000, min_df: int = 2, max_df: float = 0.5,
        label_words: int = 8) -> tuple[Model, dict[str, int]]:  # fmt: skip
    """Fit a topic model on documents given as word counts (in a fixed order): (model, figures for the counters)."""
    vocab, idf = vocabulary(docs, max_vocab, min_df, max_df)
    index = {w: i for i, w in enumerate(vocab)}
    x = Sparse(docs, index, idf)
    has = np.diff(x.indptr) > 0
    figures = {"fit_docs": int(has.sum()), "vocabulary": len(vocab)}
    if not has.any():
        return Model(vocab, idf, np.zeros((0, len(vocab))), []), figures
    if not has.all():
        x = Sparse([d for d, h in zip(docs, has) if h], index, idf)
    k = min(k, x.n)
    centroids, assign = kmeans(x, len(vocab), k, seed, iterations, restarts)
    sizes = np.bincount(assign, minlength=k)
    mean = x.means(np.zeros(x.n, np.int64), 1, len(vocab))[0] / x.n
    cluster_mean = x.means(assign, k, len(vocab)) / np.maximum(sizes, 1)[:, None]
    labels = []
    for j in range(k):
        lift = (cluster_mean[j] - mean) * idf  # idf again: prefer specific words to common ones
        top = sorted(range(len(vocab)), key=lambda i: (-lift[i], vocab[i]))[:label_words]
        labels.append(" ".join(vocab[i] for i in top if lift[i] > 0) or vocab[int(np.argmax(cluster_mean[j]))])
    order = sorted(range(k), key=lambda j: (-sizes[j], labels[j]))
    figures["topics"] = k
    return Model(vocab, idf, centroids[order], [labels[j] for j in order]), figures


# -- the steps of the global pass (module level: they pickle by reference) -------------------------------------------


def count_rows(batch: pa.Table) -> pa.Table:
    return pa.table({"n": pa.array([batch.num_rows], pa.int64())})


class SampleRows:
    """A batch of documents -> (id, hash draw, word counts) of those whose draw is below `rate`."""

    def __init__(self, seed: int, rate: float) -> None:
        self.seed = seed
        self.rate = rate

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids = batch.column("id").to_pylist()
        tie = uniform(self.seed, ids, salt="topic:")
        rows: dict[str, list] = {"id": [], "tie": [], "words": [], "counts": []}
        for i in np.flatnonzero(tie < self.rate):
            c = Counter(words(batch.column("text")[int(i)].as_py() or ""))
            rows["id"].append(ids[i])
            rows["tie"].append(float(tie[i]))
            rows["words"].append(list(c.keys()))
            rows["counts"].append(list(c.values()))
        return pa.Table.from_pydict(rows, schema=SAMPLE)


class Assign:
    """The documents -> the same rows with their topic and its label."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def __call__(self, body: pa.Table) -> pa.Table:
        topics = [self.model.assign(t or "") if self.model.k else NO_TOPIC for t in body.column("text").to_pylist()]
        labels = [self.model.labels[t] if t >= 0 else "" for t in topics]
        body = body.append_column("topic", pa.array(topics, pa.int32()))
        return body.append_column("topic_words", pa.array(labels, pa.string()))


# -- the stage -------------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Topic(GlobalStage):
    """Give every document a topic: spherical k-means (k clusters, fixed seed) over TF-IDF word vectors of a
    deterministic sample of the corpus, then each document's nearest centroid; topics are numbered by size and
    labelled by their most distinguishing words, so that `mix` (by: topic) can rebalance them.

    Adds `topic` (int32: 0 is the largest topic; -1 for a document without a vocabulary word) and `topic_words`
    (the topic's label, e.g. "touchdown quarterback yards"). The model can be written (`write_model`) and applied to
    another corpus (`model`). Rejects nothing. Counters: fit_docs, vocabulary, topics.
    """

    name = "topic"
    input_columns = ("id", "text")
    output_columns: ClassVar[dict[str, pa.DataType]] = {"topic": pa.int32(), "topic_words": pa.string()}
    reasons = ()

    # Number of topics (clusters); fewer when the sample has fewer documents.
    k: int = 20
    # Documents the clusters are fitted on: those with the smallest hash of (seed, id).
    sample_docs: int = 20000
    # Vocabulary: at most this many words, the most document-frequent of the sample ...
    max_vocab: int = 20000
    # ... found in at least this many sample documents ...
    min_df: int = 2
    # ... and in at most this share of them (drops words every topic uses).
    max_df: float = 0.5
    # Rounds of k-means at most (it stops earlier when no assignment changes).
    iterations: int = 30
    # Runs of k-means from different k-means++ seedings; the tightest clustering wins (fewer: a worse local optimum
    # is likelier).
    restarts: int = 4
    # Words in a topic's label.
    label_words: int = 8
    # Seed of the sample's hash and of the k-means++ seeding.
    seed: int = 0
    # Apply this model (a folder or file written by write_model) instead of fitting one.
    model: str | None = None
    # Write the fitted model here (Parquet: word, idf, centroid weights; labels in the metadata).
    write_model: str | None = None

    def __post_init__(self) -> None:
        for key, low in (("k", 1), ("sample_docs", 1), ("max_vocab", 1), ("min_df", 1), ("iterations", 1),
                         ("restarts", 1), ("label_words", 1)):  # fmt: skip
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"topic: {key} must be an integer >= {low}, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"topic: seed must be an integer, got {self.seed!r}")
        if isinstance(self.max_df, bool) or not 0 < self.max_df <= 1:
            raise ConfigError(f"topic: max_df must be a share in (0, 1], got {self.max_df!r}",
                              hint="0.5 drops words found in more than half of the sample's documents")  # fmt: skip
        if self.k > self.sample_docs:
            raise ConfigError(f"topic: k ({self.k}) must not exceed sample_docs ({self.sample_docs})",
                              hint="fit on at least a few dozen documents per topic")  # fmt: skip
        if self.model is not None and self.write_model is not None:
            raise ConfigError("topic: give model (apply a fitted model) or write_model (write the one fitted here), "
                              "not both")  # fmt: skip
        for key in ("model", "write_model"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"topic: {key} must be a path, got {value!r}")

    def preflight(self) -> None:
        if self.model is not None:
            from curate.io.base import expand_paths

            expand_paths(self.model, (".parquet",))

    def sample(self, docs: Docs) -> list[dict[str, int]]:
        """The word counts of the sample, in the order of the hash draw (then id)."""
        counts = docs.derive(count_rows).collect()
        total = int(sum(counts.column("n").to_pylist())) if counts.num_rows else 0
        # a little more than needed, so that the sample_docs smallest draws are almost surely all there
        rate = 1.0 if total <= self.sample_docs else min(1.0, 1.1 * self.sample_docs / total + 64 / total)
        rows = docs.derive(SampleRows(self.seed, rate)).collect()
        if not rows.num_rows:
            return []
        rows = rows.sort_by([("tie", "ascending"), ("id", "ascending")]).slice(0, self.sample_docs)
        return [dict(zip(w, c)) for w, c in zip(rows.column("words").to_pylist(), rows.column("counts").to_pylist())]

    def fitted(self, docs: Docs) -> Model:
        if self.model is not None:
            return read_model(self.model)
        model, figures = fit(
            self.sample(docs), self.k, seed=self.seed, iterations=self.iterations, restarts=self.restarts,
            max_vocab=self.max_vocab,
            min_df=self.min_df, max_df=self.max_df, label_words=self.label_words,
        )  # fmt: skip
        for name, value in figures.items():
            self.count(name, value)
        return model

    def apply_global(self, docs: Docs) -> Docs:
        model = self.fitted(docs)
        if self.write_model is not None:
            if not model.k:
                raise StageError(
                    "topic: no topic was fitted, so there is no model to write: no word of the sample is in at least "
                    f"min_df ({self.min_df}) and at most max_df ({self.max_df}) of its documents",
                    hint="is the input empty? lower min_df or raise max_df",
                )
            docs.write_side("model", docs.table(model.to_table()), self.write_model)
        return docs.map_batches(Assign(model))


def topics(texts: list[str], k: int, **params) -> tuple[list[int], list[str]]:
    """(topic, label) of each text with a model fitted on the texts themselves in their order (the stage with a
    sample of everything, in memory): for trying parameters on a sample."""
    model, _ = fit([dict(Counter(words(t))) for t in texts], k, **params)
    return [model.assign(t) if model.k else NO_TOPIC for t in texts], model.labels
