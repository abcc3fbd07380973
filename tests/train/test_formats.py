"""`curate tokenize --format megatron | datatrove | litdata`: every document read back with each trainer's own
reader equals tokenizer.encode(text) plus the stated special tokens ([BOS] ... EOS), in input order or the seeded
shuffled order; sharding, resume, empty inputs and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from train_util import gpt2_layout_tokenizer, junk, sentences, write_output

tokenizers = pytest.importorskip("tokenizers")

from curate.cli import main  # noqa: E402
from curate.train.formats import (  # noqa: E402
    MANIFEST,
    build_formatted,
    doc_order,
    pack,
    unit_key,
    unit_order,
)
from curate.train.tokenizer import Tokenizer  # noqa: E402

FORMATS = ("megatron", "datatrove", "litdata")


# --- tokenizers trained here on the test's own documents (nothing downloaded) ---------------------------------------


def _docs() -> list[str]:
    # prose plus unicode, digits and whitespace runs, so byte-level and whitespace BPE both get exercised
    extra = ["Naïve café — 東京, emoji \U0001f600 and tabs\tand\nnewlines", "x", "  leading and trailing  "]
    return sentences(70, seed=3) + junk(20, seed=4) + extra


@pytest.fixture(scope="module")
def bpe_json(tmp_path_factory) -> Path:
    """A small BPE with a whitespace pre-tokenizer and <s>, </s> specials (LLaMA-like names)."""
    tk = tokenizers
    tok = tk.Tokenizer(tk.models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = tk.pre_tokenizers.Whitespace()
    trainer = tk.trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(_docs(), trainer=trainer)
    path = tmp_path_factory.mktemp("tok") / "bpe.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def gpt2_json(tmp_path_factory) -> Path:
    """A byte-level BPE in GPT-2's layout: ByteLevel pre-tokenizer and decoder, <|endoftext|> its one special."""
    return gpt2_layout_tokenizer(tmp_path_factory.mktemp("tok") / "gpt2.json", _docs())


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """A curated output of 3 shards; one document has empty text (skipped, as in curate's own shards)."""
    docs = _docs()
    docs[5] = ""
    return write_output(tmp_path_factory.mktemp("cur") / "out", docs, shards=3)


def _shard_docs(output: Path) -> dict[str, list[str]]:
    """The non-empty texts of each input shard, by unit key, in input order."""
    out = {}
    for f in sorted((output / "data").glob("*.parquet")):
        texts = pq.read_table(f).column("text").to_pylist()
        out[unit_key(str(f))] = [t for t in texts if t]
    return out


def _expected(output: Path, tok_path: Path, *, bos: int | None, eos: int, seed: int | None) -> list[list[int]]:
    """Every document's ids in reading order: [BOS] + tokenizer.encode(text) + [EOS], shuffled as documented."""
    raw = tokenizers.Tokenizer.from_file(str(tok_path))
    per_unit = _shard_docs(output)
    keys = list(per_unit)
    want = []
    for u in unit_order(keys, seed):
        texts = per_unit[keys[u]]
        order = doc_order(len(texts), seed, keys[u])
        for d in order:
            ids = raw.encode(texts[d]).ids
            want.append(([bos] if bos is not None else []) + ids + [eos])
    return want


# --- each trainer's own reader --------------------------------------------------------------------------------------


def read_megatron(out: Path, manifest: dict) -> list[list[int]]:
    pytest.importorskip("megatron.core")
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    docs = []
    for prefix in manifest["data_path"]:
        ds = IndexedDataset(prefix)
        assert ds.index.dtype == np.dtype(manifest["dtype"]).type
        n = len(ds)
        assert np.array_equal(ds.document_indices, np.arange(n + 1))  # one document = one sequence
        docs += [ds[i].tolist() for i in range(n)]
        if n:
            assert [a.tolist() for a in ds[0:n]] == docs[-n:]  # the slice path agrees
    return docs


def read_datatrove(out: Path, manifest: dict) -> list[list[int]]:
    pytest.importorskip("torch")
    pytest.importorskip("datatrove")
    from datatrove.utils.dataset import DatatroveFileDataset, DatatroveFolderDataset

    size = np.dtype(manifest["dtype"]).itemsize
    docs = []
    for shard in manifest["shards"]:
        # one window of the whole file; positions (from the .ds.index) restart at 0 at every document start
        n = shard["tokens"]
        ds = DatatroveFileDataset(str(out / shard["path"]), seq_len=n - 1, token_size=size, return_positions=True)
        item = ds[0]
        ids, pos = item["input_ids"].numpy(), item["positions"].numpy()
        assert len(ids) == n
        starts = np.flatnonzero(pos == 0)
        docs += [p.tolist() for p in np.split(ids, starts[1:])]
        assert len(starts) == shard["docs"]
    # the folder reader (nanotron's) sees the same tokens: windows of 1 token over the files in name order
    folder = DatatroveFolderDataset(str(out), seq_len=0, token_size=size)
    assert len(folder) == manifest["tokens"]
    stream = [int(folder[i]["input_ids"][0]) for i in range(len(folder))]
    by_name = sorted(manifest["shards"], key=lambda s: s["path"])
    files = {s["path"]: np.fromfile(out / s["path"], dtype=manifest["dtype"]).tolist() for s in by_name}
    assert stream == [t for s in by_name for t in files[s["path"]]]
    # nanotron's Nanoset opens each folder this way (the top level's *.ds)
    nano = DatatroveFolderDataset(str(out), seq_len=0, filename_pattern="*.ds", recursive=False, token_size=size)
    assert len(nano) == len(folder)
    return docs


def read_litdata(out: Path, manifest: dict) -> list[list[int]]:
    pytest.importorskip("litdata")
    from litdata import StreamingDataset

    ds = StreamingDataset(str(out))
    assert len(ds) == manifest["docs"]
    docs = [np.asarray(x).tolist() for x in ds]
    assert all(np.asarray(ds[i]).dtype == np.dtype(manifest["dtype"]) for i in (0, len(ds) - 1))
    return docs


READERS = {"megatron": read_megatron, "datatrove": read_datatrove, "litdata": read_litdata}


def _build(fmt: str, data, tok: Tokenizer, out: Path, **kw) -> dict:
    if fmt == "megatron":
        pytest.importorskip("megatron.core")
    if fmt == "litdata":
        pytest.importorskip("litdata")
    return build_formatted(str(data) if isinstance(data, Path) else data, tok, str(out), fmt, parallel="local", **kw)


@pytest.mark.parametrize("fmt", FORMATS)
def test_roundtrip_bpe_eos_only_input_order(fmt, output, bpe_json, tmp_path):
    tok = Tokenizer.from_file(bpe_json)
    assert tok.eos_token == "</s>"
    m = _build(fmt, output, tok, tmp_path / fmt, shard_tokens=300)
    want = _expected(output, bpe_json, bos=None, eos=tok.eos_id, seed=None)
    got = READERS[fmt](tmp_path / fmt, m)
    assert got == want  # nothing lost, doubled or reordered
    assert m["docs"] == len(want) == len(_docs()) - 1 and m["tokens"] == sum(map(len, want))
    assert len(m["shards"]) > 3 and all(s["tokens"] <= 300 for s in m["shards"])  # sharded by size
    assert m["bos_id"] is None and m["eos_id"] == tok.eos_id and m["dtype"] == "uint16"
    # per-document token counts: <unit>.docs.parquet
    counts = pa.concat_tables([pq.read_table(tmp_path / fmt / u["doc_index"]) for u in m["units"]])
    assert counts.column("tokens").to_pylist() == [len(d) for d in want]
    assert counts.column("id").to_pylist()[:5] == ["doc-0", "doc-1", "doc-2", "doc-3", "doc-4"]
    assert "doc-5" not in counts.column("id").to_pylist()  # the empty text
    for u in m["units"]:
        t = pq.read_table(tmp_path / fmt / u["doc_index"]).to_pylist()
        shards = {s["path"]: s for s in m["shards"]}
        assert all(r["shard"] in shards and r["row"] < shards[r["shard"]]["docs"] for r in t)


@pytest.mark.parametrize("fmt", FORMATS)
def test_roundtrip_gpt2_layout_bos_eos_shuffled(fmt, output, gpt2_json, tmp_path):
    tok = Tokenizer.from_file(gpt2_json)
    eos = tok.eos_id
    assert tok.eos_token == "<|endoftext|>"
    m = _build(fmt, output, tok, tmp_path / fmt, bos="auto", shuffle_seed=7, shard_tokens=1000)
    assert m["bos_id"] == eos  # GPT-2's layout has one end-of-text token: BOS is EOS
    got = READERS[fmt](tmp_path / fmt, m)
    want = _expected(output, gpt2_json, bos=eos, eos=eos, seed=7)
    assert got == want
    plain = _expected(output, gpt2_json, bos=eos, eos=eos, seed=None)
    assert got != plain and sorted(got) == sorted(plain)  # shuffled: same documents, another order
    # byte-level: every document decodes back to its text
    texts = sorted(t for ts in _shard_docs(output).values() for t in ts)
    assert sorted(tok.decode(d[1:-1]) for d in got) == texts


@pytest.mark.parametrize("fmt", FORMATS)
def test_bos_token_of_the_tokenizer(fmt, output, bpe_json, tmp_path):
    tok = Tokenizer.from_file(bpe_json)
    bos = tok.tok.token_to_id("<s>")
    m = _build(fmt, output, tok, tmp_path / fmt, bos="auto")
    assert m["bos_id"] == bos and len(m["shards"]) == 3  # default shard size: one shard per input file here
    got = READERS[fmt](tmp_path / fmt, m)
    assert got == _expected(output, bpe_json, bos=bos, eos=tok.eos_id, seed=None)
    assert all(d[0] == bos and d[-1] == tok.eos_id for d in got)


@pytest.mark.parametrize("fmt", FORMATS)
def test_large_vocabulary_uses_wide_tokens(fmt, tmp_path):
    tk = tokenizers
    vocab = {f"w{i}": i for i in range(70_000)}
    vocab["</s>"] = 70_000
    wl = tk.Tokenizer(tk.models.WordLevel(vocab, unk_token="w0"))
    wl.pre_tokenizer = tk.pre_tokenizers.Whitespace()
    tok = Tokenizer(wl)
    texts = ["w1 w69999 w65535 w65536", "w3", "w40000 w12"]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": texts}), src)
    m = _build(fmt, src, tok, tmp_path / fmt)
    assert m["dtype"] == {"megatron": "int32", "datatrove": "uint32", "litdata": "uint32"}[fmt]
    got = READERS[fmt](tmp_path / fmt, m)
    assert got == [[1, 69999, 65535, 65536, 70_000], [3, 70_000], [40000, 12, 70_000]]


@pytest.mark.parametrize("fmt", FORMATS)
def test_zero_documents_give_valid_empty_output(fmt, bpe_json, tmp_path):
    tok = Tokenizer.from_file(bpe_json)
    # a finished curated output that kept nothing, a Parquet file without rows, one with only empty texts
    nothing = tmp_path / "nothing"
    (nothing / "data").mkdir(parents=True)
    (nothing / "manifest.json").write_text(json.dumps({"pipeline": "t", "shards": []}))
    (nothing / "_SUCCESS").write_text("")
    empty_pq = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), empty_pq)
    blank = write_output(tmp_path / "blank", ["", ""], shards=1)
    for name, data in (("a", nothing), ("b", [str(nothing), str(empty_pq), str(blank)])):
        out = tmp_path / f"{fmt}-{name}"
        m = _build(fmt, data, tok, out)
        assert m["docs"] == 0 and m["tokens"] == 0 and m["shards"] == []
        assert json.loads((out / MANIFEST).read_text()) == m
        if fmt == "megatron":
            assert m["data_path"] == [] and not list(out.glob("*.bin"))
        if fmt == "datatrove":
            pytest.importorskip("torch")
            pytest.importorskip("datatrove")
            from datatrove.utils.dataset import DatatroveFolderDataset

            assert len(DatatroveFolderDataset(str(out), seq_len=8)) == 0
        if fmt == "litdata":
            assert json.loads((out / "index.json").read_text())["chunks"] == []
        again = _build(fmt, data, tok, out)  # a rerun is fine too
        assert again["docs"] == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_resume_skips_done_files_rebuilds_changed_and_drops_stale(fmt, bpe_json, tmp_path):
    tok = Tokenizer.from_file(bpe_json)
    src = write_output(tmp_path / "in", sentences(30, seed=9), shards=3)
    out = tmp_path / fmt
    first = _build(fmt, src, tok, out, shard_tokens=200)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name not in (MANIFEST, "index.json")}
    again = _build(fmt, src, tok, out, shard_tokens=200)
    assert again["shards"] == first["shards"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in stamps} == stamps  # nothing rewritten
    # a changed input file is rebuilt, the others are kept
    part = src / "data" / "part-00001.parquet"
    pq.write_table(pa.table({"id": ["n1", "n2"], "text": ["brand new text", "and more"]}), part)
    key = unit_key(str(part))
    third = _build(fmt, src, tok, out, shard_tokens=200)
    changed = {p.name for p in out.iterdir() if p.name in stamps and p.stat().st_mtime_ns != stamps[p.name]}
    assert changed and all(n.startswith(key) for n in changed)
    assert third["docs"] == first["docs"] - 10 + 2
    # files of units no longer in the input (and shards of a unit that shrank) are removed
    fourth = _build(fmt, str(src / "data" / "part-00000.parquet"), tok, out, shard_tokens=200)
    names = {p.name for p in out.iterdir()}
    assert not any(n.startswith(key) for n in names)
    assert fourth["docs"] == 10 and READERS[fmt](out, fourth) == _megatron_free_expected(src, tok, 0)
    # other settings rebuild everything
    fifth = _build(fmt, str(src / "data" / "part-00000.parquet"), tok, out, shuffle_seed=1)
    assert sorted(READERS[fmt](out, fifth)) == sorted(_megatron_free_expected(src, tok, 0))


def _megatron_free_expected(src: Path, tok: Tokenizer, shard: int) -> list[list[int]]:
    texts = pq.read_table(src / "data" / f"part-{shard:05d}.parquet").column("text").to_pylist()
    return [tok.encode(t) + [tok.eos_id] for t in texts if t]


def test_named_bos_token(bpe_json):
    from curate.errors import ConfigError
    from curate.train.formats import resolve_bos

    tok = Tokenizer.from_file(bpe_json)
    assert resolve_bos(tok, None) is None and resolve_bos(tok, "auto") == tok.tok.token_to_id("<s>")
    assert resolve_bos(tok, "[UNK]") == tok.tok.token_to_id("[UNK]")
    with pytest.raises(ConfigError, match="no token '<nope>'"):
        resolve_bos(tok, "<nope>")


def test_pack_places_bos_body_and_eos():
    toks, lens = pack([[5, 6], [], [7]], 1, 2)
    assert toks.tolist() == [1, 5, 6, 2, 1, 2, 1, 7, 2] and lens.tolist() == [4, 2, 3]
    toks, lens = pack([[5, 6], [7]], None, 2)
    assert toks.tolist() == [5, 6, 2, 7, 2] and lens.tolist() == [3, 2]
    toks, lens = pack([], None, 2)
    assert toks.tolist() == [] and lens.tolist() == []


def test_megatron_idx_layout_byte_for_byte(output, bpe_json, tmp_path):
    """The .idx equals what megatron-core's own IndexedDatasetBuilder writes for the same documents."""
    pytest.importorskip("megatron.core")
    torch = pytest.importorskip("torch")
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    tok = Tokenizer.from_file(bpe_json)
    m = _build("megatron", output, tok, tmp_path / "m")
    for prefix in m["data_path"]:
        docs = read_megatron(tmp_path / "m", {**m, "data_path": [prefix]})
        theirs = str(tmp_path / "theirs")
        b = IndexedDatasetBuilder(theirs + ".bin", dtype=np.uint16)
        for d in docs:
            b.add_item(torch.tensor(d))
            b.end_document()
        b.finalize(theirs + ".idx")
        for ext in (".bin", ".idx"):
            assert Path(prefix + ext).read_bytes() == Path(theirs + ext).read_bytes()


def test_datatrove_files_match_its_document_tokenizer(output, bpe_json, tmp_path):
    """The .ds, .ds.index and .ds.metadata layout equals datatrove's DocumentTokenizer's (unshuffled, EOS added)."""
    pytest.importorskip("datatrove")
    from datatrove.data import Document
    from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer

    tok = Tokenizer.from_file(bpe_json)
    src = output / "data" / "part-00000.parquet"
    m = _build("datatrove", str(src), tok, tmp_path / "ours", shard_tokens=10**9, tokenizer_name=str(bpe_json))
    texts = [t for t in pq.read_table(src).column("text").to_pylist() if t]
    step = DocumentTokenizer(
        str(tmp_path / "theirs"), tokenizer_name_or_path=str(bpe_json), eos_token="</s>", shuffle_documents=False
    )
    step.run(iter([Document(text=t, id=str(i)) for i, t in enumerate(texts)]))
    (theirs,) = [p for p in (tmp_path / "theirs").glob("*.ds")]
    (ours,) = [tmp_path / "ours" / s["path"] for s in m["shards"]]
    for ext in ("", ".index"):
        assert Path(f"{ours}{ext}").read_bytes() == Path(f"{theirs}{ext}").read_bytes()
    lines = Path(f"{ours}.metadata").read_text().split("\n")
    assert lines[0] == f"{bpe_json}|2" and lines[1:] == Path(f"{theirs}.metadata").read_text().split("\n")[1:]


def test_cli_formats_and_flag_checks(output, gpt2_json, tmp_path, capsys):
    pytest.importorskip("megatron.core")
    out = tmp_path / "meg"
    args = ["tokenize", str(output), "--out", str(out), "--tokenizer", str(gpt2_json), "--parallel", "local"]
    assert main([*args, "--format", "megatron", "--bos", "--shuffle-seed", "3", "--shard-tokens", "500"]) == 0
    rerun = [*args, "--format", "megatron", "--bos-token", "<|endoftext|>", "--shuffle-seed", "3"]
    assert main([*rerun, "--shard-tokens", "500"]) == 0  # the same settings: a rerun that skips every file
    printed = capsys.readouterr().out
    assert "megatron" in printed and "[BOS] tokens [EOS]" in printed
    m = json.loads((out / MANIFEST).read_text())
    assert m["shuffle_seed"] == 3 and m["shard_tokens"] == 500 and m["bos_id"] == m["eos_id"]
    tok = Tokenizer.from_file(gpt2_json)
    assert read_megatron(out, m) == _expected(output, gpt2_json, bos=tok.eos_id, eos=tok.eos_id, seed=3)
    # curate's own format takes none of the new flags; the others have no validation split
    assert main(["tokenize", str(output), "--out", str(tmp_path / "c"), "--bos"]) == 2
    assert "--bos applies to --format megatron" in capsys.readouterr().err
    curate_args = ["tokenize", str(output), "--out", str(tmp_path / "c")]
    assert main([*curate_args, "--shuffle-seed", "1", "--shard-tokens", "9"]) == 2
    assert "--shuffle-seed, --shard-tokens apply to --format megatron" in capsys.readouterr().err
    assert main([*args, "--format", "datatrove", "--val-fraction", "0.1"]) == 2
    assert "--val-fraction applies to --format curate only" in capsys.readouterr().err
    # one format per directory
    assert main([*args, "--format", "datatrove"]) == 2
    assert "holds megatron token shards" in capsys.readouterr().err
    # no --tokenizer: a byte-level BPE is trained into OUT, as for curate's own format
    own = tmp_path / "own"
    cmd = ["tokenize", str(output), "--out", str(own), "--format", "datatrove", "--vocab-size", "300"]
    assert main([*cmd, "--parallel", "local"]) == 0
    assert (own / "tokenizer.json").exists() and len(list(own.glob("*.ds"))) == 3
    assert os.path.getsize(own / MANIFEST) > 0


def test_ray_equals_local(ray_session, output, bpe_json, tmp_path):
    tok = Tokenizer.from_file(bpe_json)
    local = build_formatted(str(output), tok, str(tmp_path / "l"), "datatrove", shard_tokens=300, parallel="local")
    on_ray = build_formatted(str(output), tok, str(tmp_path / "r"), "datatrove", shard_tokens=300, parallel="ray")
    assert [{k: v for k, v in u.items()} for u in on_ray["shards"]] == local["shards"]
    for s in local["shards"]:
        assert (tmp_path / "l" / s["path"]).read_bytes() == (tmp_path / "r" / s["path"]).read_bytes()
