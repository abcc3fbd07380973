"""The `url_filter` stage: RefinedWeb's URL filter (Penedo et al. 2023, appendix G.1), as datatrove's URLFilter.

A document is rejected when its host or a parent domain is on the domain blocklist (`blocklisted_domain`), its URL
is on the URL blocklist (`blocklisted_url`), a word of its URL is a banned word (`banned_word`), at least
`soft_word_threshold` words of its URL are soft-banned words (`soft_banned_words`), or its URL with punctuation
removed contains a banned sub-word (`banned_subword`). datatrove names these domain/subdomain, url,
hard_blacklisted, soft_blacklisted and blacklisted_subword.

Where the lists come from. The three word lists (a few hundred words) are vendored from datatrove 0.10.1
(Apache-2.0) in filters/data/url_filter/. The domain blocklist is the UT1 blacklist (Université Toulouse 1 Capitole,
Fabrice Prigent; CC BY-SA 4.0), the snapshot FineWeb used through datatrove (its package's
assets/url_filterblacklistsv0_3_0.tar.gz: 4,558,940 domains and 19,587 URLs), vendored as
filters/data/url_filter/ut1.tar.xz (the same lines, sorted, xz: 11.5 MB instead of 17 MB), so that
`blocklist: auto` (the default) filters adult domains on any install, offline, without datatrove. `blocklist` may
instead name the user's own list: a text file of domains (one a line), a directory holding `domains` and `urls`
files (UT1's layout), or a .tar.gz / .tar.xz of one. The domains are kept as a sorted array of 64-bit hashes (36 MB
instead of ~400 MB of Python strings), built once and cached under ~/.cache/curate, then memory-mapped by every
worker.

Deviations from datatrove, on purpose: URL words are lower-cased before matching (datatrove misses `PORN`);
blocklisted URLs are compared without their scheme (UT1 lists them without one, so datatrove's comparison never
matches); every parent domain of the host is looked up, not only the registered domain, which needs no public
suffix list (tldextract) and follows UT1's meaning that a listed domain covers its subdomains.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import xxhash

from curate.errors import ConfigError
from curate.inflight import tracked
from curate.stage import Filter

log = logging.getLogger("curate.filters.url_filter")

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "url_filter"
# UT1's list as FineWeb used it (datatrove 0.10.1's assets/url_filterblacklistsv0_3_0.tar.gz), see the docstring.
UT1 = DATA_DIR / "ut1.tar.xz"

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize(word: str) -> str:
    """datatrove's normalisation of list words: lower case, letters and digits only."""
    return _NON_ALNUM.sub("", word.lower())


def read_list(lines: Iterable[str], do_normalize: bool = True) -> set[str]:
    """Entries of a list file; lines starting with # are comments (datatrove's lists disable words that way)."""
    out = set()
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word = normalize(line) if do_normalize else line.lower()
        if word:
            out.add(word)
    return out


# The 64-bit hash of domains and URLs (XXH3; 4.5 M of them hash in about a second, blake2b took seven). The cache
# files name it, so a cache of another hash is never read.
HASH_NAME = "xxh3"


def _hash(s: str) -> int:
    return xxhash.xxh3_64_intdigest(s.encode("utf-8", "surrogatepass"))


def _hashes(items: Iterable[str]) -> np.ndarray:
    arr = np.fromiter((_hash(s) for s in items), dtype=np.uint64)
    arr.sort()
    return arr


def _cache_dir() -> Path:
    base = os.environ.get("CURATE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "curate")
    return Path(base) / "url_filter"


def _source_lines(path: Path) -> tuple[Iterator[str], Iterator[str]]:
    """(domain lines, URL lines) of a blocklist: a text file, a UT1-style directory or a .tar.gz of one."""
    if path.is_dir():
        domains = path / "domains"
        urls = path / "urls"
        if not domains.is_file():
            raise ConfigError(f"url_filter: blocklist directory {path} has no 'domains' file")
        return _file_lines(domains), _file_lines(urls) if urls.is_file() else iter(())
    if path.name.endswith((".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar")):
        return _tar_lines(path, "domains"), _tar_lines(path, "urls")
    return _file_lines(path), iter(())


def _file_lines(path: Path) -> Iterator[str]:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:  # type: ignore[operator]
        yield from fh


def _tar_lines(path: Path, member: str) -> Iterator[str]:
    with tarfile.open(path) as tar:
        for info in tar:
            if info.isfile() and os.path.basename(info.name) == member:
                fh = tar.extractfile(info)
                if fh is None:
                    return
                for raw in fh:
                    yield raw.decode("utf-8", errors="replace")
                return


def load_blocklist(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(sorted domain hashes, sorted URL hashes) of a blocklist, cached by the file's path, size and mtime. The
    cache is two .npy files, mapped rather than read: UT1's 4.5 million hashes (36 MB) cost a worker no load time,
    and the workers of one machine share their pages."""
    st = path.stat()
    source = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    key = f"{source}-{hashlib.sha1(f'{st.st_size}|{int(st.st_mtime)}|{HASH_NAME}'.encode()).hexdigest()[:8]}"
    folder = _cache_dir()
    cache = {part: folder / f"blocklist-{key}.{part}.npy" for part in ("domains", "urls")}
    if all(f.is_file() for f in cache.values()):
        try:
            return np.load(cache["domains"], mmap_mode="r"), np.load(cache["urls"], mmap_mode="r")
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt
    domain_lines, url_lines = _source_lines(path)
    domains = _hashes(d for d in (_clean_domain(x) for x in domain_lines) if d)
    urls = _hashes(u for u in (_clean_url(x) for x in url_lines) if u)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for part, array in (("domains", domains), ("urls", urls)):  # urls last: both there means both complete
            tmp = cache[part].with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, array)
            os.replace(tmp, cache[part])
        # the caches of this list's earlier versions, and of the .npz format before, are read no more (36 MB each)
        for old in [*folder.glob(f"blocklist-{source}-*.npy"), *folder.glob("blocklist-*.npz")]:
            if not old.name.startswith(f"blocklist-{key}."):
                old.unlink(missing_ok=True)
    except OSError as e:  # a read-only home is fine: the list is rebuilt next time
        log.debug("cannot cache the blocklist at %s: %s", folder, e)
    log.info("url_filter: loaded %d domains and %d URLs from %s", len(domains), len(urls), path)
    return domains, urls


def _clean_domain(line: str) -> str | None:
    line = line.strip().lower()
    if not line or line.startswith("#"):
        return None
    return line.rstrip(".").removeprefix("www.")


def _clean_url(url: str) -> str | None:
    """A URL without scheme, leading www. and trailing slash: how UT1 lists URLs."""
    url = url.strip()
    if not url or url.startswith("#"):
        return None
    low = url.lower()
    for prefix in ("http://", "https://"):
        if low.startswith(prefix):
            url = url[len(prefix) :]
            break
    head, sep, rest = url.partition("/")
    head = head.lower().removeprefix("www.")
    return (head + sep + rest).rstrip("/")


def _in(sorted_hashes: np.ndarray, values: np.ndarray) -> np.ndarray:
    if len(sorted_hashes) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    idx = np.searchsorted(sorted_hashes, values)
    idx[idx >= len(sorted_hashes)] = 0
    return sorted_hashes[idx] == values


class URLFilter(Filter):
    """RefinedWeb's URL filter (Penedo et al. 2023, G.1): UT1 domain blocklist, banned and soft-banned URL words;
    datatrove's URLFilter, whose parameter names and defaults these are."""

    name: ClassVar[str] = "url_filter"
    input_columns: ClassVar[tuple[str, ...]] = ("url",)
    reasons: ClassVar[tuple[str, ...]] = (
        "blocklisted_domain",
        "blocklisted_url",
        "banned_word",
        "soft_banned_words",
        "banned_subword",
        "no_url",
    )

    # Reject when at least this many distinct soft-banned words are in the URL.
    soft_word_threshold: int = 2
    # More domains (their subdomains included) and URLs to block, besides the lists.
    extra_domains: list[str] = field(default_factory=list)
    extra_urls: list[str] = field(default_factory=list)
    # More words: banned as a whole URL word, banned as a substring of the URL, soft-banned.
    banned_words: list[str] = field(default_factory=list)
    banned_subwords: list[str] = field(default_factory=list)
    soft_banned_words: list[str] = field(default_factory=list)
    # Use the vendored word lists and the domain blocklist (false: only the extra_* and *_words given here).
    use_integrated_lists: bool = True
    # The domain/URL blocklist: "auto" (the bundled UT1 snapshot FineWeb used), a path (text file of domains, UT1
    # directory, or .tar.gz / .tar.xz of one), or null for none.
    blocklist: str | None = "auto"
    # Documents without a URL: kept (false) or rejected as no_url (true).
    reject_missing_url: bool = False

    def __post_init__(self) -> None:
        if self.soft_word_threshold < 1:
            raise ConfigError("url_filter: soft_word_threshold must be at least 1")
        if self.blocklist not in (None, "", "auto") and not Path(os.path.expanduser(self.blocklist)).exists():
            raise ConfigError(
                f"url_filter: blocklist '{self.blocklist}' does not exist",
                hint="give a domains file, a UT1 directory (domains, urls) or a .tar.gz/.tar.xz, or blocklist: auto",
            )

    def preflight(self) -> None:
        self._source()  # the bundled list is there (a clear error if an install lost it); its contents load later

    def _source(self) -> Path | None:
        """The domain blocklist's file, or None."""
        if self.blocklist == "auto":
            if not self.use_integrated_lists:
                return None
            if not UT1.is_file():  # a damaged install; say so rather than filter without the list
                raise ConfigError(
                    f"url_filter: the bundled UT1 domain blocklist {UT1} is missing",
                    hint="reinstall curate (pip install --force-reinstall curate), or give blocklist: PATH or null",
                )
            return UT1
        return Path(os.path.expanduser(self.blocklist)) if self.blocklist else None

    def setup(self) -> None:
        integrated = self.use_integrated_lists
        self._banned = read_list(self.banned_words) | (_vendored("banned_words") if integrated else set())
        self._soft = read_list(self.soft_banned_words) | (_vendored("soft_banned_words") if integrated else set())
        subwords = read_list(self.banned_subwords) | (_vendored("banned_subwords") if integrated else set())
        self._subword_re = (
            re.compile("|".join(re.escape(w) for w in sorted(subwords, key=len, reverse=True))) if subwords else None
        )
        domains = np.zeros(0, np.uint64)
        urls = np.zeros(0, np.uint64)
        source = self._source()
        if source is not None:
            domains, urls = load_blocklist(source)
        extra_d = _hashes(d for d in (_clean_domain(x) for x in self.extra_domains) if d)
        extra_u = _hashes(u for u in (_clean_url(x) for x in self.extra_urls) if u)
        self._domains = np.union1d(domains, extra_d) if len(extra_d) else domains
        self._urls = np.union1d(urls, extra_u) if len(extra_u) else urls
        self.blocklist_size = int(len(self._domains))

    def reject_batch(self, batch: pa.Table) -> list[str | None]:
        if not hasattr(self, "_domains"):
            self.setup()
        urls = batch.column("url").to_pylist()
        reasons: list[str | None] = [None] * len(urls)
        # Domain and URL lookups for the whole batch at once: host and parent-domain hashes against the list.
        owners: list[int] = []
        cands: list[int] = []
        url_hashes = np.zeros(len(urls), dtype=np.uint64)
        hosts: list[str] = []
        for i, url in enumerate(tracked(urls)):
            host = _host(url) if url else ""
            hosts.append(host)
            if not url:
                continue
            if len(self._urls):
                cleaned = _clean_url(url)
                url_hashes[i] = _hash(cleaned) if cleaned else 0
            if len(self._domains) and host:
                for d in _parents(host):
                    owners.append(i)
                    cands.append(_hash(d))
        blocked_domain = set()
        if cands:
            hit = _in(self._domains, np.array(cands, dtype=np.uint64))
            blocked_domain = {owners[k] for k in np.flatnonzero(hit)}
        blocked_url = set(np.flatnonzero(_in(self._urls, url_hashes)).tolist()) if len(self._urls) else set()
        for i, url in enumerate(urls):
            if not url:
                reasons[i] = "no_url" if self.reject_missing_url else None
                continue
            if i in blocked_domain:
                reasons[i] = "blocklisted_domain"
            elif i in blocked_url:
                reasons[i] = "blocklisted_url"
            else:
                reasons[i] = self._word_reason(url)
        return reasons

    def _word_reason(self, url: str) -> str | None:
        low = url.lower()
        words = set(_NON_ALNUM.split(low))
        if self._banned and not words.isdisjoint(self._banned):
            return "banned_word"
        if self._soft and len(words & self._soft) >= self.soft_word_threshold:
            return "soft_banned_words"
        if self._subword_re is not None and self._subword_re.search(_NON_ALNUM.sub("", low)):
            return "banned_subword"
        return None


def _vendored(name: str) -> set[str]:
    with open(DATA_DIR / f"{name}.txt", encoding="utf-8") as fh:
        return read_list(fh)


def _host(url: str) -> str:
    try:
        host = urlsplit(url if "//" in url else "//" + url).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").removeprefix("www.")


def _parents(host: str) -> list[str]:
    """The host and each parent domain, the bare top-level domain excepted: a.b.example.com -> a.b.example.com,
    b.example.com, example.com."""
    parts = host.split(".")
    return [".".join(parts[i:]) for i in range(max(1, len(parts) - 1))]
