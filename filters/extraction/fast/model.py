"""The fast_extract classifier at inference: two ensembles of oblivious (symmetric) decision trees, evaluated with a
handful of numpy operations per page, whatever the number of trees.

An oblivious tree of depth d asks the same d questions (feature > border) on every path, so a block's leaf is the
d answers read as a binary number: one gather of X at (trees, d) feature columns, one comparison, one weighted sum,
one gather of leaf values. The trees are trained with CatBoost (filters/extraction/fast/train.py); the model file holds
only arrays, as JSON, so inference needs numpy and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.errors import ConfigError

MODEL_PATH = Path(__file__).resolve().parents[2] / "data" / "fast_extract.json"
FORMAT = "curate-fast-extract/1"
# blocks scored per numpy pass: the working set of one pass stays in the CPU caches
CHUNK = 512


@dataclass
class Trees:
    """An ensemble of oblivious trees: raw score = scale * sum of leaf values + bias (CatBoost's Logloss scale)."""

    features: np.ndarray  # (trees, depth) int: feature column of each level's question
    borders: np.ndarray  # (trees, depth) float32: the answer is 1 when the feature is > border
    leaves: np.ndarray  # (trees, 2**depth) float32
    scale: float
    bias: float

    def __post_init__(self) -> None:
        n, depth = self.features.shape
        if depth > 8:
            raise ValueError(f"oblivious trees of depth {depth}: at most 8 (a leaf index is one byte)")
        self._flat_features = self.features.ravel()
        self._flat_borders = self.borders.ravel()[:, None]
        self._flat_leaves = self.leaves.ravel()
        self._offsets = (np.arange(n, dtype=np.int64) * self.leaves.shape[1])[:, None]

    def raw(self, X: np.ndarray) -> np.ndarray:
        """(blocks,) raw scores (logits). Laid out with blocks last: every step is one contiguous numpy call."""
        if len(X) <= CHUNK:
            return self._raw(X)
        # a page of 20,000 blocks would make a (trees * depth, blocks) matrix of 100 MB: out of every cache, and
        # 6x slower per block than pieces that stay in it
        return np.concatenate([self._raw(X[i : i + CHUNK]) for i in range(0, len(X), CHUNK)])

    def _raw(self, X: np.ndarray) -> np.ndarray:
        n, depth = self.features.shape
        rows = np.take(np.ascontiguousarray(X.T), self._flat_features, axis=0)  # (trees * depth, blocks)
        # level k's answer is bit k of the leaf index, built in bytes (an eighth of the memory traffic of int64)
        bits = (rows > self._flat_borders).view(np.uint8).reshape(n, depth, -1)
        leaf = bits[:, 0, :].copy()
        for level in range(1, depth):
            leaf |= bits[:, level, :] << level
        return self.scale * np.take(self._flat_leaves, leaf + self._offsets).sum(0) + self.bias

    def proba(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw(X)))

    def to_json(self) -> dict:
        return {
            "features": self.features.tolist(),
            "borders": [[float(f"{b:.7g}") for b in row] for row in self.borders.tolist()],
            "leaves": [[float(f"{v:.7g}") for v in row] for row in self.leaves.tolist()],
            "scale": self.scale,
            "bias": self.bias,
        }

    @classmethod
    def from_json(cls, d: dict) -> Trees:
        return cls(
            features=np.array(d["features"], np.int64),
            borders=np.array(d["borders"], np.float32),
            leaves=np.array(d["leaves"], np.float32),
            scale=float(d["scale"]),
            bias=float(d["bias"]),
        )

    @classmethod
    def from_catboost(cls, model: object) -> Trees:
        """Convert a fitted CatBoostClassifier (float features only, symmetric trees)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.json"
            model.save_model(str(path), format="json")  # type: ignore[attr-defined]
            d = json.loads(path.read_text())
        trees = d["oblivious_trees"]
        depth = max(len(t["splits"]) for t in trees)
        n = len(trees)
        features = np.zeros((n, depth), np.int64)
        # a tree with fewer levels answers 0 to the missing ones (border +inf), which leaves its leaf index alone
        borders = np.full((n, depth), np.inf, np.float32)
        leaves = np.zeros((n, 2**depth), np.float32)
        for t, tree in enumerate(trees):
            for level, split in enumerate(tree["splits"]):
                if split.get("split_type", "FloatFeature") != "FloatFeature":
                    raise ValueError(f"unsupported CatBoost split {split}")
                features[t, level] = split["float_feature_index"]
                borders[t, level] = split["border"]
            values = np.array(tree["leaf_values"], np.float32)
            leaves[t, : len(values)] = values
        scale, bias = d.get("scale_and_bias", [1.0, [0.0]])
        return cls(features, borders, leaves, float(scale), float(bias[0] if isinstance(bias, list) else bias))


@dataclass
class Model:
    """Two passes: `first` scores blocks from their own features, `second` from those plus the first pass's view of
    their surroundings (featurize.context)."""

    feature_names: list[str]
    context_names: list[str]
    first: Trees
    second: Trees
    threshold: float
    meta: dict

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "feature_names": self.feature_names,
            "context_names": self.context_names,
            "threshold": self.threshold,
            "meta": self.meta,
            "first": self.first.to_json(),
            "second": self.second.to_json(),
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n")


def load_model(path: str | Path | None = None) -> Model:
    """The model at `path` (default: the one shipped in filters/data), checked against this code's feature list."""
    from curate_filters.extraction.fast.featurize import context_names, feature_names

    where = Path(path) if path else MODEL_PATH
    try:
        d = json.loads(where.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"fast_extract: model file {where} not found") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"fast_extract: model file {where} is not valid JSON ({e})") from e
    if d.get("format") != FORMAT:
        raise ConfigError(f"fast_extract: {where} is not a {FORMAT} model (format {d.get('format')!r})")
    if d["feature_names"] != feature_names() or d["context_names"] != context_names():
        raise ConfigError(
            f"fast_extract: {where} was trained on other features than this version computes",
            hint="retrain it: python -m curate_filters.extraction.fast.train",
        )
    return Model(
        feature_names=d["feature_names"],
        context_names=d["context_names"],
        first=Trees.from_json(d["first"]),
        second=Trees.from_json(d["second"]),
        threshold=float(d["threshold"]),
        meta=d.get("meta", {}),
    )
