"""Tokenizer, token shards (EOS between documents, split, resume, Ray) and the batch loader."""

from __future__ import annotations

import os

import numpy as np
import pytest
from train_util import sentences, write_output

pytest.importorskip("tokenizers")

from curate.errors import ConfigError, InputError  # noqa: E402
from curate.train.data import input_files, is_val, iter_texts  # noqa: E402
from curate.train.shards import Batches, ShardIndex, TokenStream, build_shards, eval_windows  # noqa: E402
from curate.train.tokenizer import Tokenizer, train_bpe  # noqa: E402


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    return write_output(tmp_path_factory.mktemp("cur") / "out", sentences(120), shards=3)


@pytest.fixture(scope="module")
def tok(output):
    return train_bpe(iter_texts(input_files(str(output))), vocab_size=300)


def test_bpe_roundtrip_and_eos(tok, tmp_path):
    text = "Naïve café — 東京, emoji \U0001f600 and tabs\tand\nnewlines"
    assert tok.decode(tok.encode(text)) == text  # byte-level: nothing is unknown
    assert tok.vocab_size == 300 and tok.decode([tok.eos_id]) == "<|endoftext|>"
    tok.save(tmp_path / "tok.json")
    again = Tokenizer.from_file(tmp_path / "tok.json")
    assert again.encode(text) == tok.encode(text) and again.fingerprint == tok.fingerprint
    assert len(tok.encode("the cat sees the red ball")) < len("the cat sees the red ball")  # merges learned


def test_tokenizer_errors(tmp_path, tok):
    with pytest.raises(InputError, match="does not exist"):
        Tokenizer.from_file(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="no end-of-document token"):
        Tokenizer.from_str(tok.to_str(), eos_token="<nope>")


def test_input_files_use_the_manifest(output, tmp_path):
    (output / "data" / "part-stray.parquet").write_bytes(b"not in the manifest")
    try:
        files = input_files(str(output))
    finally:
        (output / "data" / "part-stray.parquet").unlink()
    assert [os.path.basename(f) for f in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    unfinished = write_output(tmp_path / "unfinished", ["x"], shards=1)
    (unfinished / "_SUCCESS").unlink()
    with pytest.raises(InputError, match="unfinished"):
        input_files(str(unfinished))


def test_shards_pack_documents_with_eos_and_split_by_id(output, tok, tmp_path):
    index = build_shards(str(output), tok, str(tmp_path / "tok"), val_fraction=0.2, parallel="local")
    docs = sentences(120)
    ids = [f"doc-{i}" for i in range(120)]
    train = [d for i, d in zip(ids, docs) if not is_val(i, 0.2)]
    val = [d for i, d in zip(ids, docs) if is_val(i, 0.2)]
    assert 0 < len(val) < 40 and index.docs("val") == len(val) and index.docs("train") == len(train)
    for split, want in (("train", train), ("val", val)):
        stream = index.stream(split)
        tokens = stream.read(0, len(stream))
        assert tokens[-1] == tok.eos_id and int((tokens == tok.eos_id).sum()) == len(want)
        pieces = np.split(tokens, np.flatnonzero(tokens == tok.eos_id) + 1)[:-1]
        assert [tok.decode(p[:-1]) for p in pieces] == want
    assert index.dtype == np.uint16
    assert ShardIndex.load(str(tmp_path / "tok")).meta == index.meta


def test_shards_resume_skip_done_files_and_rebuild_changed(tok, tmp_path):
    out = write_output(tmp_path / "out", sentences(60), shards=3)
    tokdir = tmp_path / "tok"
    first = build_shards(str(out), tok, str(tokdir), val_fraction=0.1, parallel="local")
    bins = {p.name: p.stat().st_mtime_ns for p in tokdir.glob("*.bin")}
    again = build_shards(str(out), tok, str(tokdir), val_fraction=0.1, parallel="local")
    assert {p.name: p.stat().st_mtime_ns for p in tokdir.glob("*.bin")} == bins  # nothing rebuilt
    assert again.meta == first.meta
    write_output(out, sentences(60, seed=5), shards=3)  # the output changed under the shards
    changed = build_shards(str(out), tok, str(tokdir), val_fraction=0.1, parallel="local")
    assert changed.tokens("train") != first.tokens("train")
    (tokdir / ".tmp-crash.train.bin").write_bytes(b"half")
    build_shards(str(out), tok, str(tokdir), val_fraction=0.1, parallel="local")
    assert not (tokdir / ".tmp-crash.train.bin").exists()


def test_token_stream_reads_across_files(tmp_path):
    a, b = np.arange(0, 7, dtype=np.uint16), np.arange(100, 105, dtype=np.uint16)
    a.tofile(tmp_path / "a.bin")
    b.tofile(tmp_path / "b.bin")
    (tmp_path / "e.bin").write_bytes(b"")
    s = TokenStream(
        [(str(tmp_path / "a.bin"), 7), (str(tmp_path / "e.bin"), 0), (str(tmp_path / "b.bin"), 5)], np.uint16
    )
    whole = np.concatenate([a, b]).astype(np.int64)
    assert len(s) == 12 and np.array_equal(s.read(0, 12), whole)
    assert np.array_equal(s.read(5, 4), whole[5:9])
    with pytest.raises(IndexError):
        s.read(10, 3)


def test_batches_cover_every_window_once_per_epoch_and_resume(tmp_path):
    np.arange(0, 161, dtype=np.uint16).tofile(tmp_path / "t.bin")
    stream = TokenStream([(str(tmp_path / "t.bin"), 161)], np.uint16)
    b = Batches(stream, seq_len=8, batch_size=4, seed=1)
    assert b.n_windows == 20
    seen = np.concatenate([b.next_indices() for _ in range(5)])
    assert sorted(seen.tolist()) == list(range(20)) and b.epoch == 1
    x, y = b.next()
    assert x.shape == (4, 8) and np.array_equal(x[:, 1:], y[:, :-1]) and np.all(x[:, 0] % 8 == 0)
    state = b.state_dict()
    want = [b.next_indices() for _ in range(7)]
    fresh = Batches(stream, seq_len=8, batch_size=4, seed=1)
    fresh.load_state_dict(state)
    assert all(np.array_equal(fresh.next_indices(), w) for w in want)
    with pytest.raises(InputError, match="checkpoint was trained on"):
        Batches(stream, seq_len=8, batch_size=4, seed=2).load_state_dict(state)
    assert eval_windows(stream, 8, 3).tolist() == [list(range(0, 9)), list(range(8, 17)), list(range(16, 25))]


def test_shards_on_ray_equal_local(ray_session, output, tok, tmp_path):
    local = build_shards(str(output), tok, str(tmp_path / "local"), val_fraction=0.2, parallel="local")
    on_ray = build_shards(str(output), tok, str(tmp_path / "ray"), val_fraction=0.2, parallel="ray")
    for split in ("train", "val"):
        a, b = local.stream(split), on_ray.stream(split)
        assert len(a) == len(b) > 0 and np.array_equal(a.read(0, len(a)), b.read(0, len(b)))
