"""`sample:` input paths: "sample:crawl?pages=N&seed=S" (or "sample:crawl-ko?...", the Korean crawl of
curate/samples/korean.py) -> a crawl generated once into $CURATE_CACHE."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl

from curate.errors import InputError
from curate.samples.writer import VERSION, write_sample_crawl

DEFAULT_PAGES = 2000
SAMPLES = ("crawl", "crawl-ko")


def cache_dir() -> Path:
    base = os.environ.get("CURATE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "curate")
    return Path(base) / "samples"


def parse_sample(path: str) -> tuple[str, dict[str, int]]:
    """("crawl", {"pages": 2000, "seed": 0}) from "sample:crawl?pages=2000&seed=0" (or "crawl-ko")."""
    body = path.removeprefix("sample:")
    name, _, query = body.partition("?")
    if name not in SAMPLES:
        raise InputError(
            f"unknown sample '{path}'",
            hint="the sample inputs are: sample:crawl[?pages=N&seed=S], sample:crawl-ko[...]",
        )
    params = {"pages": DEFAULT_PAGES, "seed": 0}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in params:
            raise InputError(f"{path}: unknown parameter '{key}'", hint=f"sample:{name} takes pages and seed")
        try:
            params[key] = int(value)
        except ValueError:
            raise InputError(f"{path}: {key} must be an integer, not '{value}'") from None
    if params["pages"] < 1:
        raise InputError(f"{path}: pages must be at least 1")
    return name, params


def materialize(path: str) -> str:
    """The local file behind a `sample:` input path, generated on first use (atomically) and reused after."""
    name, params = parse_sample(path)
    captures = None
    tag = ""
    if name == "crawl-ko":
        from curate.samples import korean

        source, captures = korean.captures(params["pages"], params["seed"])
        tag = f"-ko-{source}-k{korean.VERSION}"  # the sentences differ with and without the corpus
    out = cache_dir() / f"sample-crawl{tag}-{params['pages']}p-seed{params['seed']}-v{VERSION}.warc.gz"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            write_sample_crawl(tmp, params["pages"], params["seed"], captures=captures)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                tmp.unlink()
    return str(out)
