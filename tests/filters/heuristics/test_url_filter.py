"""The url_filter stage: word lists, domain and URL blocklists (the bundled UT1 list, user-given lists)."""

from __future__ import annotations

import importlib.util
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate_filters.heuristics.url_filter import UT1, URLFilter, load_blocklist


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "cache"))


def reasons(stage: URLFilter, urls: list[str | None]) -> list[str | None]:
    stage.setup()
    return stage.reject_batch(pa.table({"url": pa.array(urls, pa.string())}))


def test_vendored_word_lists():
    stage = URLFilter(blocklist=None)
    got = reasons(
        stage,
        [
            "https://news.example.com/2024/05/city-council-budget",
            "http://example.com/free-PORN-videos",  # a banned word, in capitals
            "http://example.com/watch/freebigtitsvideos",  # banned sub-word (big tits) inside a token
            None,
        ],
    )
    assert got[0] is None
    assert got[1] == "banned_word"
    assert got[2] == "banned_subword"
    assert got[3] is None


def test_soft_banned_words_need_the_threshold():
    stage = URLFilter(blocklist=None, use_integrated_lists=False, soft_banned_words=["adult", "webcam", "dating"])
    assert reasons(stage, ["http://a.com/adult-books", "http://a.com/adult-webcam"]) == [None, "soft_banned_words"]
    stage = URLFilter(
        blocklist=None, use_integrated_lists=False, soft_banned_words=["adult", "webcam"], soft_word_threshold=1
    )
    assert reasons(stage, ["http://a.com/adult-books"]) == ["soft_banned_words"]


def test_extra_domains_cover_subdomains_and_extra_urls_ignore_the_scheme():
    stage = URLFilter(
        blocklist=None,
        use_integrated_lists=False,
        extra_domains=["bad-site.com"],
        extra_urls=["good.org/one/bad/page"],
    )
    got = reasons(
        stage,
        [
            "https://bad-site.com/x",
            "http://www.bad-site.com/",
            "https://blog.cdn.bad-site.com/a?b=c",
            "https://notbad-site.com/",
            "https://good.org/one/bad/page",
            "https://good.org/one/good/page",
        ],
    )
    assert got == ["blocklisted_domain"] * 3 + [None, "blocklisted_url", None]


def test_user_blocklist_as_text_file_directory_and_tarball(tmp_path):
    (tmp_path / "domains.txt").write_text("# my list\nspam-farm.net\nlinkwheel.io\n")
    d = tmp_path / "ut1"
    d.mkdir()
    (d / "domains").write_text("spam-farm.net\n")
    (d / "urls").write_text("example.org/hidden/spam\n")
    tar = tmp_path / "lists.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        for name in ("domains", "urls"):
            data = (d / name).read_bytes()
            info = tarfile.TarInfo(f"adult/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    urls = ["http://spam-farm.net/a", "https://x.linkwheel.io/", "http://example.org/hidden/spam", "http://ok.com/"]
    file_r = reasons(URLFilter(blocklist=str(tmp_path / "domains.txt")), urls)
    assert file_r == ["blocklisted_domain", "blocklisted_domain", None, None]
    for source in (d, tar):
        assert reasons(URLFilter(blocklist=str(source)), urls) == [
            "blocklisted_domain",
            None,
            "blocklisted_url",
            None,
        ]


def test_missing_blocklist_path_is_a_config_error(tmp_path):
    from curate.errors import ConfigError

    with pytest.raises(ConfigError):
        URLFilter(blocklist=str(tmp_path / "nope.txt"))


def test_reject_missing_url():
    assert reasons(URLFilter(blocklist=None, reject_missing_url=True), [None, ""]) == ["no_url", "no_url"]


def test_a_changed_list_replaces_its_cache(tmp_path):
    listing = tmp_path / "domains.txt"
    listing.write_text("spam-farm.net\n")
    cache = tmp_path / "cache" / "url_filter"
    cache.mkdir(parents=True)
    (cache / "blocklist-0123456789abcdef.npz").write_bytes(b"the format before")
    assert reasons(URLFilter(blocklist=str(listing)), ["http://spam-farm.net/"]) == ["blocklisted_domain"]
    first = sorted(p.name for p in cache.iterdir())
    assert len(first) == 2 and all(name.endswith(".npy") for name in first)  # the old format's file is gone
    listing.write_text("linkwheel.io\n")
    os.utime(listing, (1_000_000_000, 1_000_000_000))
    assert reasons(URLFilter(blocklist=str(listing)), ["http://spam-farm.net/", "http://linkwheel.io/"]) == [
        None,
        "blocklisted_domain",
    ]
    second = sorted(p.name for p in cache.iterdir())
    assert len(second) == 2 and not set(first) & set(second)  # the earlier version's cache went with it


def test_the_bundled_ut1_list_blocks_adult_domains_by_default(tmp_path):
    stage = URLFilter()  # blocklist: auto, the UT1 snapshot shipped in the package: no datatrove, no network
    got = reasons(stage, ["http://0-1avsex.com/page", "http://sub.0-1avsex.com/", "https://en.wikipedia.org/wiki/Main_Page"])
    assert got == ["blocklisted_domain", "blocklisted_domain", None]
    assert stage.blocklist_size == 4_558_940
    # the hashed list is cached, so the next worker starts fast: it maps the cache instead of reading it
    assert len(list((tmp_path / "cache" / "url_filter").glob("blocklist-*.npy"))) == 2
    again = URLFilter()
    assert reasons(again, ["http://0-1avsex.com/page", "https://en.wikipedia.org/wiki/Main_Page"]) == got[::2]
    assert isinstance(again._domains, np.memmap) and again.blocklist_size == stage.blocklist_size


def test_the_bundled_list_is_the_one_datatrove_ships(tmp_path):
    """The vendored UT1 list holds exactly the domains and URLs of datatrove's asset (FineWeb's list)."""
    spec = importlib.util.find_spec("datatrove")
    asset = Path(spec.submodule_search_locations[0]) / "assets/url_filterblacklistsv0_3_0.tar.gz" if spec else None
    if asset is None or not asset.is_file():
        pytest.skip("datatrove (whose package ships the UT1 list) is not installed")
    ours_d, ours_u = load_blocklist(UT1)
    theirs_d, theirs_u = load_blocklist(asset)
    assert np.array_equal(ours_d, np.unique(theirs_d)) and np.array_equal(ours_u, np.unique(theirs_u))


def test_parity_with_datatrove_url_filter_on_the_word_lists():
    dt = pytest.importorskip("datatrove.pipeline.filters.url_filter")
    from datatrove.data import Document

    theirs = dt.URLFilter(use_integrated_lists=False, banned_words=["casino"], soft_banned_words=["cheap", "pills"])
    ours = URLFilter(
        blocklist=None, use_integrated_lists=False, banned_words=["casino"], soft_banned_words=["cheap", "pills"]
    )
    urls = ["http://a.com/casino-night", "http://a.com/cheap-pills", "http://a.com/cheap-food", "http://a.com/news"]
    expected = [theirs.filter(Document(text="", id="x", metadata={"url": u})) for u in urls]
    got = reasons(ours, urls)
    assert [e is True for e in expected] == [g is None for g in got]
