"""HTML -> main text: the `trafilatura` stage (FineWeb's extractor) and the faster `resiliparse` stage (DCLM's).

Both decode the page bytes themselves (HTTP charset, then <meta>, then UTF-8, then detection), bound the time
spent on one document without a process per document (see Deadline), reject what cannot be extracted with a named
reason (`extraction_failed`, `extraction_timeout`, `empty_text`), and drop the `html` column. Records that already
carry text and no HTML (WET `conversion` records) pass through unchanged.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import re
import signal
import threading
import time
from typing import Any, ClassVar, Literal

import pyarrow as pa

from curate.errors import ConfigError, MissingDependency, require
from curate.inflight import tracked
from curate.stage import Mapper

log = logging.getLogger("curate.filters.extraction")

# -- charset detection and decoding -----------------------------------------------------------------------------

_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""",
    re.IGNORECASE,
)
# What browsers do (WHATWG Encoding): these labels mean a superset encoding.
_SUPERSETS = {
    "iso-8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "x-sjis": "shift_jis",
    "sjis": "shift_jis",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
}
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _codec(label: str | None) -> str | None:
    """A Python codec name for a charset label, or None if the label is unknown (or names UTF-16 wrongly)."""
    if not label:
        return None
    label = label.strip().lower()
    label = _SUPERSETS.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A page that says utf-16 in an ASCII <meta> tag is not UTF-16 (HTML spec: treat it as UTF-8).
    return "utf-8" if name.startswith("utf-16") else name


def decode_html(payload: bytes, declared: str | None = None) -> tuple[str, str]:
    """(text, how) for HTML bytes: BOM, then UTF-8 when the bytes are valid UTF-8 (a page declared latin-1 that
    decodes as UTF-8 is UTF-8: servers mislabel, multi-byte sequences do not happen by chance), then the HTTP
    charset, then <meta charset>, then detection (cchardet when installed, else charset_normalizer), then UTF-8
    with replacement characters. `how` names the step that decided."""
    for bom, name in _BOMS:
        if payload.startswith(bom):
            return payload.decode(name, errors="replace"), "bom"
    try:
        return payload.decode("utf-8"), "utf8"
    except UnicodeDecodeError:
        pass
    tried = {"utf-8"}
    for how, label in (("declared", declared), ("meta", _meta_charset(payload))):
        name = _codec(label)
        if name and name not in tried:
            tried.add(name)
            try:
                return payload.decode(name), how
            except UnicodeDecodeError:
                pass  # the declaration lies (common): try the next source
    name = _codec(_detect(payload))
    if name and name not in tried:
        try:
            return payload.decode(name), "detected"
        except UnicodeDecodeError:
            pass
    return payload.decode("utf-8", errors="replace"), "fallback"


def _meta_charset(payload: bytes) -> str | None:
    m = _META_CHARSET.search(payload[:4096])
    return m.group(1).decode("ascii", errors="ignore") if m else None


def _detect(payload: bytes) -> str | None:
    sample = payload if len(payload) <= 65536 else payload[:32768] + payload[-32768:]
    try:
        import cchardet  # faust-cchardet: fast, what trafilatura and datatrove prefer when present

        return cchardet.detect(sample).get("encoding")
    except ImportError:
        pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(sample).best()
        return best.encoding if best else None
    except ImportError:
        return None


# -- the per-document time limit -------------------------------------------------------------------------------


class ExtractionTimeout(Exception):
    """Raised inside the extraction of a document that ran past the stage's `timeout`."""


class Deadline:
    """Bounds one call's duration in this thread, at a cost of a few microseconds per call.

    In the main thread (Ray workers and the local runner run stages there) a SIGALRM interval timer raises
    ExtractionTimeout in the extraction. Elsewhere a watchdog thread injects it with PyThreadState_SetAsyncExc.
    Both interrupt Python code only between bytecodes: a single C call (one regex, one lxml parse) runs to its
    end first, which is why the reader also bounds the page size. datatrove instead runs every document in a
    sandbox process, paying an IPC round trip (pickling the page both ways) per document.
    """

    def __init__(self) -> None:
        self._armed = False
        self.mode = ""
        self._thread_id = 0
        self._cond = threading.Condition()
        self._deadline = 0.0
        self._generation = 0
        self._watchdog: threading.Thread | None = None

    def _signal_ok(self) -> bool:
        """SIGALRM can bound this call: we are in the main thread and nobody else uses SIGALRM."""
        if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
            return False
        previous = signal.getsignal(signal.SIGALRM)
        if previous is _on_alarm:
            return True
        if previous in (signal.SIG_DFL, signal.SIG_IGN, None):
            signal.signal(signal.SIGALRM, _on_alarm)  # one handler for every Deadline of the process
            return True
        return False

    def _watch(self) -> None:
        with self._cond:
            while True:
                if not self._armed:
                    self._cond.wait()
                    continue
                generation = self._generation
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                if self._armed and generation == self._generation:
                    self._armed = False
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(self._thread_id), ctypes.py_object(ExtractionTimeout)
                    )

    def arm(self, seconds: float) -> None:
        # decided per call: a worker may call from the main thread (local runner, Ray tasks) or from another
        # thread (Ray actors); the signal handler would run in the main thread, so only there is SIGALRM right
        if self._signal_ok():
            global _signal_owner
            self.mode = "signal"
            _signal_owner = self
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, seconds)
            return
        self.mode = "thread"
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, daemon=True, name="curate-extraction-deadline")
            self._watchdog.start()
        with self._cond:
            self._thread_id = threading.get_ident()
            self._generation += 1
            self._deadline = time.monotonic() + seconds
            self._armed = True
            self._cond.notify()

    def disarm(self) -> None:
        if self.mode == "signal":
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
        elif self.mode == "thread":
            with self._cond:
                self._armed = False


_signal_owner: Deadline | None = None


def _on_alarm(signum: int, frame: Any) -> None:
    owner = _signal_owner
    if owner is not None and owner._armed:
        owner._armed = False
        raise ExtractionTimeout()


# -- the stages ----------------------------------------------------------------------------------------------------


class HtmlExtractor(Mapper):
    """Shared by the extraction stages: decoding, the time limit, pass-through of text records, reasons."""

    input_columns: ClassVar[tuple[str, ...]] = ("html",)
    output_columns: ClassVar[dict[str, pa.DataType]] = {"text": pa.string()}
    drop_columns: ClassVar[tuple[str, ...]] = ("html",)
    reasons: ClassVar[tuple[str, ...]] = ("no_html", "extraction_failed", "extraction_timeout", "empty_text")

    # Seconds one document may take (datatrove's default: 1); 0 or less: no limit.
    timeout: float = 1.0

    def setup(self) -> None:
        self._deadline = Deadline()
        self._warned = False

    # True: extract() also takes the page's UTF-8 bytes (utf8=...) where the payload was UTF-8 already
    takes_utf8: ClassVar[bool] = False

    def extract(self, html: str, url: str | None) -> str | None:
        raise NotImplementedError

    def map_batch(self, batch: pa.Table) -> tuple[pa.Table, list[str | None]]:
        if not hasattr(self, "_deadline"):
            self.setup()
        n = batch.num_rows
        names = batch.column_names
        htmls = batch.column("html").to_pylist()
        charsets = batch.column("charset").to_pylist() if "charset" in names else [None] * n
        urls = batch.column("url").to_pylist() if "url" in names else [None] * n
        texts = batch.column("text").to_pylist() if "text" in names else [None] * n
        out: list[str | None] = [None] * n
        reasons: list[str | None] = [None] * n
        for i in tracked(range(n)):
            html = htmls[i]
            if html is None:
                if texts[i] and texts[i].strip():
                    out[i] = texts[i]  # a WET conversion record: already text
                    self.count("passthrough_text")
                else:
                    reasons[i] = "no_html"
                continue
            utf8 = None
            if isinstance(html, bytes):
                page, how = decode_html(html, charsets[i])
                self.count(f"charset_{how}")
                if how == "utf8" and self.takes_utf8:
                    utf8 = html  # the page's UTF-8 bytes: an engine that parses bytes need not encode it again
            else:
                page = html
            text, reasons[i] = self._extract_one(page, urls[i], utf8)
            out[i] = text
        if self.timeout > 0 and self._deadline.mode:
            # stats.json shows which mechanism bounded the pages: SIGALRM (main thread) or the watchdog thread
            self.count(f"time_limit_{self._deadline.mode}", n)
        table = batch.drop_columns([c for c in ("html", "text") if c in names])
        table = table.append_column("text", pa.array(out, pa.string()))
        return table, reasons

    def _extract_one(self, page: str, url: str | None, utf8: bytes | None = None) -> tuple[str | None, str | None]:
        limit = self.timeout > 0
        try:
            if limit:
                self._deadline.arm(self.timeout)
            try:
                text = self.extract(page, url) if utf8 is None else self.extract(page, url, utf8)
            finally:
                if limit:
                    self._deadline.disarm()
        except ExtractionTimeout:
            return None, "extraction_timeout"
        except (RecursionError, ValueError, TypeError, LookupError, AttributeError, IndexError, KeyError) as e:
            # trafilatura and lxml raise these on malformed pages; the page is the problem, not the stage
            if not self._warned:
                self._warned = True
                log.warning("extraction raised %s on %s: %s (logged once)", type(e).__name__, url, e)
            return None, "extraction_failed"
        except Exception as e:  # lxml's ParserError, XMLSyntaxError and friends
            if type(e).__module__.startswith(("lxml", "trafilatura", "resiliparse", "selectolax")):
                return None, "extraction_failed"
            raise
        if text is _FAILED:
            return None, "extraction_failed"
        if not text or not text.strip():
            return None, "empty_text"
        return text, None


_FAILED: Any = object()
_WARMUP = (
    "<html><head><title>t</title></head><body><nav><a href='/'>Home</a></nav><article><h1>Title</h1>"
    + "<p>A first paragraph of text that is long enough to be kept by the extractor as main content.</p>" * 4
    + "</article><footer>Footer</footer></body></html>"
)  # extract() returns it when the page could not be parsed at all


class Trafilatura(HtmlExtractor):
    """Main text with trafilatura (Barbaresi 2021), as FineWeb does (favour_precision, no comments); datatrove's
    Trafilatura, whose parameter names and defaults these are."""

    name: ClassVar[str] = "trafilatura"

    # Prefer less text but cleaner (FineWeb: true).
    favour_precision: bool = True
    # Prefer more text when unsure (trafilatura's favor_recall); exclusive with favour_precision.
    favour_recall: bool = False
    # Drop repeated text segments (trafilatura's LRU of paragraphs; datatrove's default: true). true: repeats within
    # one page, so a page's text never depends on what the worker extracted before it (on which worker, in which
    # run, before or after a resume); "worker": trafilatura's own process-wide cache, as datatrove runs it (also
    # drops boilerplate repeated across a worker's pages, but the output then depends on placement and order; with
    # engine.isolation: process, the default, each batch starts from the worker's cache as it was after setup).
    deduplicate: bool | Literal["worker"] = True
    # Skip trafilatura's fallback extractors (readability, jusText): faster, a little less recall.
    fast: bool = False
    include_comments: bool = False
    include_tables: bool = True
    include_links: bool = False
    # Keep headings, lists and emphasis as markdown (with output_format markdown).
    include_formatting: bool = False
    # txt or markdown.
    output_format: str = "txt"
    # Pages with more HTML elements than this are not extracted (None: no limit).
    max_tree_size: int | None = None
    # Below this many characters trafilatura tries its fallback extractors (trafilatura: MIN_EXTRACTED_SIZE).
    min_extracted_size: int = 250

    def __post_init__(self) -> None:
        if self.output_format not in ("txt", "markdown"):
            raise ConfigError(f"trafilatura: output_format must be txt or markdown, not {self.output_format!r}")
        if self.favour_precision and self.favour_recall:
            raise ConfigError("trafilatura: favour_precision and favour_recall exclude each other")
        if self.deduplicate not in (True, False, "worker"):
            raise ConfigError(f"trafilatura: deduplicate must be true, false or worker, not {self.deduplicate!r}")

    def preflight(self) -> None:
        _import_trafilatura()

    def setup(self) -> None:
        super().setup()
        trafilatura = _import_trafilatura()
        from copy import deepcopy

        from trafilatura.settings import DEFAULT_CONFIG

        config = deepcopy(DEFAULT_CONFIG)
        config.set("DEFAULT", "MIN_EXTRACTED_SIZE", str(self.min_extracted_size))
        config.set("DEFAULT", "MAX_TREE_SIZE", "" if self.max_tree_size is None else str(self.max_tree_size))
        config.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")
        self._config = config
        self._extract = trafilatura.extract
        from trafilatura.deduplication import LRU_SIZE, LRUCache
        from trafilatura.utils import load_html

        self._load_html = load_html
        self._page_cache = (lambda: LRUCache(maxsize=LRU_SIZE)) if self.deduplicate is True else None
        # The first call imports and compiles a great deal; let it not count against a real page's time limit.
        self.extract(_WARMUP, None)

    def extract(self, html: str, url: str | None) -> str | None:
        tree = self._load_html(html)
        if tree is None:
            return _FAILED
        return self._extract(
            tree,
            url=url,
            fast=self.fast,
            favor_precision=self.favour_precision,
            favor_recall=self.favour_recall,
            include_comments=self.include_comments,
            include_tables=self.include_tables,
            include_links=self.include_links,
            include_formatting=self.include_formatting,
            output_format=self.output_format,
            # trafilatura counts repeats in the cache it is given (deduplication.duplicate_test): a fresh one per page
            deduplicate=self._page_cache() if self._page_cache else self.deduplicate == "worker",
            config=self._config,
        )


def _import_trafilatura() -> Any:
    try:
        import trafilatura
        import trafilatura.settings  # noqa: F401
    except ImportError as e:
        err = MissingDependency("trafilatura", "web", what="the trafilatura stage")
        if e.name != "trafilatura":  # installed, but one of its own imports fails (e.g. lxml_html_clean)
            err.message = f"trafilatura cannot be imported: {e}"
        err.hint = "reinstall curate (pip install -e .), which brings trafilatura and what it needs"
        raise err from e
    return trafilatura


class Resiliparse(HtmlExtractor):
    """Main text with Resiliparse (Bevendorff et al. 2018), DCLM's extractor: several times faster than
    trafilatura, lower precision on trafilatura's benchmark (see bench/extraction_quality.py). Needs
    `pip install 'curate[fast]'`."""

    name: ClassVar[str] = "resiliparse"

    # Keep only the main content (drop navigation, footers, ...); DCLM: true.
    main_content: bool = True
    # Keep alt texts of images.
    alt_texts: bool = False
    # Render lists with bullets.
    list_bullets: bool = True
    # Keep <pre>/<code> blocks verbatim.
    preserve_formatting: bool = True

    def preflight(self) -> None:
        _import_resiliparse()

    def setup(self) -> None:
        super().setup()
        self._to_text, self._parse = _import_resiliparse()

    def extract(self, html: str, url: str | None) -> str | None:
        tree = self._parse(html)
        if tree.body is None:
            return _FAILED
        return self._to_text(
            tree,
            main_content=self.main_content,
            alt_texts=self.alt_texts,
            list_bullets=self.list_bullets,
            preserve_formatting=self.preserve_formatting,
        )


def _import_resiliparse() -> tuple[Any, Any]:
    """(extract_plain_text, HTMLTree.parse), or MissingDependency with the install hint."""
    html2text = require("resiliparse.extract.html2text", "resiliparse", "fast", what="the resiliparse stage")
    html = require("resiliparse.parse.html", "resiliparse", "fast", what="the resiliparse stage")
    return html2text.extract_plain_text, html.HTMLTree.parse
