"""The reader contract: a reader turns the `input:` section into read units, and a unit into pyarrow batches."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar, NamedTuple

import fsspec
import pyarrow as pa
from fsspec.core import url_to_fs

from curate.counting import Counting
from curate.errors import InputError


class ReadUnit(NamedTuple):
    """A piece of input read by one task: a file, or a slice of one (`part` of `parts`)."""

    path: str
    key: str  # stable name of this unit, used for accounting and resume
    size_bytes: int = 0
    part: int = 0
    parts: int = 1
    options: Any = None  # reader-specific (e.g. the row groups of a Parquet file)


@dataclass(kw_only=True)
class Reader(Counting):
    """Base of input formats. Fields are the `input:` keys besides `format`. `self.count(name)` tallies something
    read that is not a document (a WARC request record): stats.json's `input` counters, once per unit even when a
    read is retried."""

    format: ClassVar[str] = ""
    # Extensions a directory given as `path` is searched for, e.g. (".parquet",).
    extensions: ClassVar[tuple[str, ...]] = ()

    path: str | list[str]
    batch_rows: int = 1000

    def files(self) -> list[str]:
        return expand_paths(self.path, self.extensions)

    def units(self) -> list[ReadUnit]:
        """One unit per file by default; readers of splittable formats override."""
        return [ReadUnit(f, f, file_size(f)) for f in self.files()]

    def schema(self) -> pa.Schema:
        """Columns of the batches this reader yields (reserved engine columns aside)."""
        raise NotImplementedError

    def read(self, unit: ReadUnit) -> Iterator[pa.Table]:
        """Batches of documents; records that cannot be decoded are yielded as rejected rows
        (see curate.schema.reject_rows), never silently dropped."""
        raise NotImplementedError


def join(base: str, *parts: str) -> str:
    """`base/part/...` for local paths and fsspec URLs alike (no doubled slashes)."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def file_size(path: str) -> int:
    """The size of a local file or fsspec URL in bytes; 0 where it cannot be had."""
    try:
        fs, p = url_to_fs(path)
        return int(fs.size(p) or 0)
    except Exception:
        return 0


# Input path schemes curate resolves itself, before fsspec sees the path ("sample:crawl?pages=N" -> a generated
# local file): name -> fn(path) -> local path(s) or fsspec URL(s). The entry-point group `curate.schemes` is how
# packages (curate's own sample crawl included) add one; register_scheme() is for code that does it at import time.
SCHEME_GROUP = "curate.schemes"
_schemes: dict[str, Callable[[str], str | list[str]]] = {}
_scheme_entry_points: dict[str, Any] | None = None


def register_scheme(name: str, fn: Callable[[str], str | list[str]]) -> None:
    """Resolve input paths `name:...` with `fn(path)`, which returns the local path(s) or fsspec URL(s) to read;
    it overrides an entry point of the same name."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"scheme name must be letters, digits, '-' or '_', not {name!r}")
    _schemes[name] = fn


def _scheme(path: str) -> Callable[[str], str | list[str]] | None:
    """The resolver of `path`'s scheme, or None when it has none that curate knows (fsspec then opens it)."""
    global _scheme_entry_points
    name, sep, _ = path.partition(":")
    if not sep or not name:
        return None
    fn = _schemes.get(name)
    if fn is not None:
        return fn
    if _scheme_entry_points is None:
        _scheme_entry_points = {ep.name: ep for ep in entry_points(group=SCHEME_GROUP)}
    ep = _scheme_entry_points.get(name)
    if ep is None:
        return None
    try:
        fn = _schemes[name] = ep.load()
    except ImportError as e:
        raise InputError(f"input scheme '{name}:' could not be imported: {e}", hint="is its package installed?") from e
    return fn


def expand_paths(path: str | list[str], extensions: tuple[str, ...] = ()) -> list[str]:
    """Expand local paths, directories, globs, fsspec URLs and registered schemes into a sorted list of files.

    A path that does not exist or a glob that matches nothing is an InputError naming it."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths:
        raise InputError("input.path is empty", hint="give a file, a directory or a glob")
    out: list[str] = []
    for p in paths:
        resolve = _scheme(p)
        if resolve is not None:
            resolved = resolve(p)
            out.extend([resolved] if isinstance(resolved, str) else resolved)
            continue
        try:
            fs, root = url_to_fs(p)
        except (ValueError, ImportError) as e:
            raise InputError(f"cannot open input path '{p}': {e}") from e
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        local = protocol in ("file", "local")
        if fsspec.utils.has_magic(root) if hasattr(fsspec.utils, "has_magic") else any(c in root for c in "*?["):
            matches = sorted(m for m in fs.glob(root) if not fs.isdir(m))
            if not matches:
                raise InputError(f"input glob '{p}' matches no files", hint="check the path and the pattern")
        elif fs.isdir(root):
            matches = sorted(
                m
                for m in fs.find(root)
                if not os.path.basename(m).startswith((".", "_"))
                and (not extensions or any(m.endswith(e) or m.endswith(e + ".gz") for e in extensions))
            )
            if not matches:
                want = f" with extension {', '.join(extensions)}" if extensions else ""
                raise InputError(f"input directory '{p}' holds no files{want}")
        elif fs.exists(root):
            matches = [root]
        else:
            raise InputError(f"input path '{p}' does not exist", hint="check the path, or pass --input")
        for m in matches:
            out.append(os.path.abspath(m) if local else fs.unstrip_protocol(m))
    return out


def open_input(path: str, mode: str = "rb", compression: str | None = "infer", block_size: int | None = None) -> Any:
    """Open a local path or fsspec URL for reading, decompressing by extension when asked. `block_size`: the bytes
    a remote file (object storage, HTTP) fetches per request, read-ahead included; None keeps the filesystem's
    default (s3fs: 50 MiB, more than a reader of a small part of a large file wants)."""
    if block_size is None:
        return fsspec.open(path, mode, compression=compression).open()
    fs, p = url_to_fs(path)
    return fs.open(p, mode, block_size=block_size, compression=compression)
