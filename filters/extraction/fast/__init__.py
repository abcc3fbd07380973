"""The `fast_extract` stage: main text by a learned block classifier over lxml, at several times trafilatura's speed
and within a point of its F1 (issue 14; bench/extraction_quality.py, bench/extraction_speed.py).

How: parse with libxml2 (as trafilatura does), drop non-content elements and merge inline markup in C, cut the page
into blocks (paragraphs, headings, list items, cells) in one pass (tree.py, over markup.py's element bits), score
each block with two small ensembles of oblivious trees in numpy (featurize.py's columns; model.py: a first pass on
the block's own features, a second that also sees the first pass's scores around it), and lay the kept blocks out
as trafilatura's txt output does (layout.py). The trees were trained (train.py) on half of the corpus sites only:
on trafilatura's benchmark annotations where a page has them, on trafilatura's own output elsewhere; the other half
is what the benchmarks report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np

from curate.errors import ConfigError
from curate_filters.extraction.extractors import _FAILED, _WARMUP, HtmlExtractor
from curate_filters.extraction.fast import tree as _tree
from curate_filters.extraction.fast.featurize import context, features
from curate_filters.extraction.fast.layout import render
from curate_filters.extraction.fast.model import Model, load_model
from curate_filters.extraction.fast.tree import parse, segment

log = logging.getLogger("curate.fast_extract")
_told = False


def _tell_if_not_compiled() -> None:
    global _told
    if _tree._compiled is None and not _told:
        _told = True
        log.warning(
            "fast_extract: its compiled walk (_walk.pyx) is not built; the Python walk runs "
            "instead (the same text, slower). Build it: pip install -e . (needs a C compiler)"
        )


class FastExtract(HtmlExtractor):
    """Main text with curate's block classifier (issue 14): trafilatura's output layout and, on the held-out half
    of its benchmark, its F1 within a point, at several times its speed. Same decoding, time limit and reasons
    (`extraction_failed`, `extraction_timeout`, `empty_text`) as the `trafilatura` stage; needs lxml and numpy only."""

    name: ClassVar[str] = "fast_extract"
    takes_utf8: ClassVar[bool] = True  # parse() takes the payload's bytes

    # Keep blocks whose probability of being main text is at least this; null: the model's own (tuned by
    # cross-validation on the tuning sites). Lower keeps more text (recall), higher less (precision).
    threshold: float | None = None
    # A model file written by `python -m curate_filters.extraction.fast.train`; null: the one shipped in filters/data.
    model: str | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"fast_extract: threshold must be between 0 and 1, not {self.threshold}")

    def preflight(self) -> None:
        _tell_if_not_compiled()
        if self.model is not None and not Path(self.model).is_file():
            raise ConfigError(f"fast_extract: model file {self.model} not found")

    def setup(self) -> None:
        super().setup()
        _tell_if_not_compiled()
        self._model: Model = load_model(self.model)
        self._threshold = self._model.threshold if self.threshold is None else self.threshold
        self.extract(_WARMUP, None)  # numpy's first calls and the regex caches: not on a real page's time limit

    def extract(self, html: str, url: str | None, utf8: bytes | None = None) -> str | None:
        if "<" not in html[:4096]:
            return _FAILED  # no markup where a page starts: not HTML (a binary or plain-text payload)
        root = parse(html, utf8)
        if root is None:
            return _FAILED
        blocks = segment(root)
        if not len(blocks):
            return ""
        X = features(blocks)
        model = self._model
        first = model.first.proba(X)
        second = model.second.proba(np.hstack([X, context(blocks, first)]))
        return render(blocks, second >= self._threshold)
