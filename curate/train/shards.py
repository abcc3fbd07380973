"""Packed token shards: each input file becomes a train and a validation .bin of token ids (EOS after every
document), memory-mapped for training. Built in parallel on Ray for large outputs; resumable per input file."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from curate.errors import InputError
from curate.train.data import input_files, is_val, iter_docs
from curate.train.tokenizer import Tokenizer

log = logging.getLogger("curate.train")

INDEX = "index.json"
FORMAT = 1
# "auto" tokenizes on Ray when the input is at least this large and spans more than one file.
RAY_MIN_BYTES = 64 << 20
_UNIT_FILE = re.compile(r"^([0-9a-f]{10}-[^.]*)\.(train\.bin|val\.bin|json)$")


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def _unit_key(src: str) -> str:
    stem = os.path.basename(src).split(".")[0][:40]
    return f"{hashlib.sha1(os.path.abspath(src).encode()).hexdigest()[:10]}-{stem}"


def _fingerprint(src: str, tokenizer_sha: str, val_fraction: float, text_column: str) -> dict[str, Any]:
    st = os.stat(src)
    return {
        "format": FORMAT,
        "source": os.path.abspath(src),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "tokenizer": tokenizer_sha,
        "val_fraction": val_fraction,
        "text_column": text_column,
    }


def run_files(fn: Any, todo: list[str], args: tuple, parallel: str, address: str | None) -> dict[str, Any]:
    """fn(file, *args) for every file of `todo` -> {file: its result}: on Ray (one CPU a file; args[0], the
    tokenizer's JSON, put in the object store once) when `parallel` is "ray", or "auto" and the files are large and
    several; else one after another here. Shared by curate's own shards and the other formats (formats.py)."""
    size = sum(os.path.getsize(f) for f in todo)
    use_ray = parallel == "ray" or (parallel == "auto" and size >= RAY_MIN_BYTES and len(todo) > 1)
    if todo and use_ray:
        import ray

        from curate.engine.ray import ensure_ray

        where = ensure_ray(address)
        log.info("tokenizing %d files (%.1f MB) on Ray (%s)", len(todo), size / 1e6, where)
        remote = ray.remote(num_cpus=1)(fn)
        tok_ref = ray.put(args[0])
        refs = [remote.remote(f, tok_ref, *args[1:]) for f in todo]
        return dict(zip(todo, ray.get(refs)))
    out = {}
    for n, f in enumerate(todo):
        log.info("tokenizing %s (%d/%d)", f, n + 1, len(todo))
        out[f] = fn(f, *args)
    return out


def tokenize_file(
    src: str, tokenizer_json: str, eos_token: str, out_dir: str, val_fraction: float, text_column: str
) -> dict[str, Any]:
    """Tokenize one input file into <key>.train.bin and <key>.val.bin; <key>.json, written last, marks it done."""
    tok = Tokenizer.from_str(tokenizer_json, eos_token)
    dtype = token_dtype(tok.vocab_size)
    key = _unit_key(src)
    fp = _fingerprint(src, tok.fingerprint, val_fraction, text_column)
    meta: dict[str, Any] = {"key": key, **fp}
    tmp = {s: os.path.join(out_dir, f".tmp-{uuid.uuid4().hex}.{s}.bin") for s in ("train", "val")}
    counts = {s: {"docs": 0, "tokens": 0} for s in tmp}
    fhs = {s: open(p, "wb") for s, p in tmp.items()}  # noqa: SIM115 - closed below
    try:
        for ids, texts in iter_docs(src, text_column):
            side = {"train": [], "val": []}
            for i, t in zip(ids, texts):
                if t:
                    side["val" if is_val(i, val_fraction) else "train"].append(t)
            for s, docs in side.items():
                if docs:
                    arr = tok.encode_docs(docs)
                    fhs[s].write(arr.astype(dtype).tobytes())
                    counts[s]["docs"] += len(docs)
                    counts[s]["tokens"] += len(arr)
    finally:
        for fh in fhs.values():
            fh.close()
    for s, p in tmp.items():
        os.replace(p, os.path.join(out_dir, f"{key}.{s}.bin"))
        meta[s] = {"file": f"{key}.{s}.bin", **counts[s]}
    _write_json(os.path.join(out_dir, f"{key}.json"), meta)
    return meta


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(tmp, path)


def _done(out_dir: str, src: str, tok: Tokenizer, val_fraction: float, text_column: str) -> dict[str, Any] | None:
    """The unit's metadata if it was built from this very file with these settings, else None."""
    path = os.path.join(out_dir, f"{_unit_key(src)}.json")
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None
    fp = _fingerprint(src, tok.fingerprint, val_fraction, text_column)
    if any(meta.get(k) != v for k, v in fp.items()):
        return None
    item = token_dtype(tok.vocab_size).itemsize
    for s in ("train", "val"):
        f = os.path.join(out_dir, meta[s]["file"])
        if not os.path.exists(f) or os.path.getsize(f) != meta[s]["tokens"] * item:
            return None
    return meta


@dataclass
class ShardIndex:
    """A finished token-shard directory: which .bin files hold the train and val streams."""

    path: str
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str) -> ShardIndex:
        try:
            with open(os.path.join(path, INDEX), encoding="utf-8") as fh:
                return cls(path, json.load(fh))
        except FileNotFoundError as e:
            raise InputError(f"'{path}' holds no finished token shards (no {INDEX})") from e

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.meta["dtype"])

    def tokens(self, split: str) -> int:
        return sum(u[split]["tokens"] for u in self.meta["units"])

    def docs(self, split: str) -> int:
        return sum(u[split]["docs"] for u in self.meta["units"])

    def stream(self, split: str) -> TokenStream:
        files = [(os.path.join(self.path, u[split]["file"]), u[split]["tokens"]) for u in self.meta["units"]]
        return TokenStream(files, self.dtype)


def build_shards(
    data: str | list[str],
    tok: Tokenizer,
    out_dir: str,
    *,
    val_fraction: float = 0.01,
    text_column: str = "text",
    parallel: Literal["auto", "ray", "local"] = "auto",
    address: str | None = None,
) -> ShardIndex:
    """Tokenize every document file of `data` into out_dir, skipping files already done with the same settings.

    On a Ray cluster, out_dir and the input must be on a filesystem every node mounts at the same path."""
    os.makedirs(out_dir, exist_ok=True)
    files = input_files(data)
    metas: dict[str, dict[str, Any]] = {}
    todo = []
    for f in files:
        meta = _done(out_dir, f, tok, val_fraction, text_column)
        if meta is None:
            todo.append(f)
        else:
            metas[f] = meta
    if metas:
        log.info("token shards: %d of %d files already done in %s", len(metas), len(files), out_dir)
    args = (tok.to_str(), tok.eos_token, out_dir, val_fraction, text_column)
    metas.update(run_files(tokenize_file, todo, args, parallel, address))
    units = [metas[f] for f in files]
    keys = {u["key"] for u in units}
    for name in os.listdir(out_dir):  # units of files no longer in the input, and temporaries of a crash
        unit = _UNIT_FILE.match(name)
        if name.startswith(".tmp-") or (unit and unit.group(1) not in keys):
            os.remove(os.path.join(out_dir, name))
    meta = {
        "format": FORMAT,
        "tokenizer": tok.fingerprint,
        "vocab_size": tok.vocab_size,
        "eos_id": tok.eos_id,
        "dtype": token_dtype(tok.vocab_size).name,
        "val_fraction": val_fraction,
        "units": units,
    }
    _write_json(os.path.join(out_dir, INDEX), meta)
    index = ShardIndex(out_dir, meta)
    log.info(
        "token shards: %s train tokens (%s docs), %s val tokens (%s docs)",
        f"{index.tokens('train'):,}",
        f"{index.docs('train'):,}",
        f"{index.tokens('val'):,}",
        f"{index.docs('val'):,}",
    )
    return index


class TokenStream:
    """Several .bin files read as one token sequence, memory-mapped."""

    def __init__(self, files: list[tuple[str, int]], dtype: np.dtype) -> None:
        self.files = [(p, n) for p, n in files if n > 0]  # np.memmap cannot map an empty file
        self.dtype = dtype
        self.offsets = np.cumsum([0] + [n for _, n in self.files])  # start of each file in the stream
        self._maps: list[np.memmap] | None = None

    @classmethod
    def from_array(cls, tokens: np.ndarray, path: str) -> TokenStream:
        """Write tokens to one .bin file and stream it (for evaluation sets)."""
        dtype = token_dtype(int(tokens.max()) + 1 if len(tokens) else 0)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        tokens.astype(dtype).tofile(tmp)
        os.replace(tmp, path)
        return cls([(path, len(tokens))], dtype)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _mapped(self) -> list[np.memmap]:
        if self._maps is None:
            self._maps = [np.memmap(p, dtype=self.dtype, mode="r", shape=(n,)) for p, n in self.files]
        return self._maps

    def read(self, start: int, n: int) -> np.ndarray:
        """Tokens start .. start + n as int64, across file boundaries."""
        if start < 0 or start + n > len(self):
            raise IndexError(f"tokens {start}..{start + n} outside a stream of {len(self)}")
        maps = self._mapped()
        out = np.empty(n, dtype=np.int64)
        i = int(np.searchsorted(self.offsets, start, side="right")) - 1
        done = 0
        while done < n:
            lo = start + done - int(self.offsets[i])
            take = min(n - done, len(maps[i]) - lo)
            out[done : done + take] = maps[i][lo : lo + take]
            done += take
            i += 1
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None}


class Batches:
    """Windows of seq_len + 1 tokens (each token a target once per epoch) in a seeded random order.

    (epoch, cursor) is the loader's whole state, so a checkpoint resumes on the very next batch."""

    def __init__(self, stream: TokenStream, seq_len: int, batch_size: int, seed: int) -> None:
        self.stream, self.seq_len, self.batch_size, self.seed = stream, seq_len, batch_size, seed
        self.n_windows = (len(stream) - 1) // seq_len
        if self.n_windows < 1:
            raise InputError(
                f"{len(stream):,} tokens are too few for one sequence of {seq_len} (+1)",
                hint="the training data holds no documents (a curated output that kept none?)"
                if len(stream) == 0
                else "train on more data, or lower train.seq_len",
            )
        self.epoch, self.cursor = 0, 0
        self._order: tuple[int, np.ndarray] | None = None

    def _perm(self) -> np.ndarray:
        if self._order is None or self._order[0] != self.epoch:
            self._order = (self.epoch, np.random.default_rng([self.seed, self.epoch]).permutation(self.n_windows))
        return self._order[1]

    def next_indices(self) -> np.ndarray:
        """Window numbers of the next batch, advancing the position."""
        out = []
        while len(out) < self.batch_size:
            take = min(self.batch_size - len(out), self.n_windows - self.cursor)
            out.extend(self._perm()[self.cursor : self.cursor + take].tolist())
            self.cursor += take
            if self.cursor == self.n_windows:
                self.epoch, self.cursor = self.epoch + 1, 0
        return np.asarray(out)

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets, each (batch_size, seq_len) int64."""
        rows = np.stack([self.stream.read(int(w) * self.seq_len, self.seq_len + 1) for w in self.next_indices()])
        return rows[:, :-1], rows[:, 1:]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor, "n_windows": self.n_windows, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["n_windows"] != self.n_windows or state["seed"] != self.seed:
            raise InputError(
                f"the checkpoint was trained on {state['n_windows']:,} windows (seed {state['seed']}), "
                f"the data now has {self.n_windows:,} (seed {self.seed})",
                hint="resume on the same data and settings, or start a new run directory",
            )
        self.epoch, self.cursor = state["epoch"], state["cursor"]


def eval_windows(stream: TokenStream, seq_len: int, max_windows: int | None = None) -> np.ndarray:
    """Consecutive windows of seq_len + 1 tokens from the start, each token a target once: (N, seq_len + 1)."""
    n = (len(stream) - 1) // seq_len
    if max_windows is not None:
        n = min(n, max_windows)
    if n < 1:
        return np.zeros((0, seq_len + 1), dtype=np.int64)
    return np.stack([stream.read(w * seq_len, seq_len + 1) for w in range(n)])
