"""Page -> text blocks with the features the fast_extract classifier reads, and back to text.

A block is the text between two block-level boundaries (what a browser lays out as one paragraph, heading, list item
or table cell); a <br> is a line break inside its block. Each block carries its own text statistics (length, link
density, punctuation), the tags and the class/id vocabulary of its ancestors (trafilatura's boilerplate tokens and
more, as bits), the size, link density and punctuation of the containers around it, its position, and whether it
lies in the first element that each step of trafilatura's main-content cascade (BODY_XPATH) would select.

Where the time goes, and why it is little: libxml2 parses; lxml's C functions drop non-content subtrees and merge
inline markup (strip_elements, strip_tags), so that every text node left is one block; one walk in document order
(compiled: _walk.pyx, over libxml2's nodes; in Python, _walk, where it is not built) touches each text node once and
each element above a text node once (ancestor bits are memoised, nothing recurses, so nesting depth costs nothing);
container totals come from prefix sums (a container's blocks are a contiguous run in document order) in numpy.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np
from lxml import etree

# -- what the walk drops, keeps and breaks on ------------------------------------------------------------------

# Removed with their subtree before the walk (the tail text after each stays): never main text. trafilatura removes
# the same in tree_cleaning (MANUALLY_CLEANED), including nav, footer, aside, menu, figure and time (dates).
DROP_TAGS = (
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed", "applet", "canvas",
    "video", "audio", "map", "area", "head", "select", "option", "optgroup", "button", "input", "textarea",
    "datalist", "dialog", "frameset", "frame", "noframes", "link", "meta", "nav", "footer", "aside", "menu",
    "menuitem", "figure", "picture", "source", "track", "label", "legend", "fieldset", "marquee", "blink",
    "noindex", "param", "progress", "output", "rp", "rt", "rtc", "time", "use", "fencedframe", "title",
)  # fmt: skip

# Inline markup merged into the parent's text before the walk (trafilatura strips the same: MANUALLY_STRIPPED and
# its formatting tags); <a> stays for link density, <br> and <hr> for line breaks.
STRIP_TAGS = (
    "span", "b", "strong", "i", "em", "u", "font", "small", "big", "abbr", "acronym", "cite", "code", "sub", "sup",
    "mark", "ins", "del", "s", "strike", "tt", "kbd", "samp", "var", "q", "dfn", "bdi", "bdo", "nobr", "wbr", "img",
    "data", "ruby", "tbody", "thead", "tfoot", "colgroup", "col", "image",
)  # fmt: skip

# Elements that start and end a block (a line of output).
BLOCK_TAGS = frozenset(
    "html body p div h1 h2 h3 h4 h5 h6 li ul ol dl dt dd table tr caption blockquote pre section article main "
    "header address center details summary figcaption hr form td th hgroup search".split()
)
LIST_ITEMS = frozenset(("li", "dt", "dd"))
HEADINGS = frozenset(("h1", "h2", "h3", "h4", "h5", "h6"))

# Owner-tag groups: one feature column each.
TAG_GROUPS = (
    ("p",),
    ("div", "center", "body", "html"),
    ("h1",),
    ("h2",),
    ("h3", "h4", "h5", "h6"),
    ("li", "dt", "dd"),
    ("td", "th"),
    ("tr", "table", "caption"),
    ("blockquote",),
    ("pre",),
    ("section", "article", "main"),
    ("header", "hgroup", "address", "summary", "details", "figcaption", "form", "search"),
    ("ul", "ol", "dl"),
)
_TAG_GROUP = {t: i for i, g in enumerate(TAG_GROUPS) for t in g}

# -- the class / id vocabulary: trafilatura's boilerplate and content tokens (xpaths.py), grouped, plus common ones

# (name, pattern) over the lower-cased "class id" string; each is one bit. Order matters only for speed.
VOCAB: tuple[tuple[str, str], ...] = (
    ("nav", r"nav|menu|breadcrumb|crumb|pagina|pager|paging|skip|jump|toolbar|tabs\b"),
    ("footer", r"footer|\bfoot\b|copyright|colophon|impressum|imprint|legal|disclaimer"),
    ("bottom", r"bottom"),
    ("header", r"header|masthead|topbar|top-bar|branding|logo|brand"),
    ("sidebar", r"sidebar|side-bar|sidebox|\baside|\brail\b|secondary|marginal|col-right|right-col|sidecol"),
    ("widget", r"widget"),
    ("comment", r"comment|disqus|respond|reply|discussion|replies|forum|kommentar"),
    ("share", r"shar|social|addthis|sociable|facebook|twitter|whatsapp|pinterest|linkedin|\bprint|email"),
    ("follow", r"follow|subscri|newsletter|signup|sign-up|\babo\b|rss|feed"),
    ("related", r"related|elated|recommend|suggest|also|further|weitere|mehr-|more-|-more|readmore|read-more"),
    ("popular", r"popular|trending|most-|latest|recent|top-?stories|-stories|hot"),
    ("teaser", r"teaser|promo|highlight|spotlight|featured|feature"),
    (
        "ad",
        r"(?:^|[\s_-])ads?(?:$|[\s_-])|-ad-|advert|sponsor|banner|dfp|commercial|anzeige|werbung|adsense|outbrain"
        r"|taboola|criteo|paid|partner|affiliate",
    ),
    ("consent", r"cookie|consent|gdpr|privacy|permission|modal|popup|pop-up|overlay|lightbox|dialog|notice"),
    ("paywall", r"paywall|premium|login|log-in|register|account|member|plus"),
    ("meta", r"meta|info|details|dateline|timestamp|posted|publish|updated"),
    ("author", r"author|byline|autor|writer|contributor|profile|bio\b|avatar|user"),
    ("date", r"date|time|datum|\bday\b|month|year"),
    ("tags", r"\btags?\b|tag-|-tag|categor|keyword|topic|label|schlagw|rubrik"),
    ("caption", r"caption|credit|photo|image|\bimg|figure|gallery|slide|media|video|picture|thumb|copyright"),
    ("hidden", r"hidden|\bhide|-hide|invisible|sr-only|screen-reader|visually|offscreen|noprint|collapse|display-none"),
    ("search", r"search|suche|query|\bform\b|filter"),
    ("rating", r"rating|vote|like|\bstar|review|score|poll"),
    ("button", r"button|btn|icon|\bcta\b|action"),
    ("listing", r"list|item|card|grid|tile|\bbox\b|-box|box-|module|block|unit|cell"),
    ("link", r"\blinks?\b|-link|link-"),
    ("article", r"article|artikel|beitrag|story|stories|news|\bpost\b|post-|-post|\bentry|entry-"),
    ("content", r"content|inhalt|\bmain\b|main-|-main|\bbody\b|body-|-body|\bcopy\b"),
    ("text", r"text|prose|\brich|paragraph|\bpara|lead|intro|summary|abstract|teaser-text|description"),
    ("title", r"title|headline|heading|\bhead\b|titel|ueberschrift|\bh[1-6]\b"),
    ("column", r"column|\bcol\b|col-|\brow\b|wrap|container|inner|outer|layout|section|region|area|page|site"),
    ("single", r"single|detail|full|page-|blog"),
    ("contact", r"contact|kontakt|address|adresse|phone|location|map"),
    ("sitewide", r"site-|global|common|shared|universal"),
)
_VOCAB_RE = re.compile("|".join(f"(?P<{name}>{pat})" for name, pat in VOCAB))
_VOCAB_BIT = {name: 1 << i for i, (name, _) in enumerate(VOCAB)}
N_VOCAB = len(VOCAB)


def _required_literal(alternative: str) -> str:
    """The longest run of plain characters that every match of one top-level alternative of a VOCAB pattern
    contains (groups, character classes, optional characters and anchors cut it)."""
    cut = re.sub(r"\(\?:[^)]*\)|\[[^\]]*\]|.\?|\\b|\^|\$", "|", alternative)
    literal = max(cut.split("|"), key=len)
    if not re.fullmatch(r"[a-z-]+", literal):
        raise ValueError(f"VOCAB alternative {alternative!r}: no plain literal in it")
    return literal


def _alternatives(pattern: str) -> list[str]:
    """A pattern's top-level alternatives ('|' outside parentheses and classes)."""
    out, depth, start, in_class = [], 0, 0, False
    for i, ch in enumerate(pattern):
        if pattern[i - 1 : i] == "\\":
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
    out.append(pattern[start:])
    return out


# _vocab_mask's matcher, exact and fast: the combined pattern scans a name left to right, and at each position the
# first group (in VOCAB order) that matches there wins and the scan goes on after its match. Python's re tries every
# alternative at every position (38 us a name); here a group is tried only when a name holds one of the literals
# its matches must contain, found by a dict lookup per three characters of the name, so a name costs a few us.
_GROUP_RE = [re.compile(pat) for _, pat in VOCAB]
_GROUP_LITERALS = [tuple({_required_literal(a) for a in _alternatives(pat)}) for _, pat in VOCAB]
_TRIGRAMS: dict[str, list[tuple[str, int]]] = {}  # a literal's first three characters -> (literal, group)
_SHORT: list[tuple[str, int]] = []  # literals under three characters, tested with `in`
for _g, _lits in enumerate(_GROUP_LITERALS):
    for _lit in _lits:
        if len(_lit) >= 3:
            _TRIGRAMS.setdefault(_lit[:3], []).append((_lit, _g))
        else:
            _SHORT.append((_lit, _g))


def _scan_mask(name: str) -> int:
    """Vocabulary bits of one class/id name: the same as scanning it with _VOCAB_RE.finditer."""
    cand = 0
    trigrams = _TRIGRAMS
    for i in range(len(name) - 2):
        hits = trigrams.get(name[i : i + 3])
        if hits is not None:
            for lit, g in hits:
                if name.startswith(lit, i):
                    cand |= 1 << g
    for lit, g in _SHORT:
        if lit in name:
            cand |= 1 << g
    if not cand:
        return 0
    groups: list[tuple[int, re.Pattern[str]]] = []
    while cand:  # the set bits, lowest (first in VOCAB order) first
        low = cand & -cand
        groups.append((low, _GROUP_RE[low.bit_length() - 1]))
        cand ^= low
    if len(groups) == 1:  # one group: any match of it sets its bit, as finditer's would
        return groups[0][0] if groups[0][1].search(name) else 0
    # several: the combined scan's next match starts where the leftmost of the groups' next matches starts, and
    # the first group (VOCAB order) matching there wins; the scan goes on from the end of that match
    bits = 0
    i = 0
    while groups:
        best_start, best_end, best_bit = len(name) + 1, 0, 0
        alive = []
        for bit, rx in groups:
            m = rx.search(name, i)
            if m is None:
                continue  # no match from i on: none later either
            alive.append((bit, rx))
            if m.start() < best_start:
                best_start, best_end, best_bit = m.start(), m.end(), bit
        if not alive:
            break
        bits |= best_bit
        i = best_end if best_end > best_start else best_start + 1
        groups = alive
    return bits


# Tag and attribute bits, after the vocabulary bits.
_EXTRA = (
    "t_header", "t_form", "t_li", "t_list", "t_table", "t_td", "t_a", "t_article", "t_main", "t_section",
    "t_blockquote", "t_heading", "t_dl", "t_pre", "t_figcaption", "t_address", "t_details", "t_center", "t_hr",
    "r_nav", "r_banner", "r_contentinfo", "r_complementary", "r_main", "r_article", "r_dialog", "r_search",
    "articlebody", "hidden_attr", "cand0", "cand1", "cand2", "cand3", "cand4",
)  # fmt: skip
BITS = tuple(name for name, _ in VOCAB) + _EXTRA
_BIT = {name: 1 << i for i, name in enumerate(BITS)}
N_BITS = len(BITS)
assert N_BITS <= 128
_TAG_BIT = {
    "header": _BIT["t_header"], "form": _BIT["t_form"], "li": _BIT["t_li"], "ul": _BIT["t_list"],
    "ol": _BIT["t_list"], "table": _BIT["t_table"], "td": _BIT["t_td"], "th": _BIT["t_td"], "a": _BIT["t_a"],
    "article": _BIT["t_article"], "main": _BIT["t_main"], "section": _BIT["t_section"],
    "blockquote": _BIT["t_blockquote"], "h1": _BIT["t_heading"], "h2": _BIT["t_heading"], "h3": _BIT["t_heading"],
    "h4": _BIT["t_heading"], "h5": _BIT["t_heading"], "h6": _BIT["t_heading"], "dl": _BIT["t_dl"],
    "pre": _BIT["t_pre"], "figcaption": _BIT["t_figcaption"], "address": _BIT["t_address"],
    "details": _BIT["t_details"], "center": _BIT["t_center"], "summary": _BIT["t_details"],
}  # fmt: skip
_ROLE_BIT = {
    "navigation": _BIT["r_nav"], "menu": _BIT["r_nav"], "menubar": _BIT["r_nav"], "banner": _BIT["r_banner"],
    "contentinfo": _BIT["r_contentinfo"], "complementary": _BIT["r_complementary"], "main": _BIT["r_main"],
    "article": _BIT["r_article"], "dialog": _BIT["r_dialog"], "alertdialog": _BIT["r_dialog"],
    "search": _BIT["r_search"],
}  # fmt: skip

# trafilatura's main-content cascade (xpaths.BODY_XPATH, Apache-2.0), as tests on one element: the first element in
# document order that passes step k gets bit cand<k>, and so does everything inside it.
_CAND0_ID = re.compile(r"(?:entry|article|art)-content|article__content|article(?:-|__)?body|articleBody|body-text")
_CAND0_CLASS = re.compile(
    r"post[-_]text|post-body|post-?entry|post[-_]?content|postContent|post_inner_wrapper|article-?text|articleText"
    r"|(?:entry|page|text|article|art)-content|article__content|article(?:-|__)?body|articleBody|ArticleContent"
    r"|body-text|article__container"
)
_CAND2_ID = re.compile(r"^primary|story-body")
_CAND2_CLASS = re.compile(
    r"^article |post-bodycopy|story-?content|(?:theme|blog|section|single)-content|single-post|main-column"
    r"|wpb_text_column|story-body|field-body"
)
_CAND2_FULLTEXT = re.compile("fulltext", re.IGNORECASE)
_CAND3_ID = re.compile(r"content-main|content-body|contentBody")
_CAND3_CLASS = re.compile(r"content[-_]main|content(?:-|__)body")
_CAND_TAGS = frozenset(("article", "div", "main", "section"))
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden")


def _candidate_bits(tag: str, cls: str, id_: str, itemprop: str | None, role: str) -> int:
    """The cand<k> bits an element would earn if no earlier element took step k."""
    bits = 0
    if (
        cls in ("post", "entry")
        or itemprop == "articleBody"
        or id_ == "articleContent"
        or (id_ and _CAND0_ID.search(id_))
        or (cls and _CAND0_CLASS.search(cls))
    ):
        bits |= _BIT["cand0"]
    if tag == "article":
        bits |= _BIT["cand1"]
    if (
        role == "article"
        or id_ in ("article", "story")
        or cls in ("postarea", "art-postcontent", "text", "cell", "story")
        or (id_ and _CAND2_ID.search(id_))
        or (cls and (_CAND2_FULLTEXT.search(cls) or _CAND2_CLASS.search(cls)))
    ):
        bits |= _BIT["cand2"]
    if (
        id_ == "content"
        or cls == "content"
        or (id_ and (_CAND3_ID.search(id_) or "main-content" in id_.replace("C", "c").replace("M", "m")))
        or (
            cls
            and (
                _CAND3_CLASS.search(cls)
                or "main-content" in cls.replace("C", "c").replace("M", "m")
                or "page-content" in cls.replace("C", "c").replace("P", "p")
            )
        )
    ):
        bits |= _BIT["cand3"]
    if tag == "main" or cls.startswith("main") or id_.startswith("main") or role.startswith("main"):
        bits |= _BIT["cand4"]
    return bits


_PRE_BIT = _BIT["t_pre"]
_HIDDEN_BIT = _BIT["hidden_attr"]
_CAND_TAG_ONLY = {"article": _BIT["cand1"], "main": _BIT["cand4"]}
_ATTR_CACHE: dict[tuple[str | None, ...], tuple[int, int]] = {}


def _element_bits(
    tag: str,
    cls: str | None,
    id_: str | None,
    role: str | None,
    itemprop: str | None,
    style: str | None,
    aria_hidden: str | None,
    hidden: str | None,
) -> tuple[int, int]:
    """(bits, candidate bits) of an element from its tag and attributes (cached by the caller)."""
    cls = cls or ""
    id_ = id_ or ""
    bits = _TAG_BIT.get(tag, 0)
    if cls or id_:
        bits |= _vocab_mask(f"{cls} {id_}".lower())
    if role:
        bits |= _ROLE_BIT.get(role.lower(), 0)
    if itemprop == "articleBody":
        bits |= _BIT["articlebody"]
    if hidden is not None or aria_hidden == "true" or (style and _HIDDEN_STYLE.search(style)):
        bits |= _BIT["hidden_attr"]
    cand = _candidate_bits(tag, cls, id_, itemprop, role or "") if tag in _CAND_TAGS else 0
    return bits, cand


_MASK_CACHE: dict[str, int] = {}


def _vocab_mask(key: str) -> int:
    """Vocabulary bits of a lower-cased 'class id' string: the OR of its space-separated names' bits, each name's
    cached (class names repeat across pages and sites far more than whole class strings do)."""
    mask = 0
    cache = _MASK_CACHE
    for name in key.split():
        bits = cache.get(name)
        if bits is None:
            bits = _scan_mask(name)
            if len(cache) > 200_000:
                cache.clear()
            cache[name] = bits
        mask |= bits
    return mask


def _own_bits(key: tuple) -> tuple[int, int]:
    """(bits, candidate bits) of an element, cached: key is (tag, class, id, role, itemprop, style, aria-hidden,
    hidden), or (tag,) for an element without attributes. Both walks (_walk and _walk.pyx) read bits through it."""
    cached = _ATTR_CACHE.get(key)
    if cached is None:
        tag = key[0]
        if len(key) > 1:
            bits, cand = _element_bits(*key)
        else:
            bits, cand = _TAG_BIT.get(tag, 0), _CAND_TAG_ONLY.get(tag, 0)
        if tag not in BLOCK_TAGS and type(tag) is str:  # a custom element's name reads like a class name
            bits |= _vocab_mask(tag.lower())
        if len(_ATTR_CACHE) > 200_000:
            _ATTR_CACHE.clear()
        cached = _ATTR_CACHE[key] = (bits, cand)
    return cached


def _run_text(run: str, pre: bool) -> str:
    """A text node's run as block text: verbatim inside <pre> (a <br> a newline); elsewhere a newline in the source
    is a space and a <br> a line break. Both walks cut their runs through it."""
    if pre:
        return run.replace(BREAK, "\n").strip("\n")
    if BREAK in run:
        return "\n".join(" ".join(line.split()) for line in run.split(BREAK) if line and not line.isspace())
    return " ".join(run.split())


# <br> in the text until blocks are cut: a private-use character, since a newline in the source is only a space
BREAK = "\ue000"
_XPATH_SPACE = " \t\r\n"
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

# -- parsing ------------------------------------------------------------------------------------------------------

_local = threading.local()


def parse(page: str, utf8: bytes | None = None) -> etree._Element | None:
    """The lxml tree of a page (str), or None when libxml2 finds no document in it. `utf8`: the page's UTF-8
    encoding where the caller has it (the payload as fetched), which spares encoding it again."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        # libxml2 parser objects must not be shared between threads; one per thread. Comments and processing
        # instructions never reach the tree; huge_tree lifts libxml2's depth and text-node size limits, which would
        # otherwise truncate a deeply nested page silently.
        parser = _local.parser = etree.HTMLParser(
            collect_ids=False,
            default_doctype=False,
            encoding="utf-8",
            remove_comments=True,
            remove_pis=True,
            no_network=True,
            huge_tree=True,
        )
    data = utf8 if utf8 is not None else page.encode("utf-8", "surrogatepass")
    if not data.strip():
        return None
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None


# -- the walk -----------------------------------------------------------------------------------------------------


@dataclass
class Blocks:
    """The blocks of one page, in document order (lists of equal length), and their containers' totals."""

    texts: list[str]
    kinds: list[int]  # index into TAG_GROUPS of the owner element
    owner_tags: list[str]
    masks: list[int]  # ancestor bits (BITS) at the block
    link_chars: list[int]
    n_links: list[int]
    owners: list[int]  # container index of the owner block element
    cells: list[int]  # container index of the innermost <td>/<th> around the block, else -1
    items: list[int]  # container index of the innermost <li>/<dt>/<dd> around the block, else -1
    pre: list[bool]
    # per container (an element with a block in its subtree, created parent first)
    c_parent: list[int]
    c_lo: list[int]  # the container's blocks are those in [c_lo, c_hi): a subtree is a run in document order
    c_hi: list[int]
    # tables, for the layout (render): a cell's row; a row's cells in order (container or -1 for a cell with no
    # text, and its colspan), its width in columns (the widest row of its table), the row around its table (-1 at
    # the top); the rows that get the '|---|' line under them (the first row of a table with a <th>)
    cell_row: dict[int, int]
    row_cells: dict[int, list[tuple[int, int]]]
    row_width: dict[int, int]
    row_outer: dict[int, int]
    header_rows: set[int]
    item_level: dict[int, int]  # a list item inside another: its depth (trafilatura indents it two spaces a level)

    def __len__(self) -> int:
        return len(self.texts)


def segment(root: etree._Element) -> Blocks:
    """Cut a parsed page into blocks (see the module docstring). Modifies the tree."""
    etree.strip_elements(root, *DROP_TAGS, with_tail=False)
    body = root.find("body")
    if body is None:
        body = root
    # inline markup goes in C: its text joins the parent's, so that every text node left is one block; <a> goes
    # last, after its characters are counted for the link density of its block, and each <br> becomes a newline
    etree.strip_tags(body, *STRIP_TAGS)
    for br in body.iter("br", "hr"):
        tail = br.tail
        try:
            br.tail = BREAK + tail if tail else BREAK
        except ValueError:  # lxml refuses control characters in text it is given (libxml2 kept them on parsing)
            br.tail = BREAK + _CONTROL.sub("", tail)
    walked = _compiled.walk(body) if _compiled is not None else None  # None: a node it leaves to _walk
    if walked is None:
        walked = _walk(body)
    return _assemble(*walked)


def _walk(body: etree._Element) -> tuple:
    """The blocks' texts and owners and the containers (see _assemble), in Python: what _walk.pyx
    computes in C over libxml2's nodes (tests/test_fast_walk.py checks that the two agree)."""
    link_of: dict[etree._Element, list[int]] = {}
    for a in body.iter("a"):
        text = a.text
        n = len(text.strip()) if text else 0
        up = a.getparent()
        while up is not None and up.tag not in BLOCK_TAGS:
            up = up.getparent()
        if up is not None:
            entry = link_of.get(up)
            if entry is None:
                link_of[up] = [n, 1]
            else:
                entry[0] += n
                entry[1] += 1
    # Elements left that are not HTML blocks are custom elements (amp-ad, fb:like, mjx-*): they stay, as blocks
    # whose tag name reads like a class name.
    etree.strip_tags(body, "a", "br", "hr")

    # containers: the block elements on the way from a text node up to the root, each visited once
    index: dict[etree._Element, int] = {}
    c_tag: list[str] = []
    c_cum: list[int] = []
    c_parent: list[int] = []
    c_el: list[etree._Element] = []
    c_lo: list[int] = []  # per container: its blocks are texts[c_lo:c_hi] (a subtree is a run in document order)
    c_hi: list[int] = []
    open_: list[int] = []  # the containers from the root down to the last block's owner
    seen_cands = 0
    texts: list[str] = []
    owners: list[int] = []

    def close_to(i: int) -> None:
        """Close the open containers below container i (the next block lies outside them)."""
        end = len(texts)
        while open_ and open_[-1] != i:
            c_hi[open_.pop()] = end

    def container(el: etree._Element) -> int:
        nonlocal seen_cands
        chain = []
        i = -1
        while el is not None:
            j = index.get(el)
            if j is not None:
                i = j
                break
            chain.append(el)
            el = el.getparent()
        close_to(i)
        start = len(texts)
        for e in reversed(chain):  # outer first: candidate steps go to the first element in document order
            tag = e.tag
            n_attrib = len(e.attrib)
            if n_attrib:
                cls = e.get("class")
                id_ = e.get("id")
                if n_attrib > (cls is not None) + (id_ is not None):
                    key = (tag, cls, id_, e.get("role"), e.get("itemprop"), e.get("style"), e.get("aria-hidden"),
                           e.get("hidden"))  # fmt: skip
                else:  # class and id only: the common case, two lookups instead of seven
                    key = (tag, cls, id_, None, None, None, None, None)
            else:
                key = (tag,)
            bits, cand = _own_bits(key)
            if cand:
                cand &= ~seen_cands
                seen_cands |= cand
                bits |= cand
            j = len(c_tag)
            index[e] = j
            c_tag.append(tag)
            c_cum.append(bits | (c_cum[i] if i >= 0 else 0))
            c_parent.append(i)
            c_el.append(e)
            c_lo.append(start)
            c_hi.append(start)
            open_.append(j)
            i = j
        return i

    # text in document order: an element's .text where it starts, its .tail (text of its parent) where it ends
    for event, el in etree.iterwalk(body, events=("start", "end")):
        if event == "start":
            run = el.text
            owner_el = el
        else:
            run = el.tail
            if not run or el is body:
                continue
            owner_el = el.getparent()
        if not run or not run.strip(_XPATH_SPACE):  # XPath's whitespace, not Python's: NBSP is text here
            continue
        owner = index.get(owner_el)
        if owner is None:
            owner = container(owner_el)
        elif open_[-1] != owner:
            close_to(owner)
        cum = c_cum[owner]
        if cum & _HIDDEN_BIT:
            continue  # what a browser does not show (trafilatura drops it too: OVERALL_DISCARD_XPATH)
        text = _run_text(run, c_tag[owner] == "pre" or bool(cum & _PRE_BIT))
        if text:
            texts.append(text)
            owners.append(owner)

    close_to(-1)
    c_links = [link_of.get(e) for e in c_el] if link_of else [None] * len(c_el)
    return texts, owners, c_tag, c_cum, c_parent, c_lo, c_hi, c_links, _table_rows(c_tag, c_parent, c_el, index)


def _table_rows(
    c_tag: list[str], c_parent: list[int], c_el: list[etree._Element], index: dict[etree._Element, int]
) -> dict[int, list[tuple[int | None, list[tuple[int, int]], bool]]]:
    """Per container that holds a <tr> with text (a table): its <tr> children in order, each as (its container or
    None, its <td>/<th> children as (container or -1, colspan), whether one is a <th>)."""
    out = {}
    for t in sorted({c_parent[j] for j, t in enumerate(c_tag) if t == "tr" and c_parent[j] >= 0}):
        rows = []
        for r in c_el[t]:
            if r.tag != "tr":
                continue
            cells = []
            has_th = False
            for c in r:
                tag = c.tag
                if tag == "td" or tag == "th":
                    cells.append((index.get(c, -1), _span(c.get("colspan"))))
                    has_th = has_th or tag == "th"
            rows.append((index.get(r), cells, has_th))
        out[t] = rows
    return out


def _assemble(
    texts: list[str],
    owners: list[int],
    c_tag: list[str],
    c_cum: list[int],
    c_parent: list[int],
    c_lo: list[int],
    c_hi: list[int],
    c_links: list[list[int] | None],
    table_rows: dict[int, list[tuple[int | None, list[tuple[int, int]], bool]]],
) -> Blocks:
    """Blocks from a walk: each block's text and owner container; per container (parent first) its tag, its bits
    with its ancestors', its parent, its run of blocks [c_lo, c_hi), and the [characters, count] of the <a> whose
    nearest block element it is (or None); the tables' rows (_table_rows)."""
    # a block's link characters: its share of its element's own text, at its element's link density
    own_chars: dict[int, int] = {}
    for text, owner in zip(texts, owners):
        own_chars[owner] = own_chars.get(owner, 0) + len(text)
    link_chars: list[int] = []
    n_links: list[int] = []
    last_owner = -1
    for text, owner in zip(texts, owners):
        entry = c_links[owner]
        if entry is None:
            link_chars.append(0)
            n_links.append(0)
        else:
            n = len(text)
            link_chars.append(min(n, int(n * entry[0] / own_chars[owner] + 0.5)))
            n_links.append(entry[1] if owner != last_owner else 0)
        last_owner = owner
    n_c = len(c_tag)

    owner_tags = [c_tag[o] for o in owners]
    # the innermost cell and list item around each container (parents come first, so one pass)
    c_cell = [-1] * n_c
    c_item = [-1] * n_c
    item_level: dict[int, int] = {}  # a nested list item's depth (1 inside one item, ...); 0 is not stored
    for j, (tag, up) in enumerate(zip(c_tag, c_parent)):
        if tag == "td" or tag == "th":
            c_cell[j] = j
            c_item[j] = c_item[up] if up >= 0 else -1
        elif tag in LIST_ITEMS:
            c_item[j] = j
            c_cell[j] = c_cell[up] if up >= 0 else -1
            outer = c_item[up] if up >= 0 else -1
            if outer >= 0:
                item_level[j] = item_level.get(outer, 0) + 1
        elif up >= 0:
            c_cell[j] = c_cell[up]
            c_item[j] = c_item[up]
    cell_row, row_cells, row_width, row_outer, header_rows = _tables(table_rows, c_parent, c_cell)
    return Blocks(
        texts=texts,
        kinds=[_TAG_GROUP.get(t, 1) for t in owner_tags],
        owner_tags=owner_tags,
        masks=[c_cum[o] for o in owners],
        link_chars=link_chars,
        n_links=n_links,
        owners=owners,
        cells=[c_cell[o] for o in owners],
        items=[c_item[o] for o in owners],
        pre=[t == "pre" or bool(c_cum[o] & _PRE_BIT) for t, o in zip(owner_tags, owners)],
        c_parent=c_parent,
        c_lo=c_lo,
        c_hi=c_hi,
        cell_row=cell_row,
        row_cells=row_cells,
        row_width=row_width,
        row_outer=row_outer,
        header_rows=header_rows,
        item_level=item_level,
    )


_MAX_SPAN = 100  # trafilatura's cap on a colspan and on a table's width (main_extractor._MAX_SPAN)


def _span(value: str | None) -> int:
    """A cell's colspan attribute as trafilatura reads it: a decimal number, at most _MAX_SPAN, else 1."""
    return 1 if value is None or not value.isdecimal() else max(1, min(int(value), _MAX_SPAN))


def _tables(
    table_rows: dict[int, list[tuple[int | None, list[tuple[int, int]], bool]]],
    c_parent: list[int],
    c_cell: list[int],
) -> tuple[dict[int, int], dict[int, list[tuple[int, int]]], dict[int, int], dict[int, int], set[int]]:
    """The row structure of the tables that hold text, as trafilatura lays them out (handle_table): a row is the
    <td>/<th> children of a <tr>, a colspan counts its columns, every row is padded to the table's widest, and a
    nested table's rows are rows of their own."""
    cell_row: dict[int, int] = {}
    row_cells: dict[int, list[tuple[int, int]]] = {}
    row_width: dict[int, int] = {}
    row_outer: dict[int, int] = {}
    header_rows: set[int] = set()
    for t, rows in table_rows.items():  # outer tables first (a parent's container comes before its children's)
        width = min(max((sum(span for _, span in cells) for _, cells, _ in rows), default=0), _MAX_SPAN)
        up = c_parent[t]
        outer_cell = c_cell[up] if up >= 0 else -1
        outer = cell_row.get(outer_cell, -1) if outer_cell >= 0 else -1
        header_done = False
        for j, cells, has_th in rows:
            if j is not None:
                row_cells[j] = cells
                row_width[j] = width
                row_outer[j] = outer
                for c, _ in cells:
                    if c >= 0:
                        cell_row[c] = j
                if has_th and not header_done:
                    header_rows.add(j)
            header_done = header_done or has_th
    return cell_row, row_cells, row_width, row_outer, header_rows


# -- features -----------------------------------------------------------------------------------------------------

_TERMINAL = frozenset(".!?…。！？\"”»“'):;")
_BULLETS = frozenset("•·-–—*►▶»>|✓✔→")
N_LEVELS = 3  # container levels above the owner with their own columns
_LEVEL_COLS = ("log_chars", "link_density", "log_blocks", "share", "punct_share", "p_share", "long_share")


def _bits(values: list[int], n: int) -> np.ndarray:
    """(len(values), n) 0/1 columns of Python-int bit masks (n <= 128)."""
    raw = np.frombuffer(b"".join(v.to_bytes(16, "little") for v in values), np.uint8).reshape(len(values), 16)
    return np.unpackbits(raw, axis=1, count=n, bitorder="little").astype(np.float32)


# character classes counted per block: one table lookup per character and one bincount for the whole page
_COUNTED = {" ": 1, "\n": 2, ".": 3, ",": 4, "|": 5, "»": 5, "·": 5, "•": 5, ":": 6, **dict.fromkeys("0123456789", 7)}
_CLASS = np.zeros(max(map(ord, _COUNTED)) + 2, np.int64)
for _ch, _k in _COUNTED.items():
    _CLASS[ord(_ch)] = _k
_N_CLASSES = 8


def _text_stats(texts: list[str]) -> np.ndarray:
    """(blocks, 12): chars, words, newlines, ends in punctuation, '.', ',', separators, ':', digits, upper first,
    copyright sign, bullet first."""
    n = len(texts)
    lengths = np.fromiter(map(len, texts), np.int64, n)
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
    classes = _CLASS[np.minimum(codes, len(_CLASS) - 1)]
    block = np.repeat(np.arange(n, dtype=np.int64), lengths)
    counts = np.bincount(block * _N_CLASSES + classes, minlength=n * _N_CLASSES).reshape(n, _N_CLASSES)
    term, bullets = _TERMINAL, _BULLETS
    flags = np.array([(t[-1] in term, t[0].isupper(), "©" in t, t[0] in bullets) for t in texts], np.float32)
    out = np.empty((n, 12), np.float32)
    out[:, 0] = lengths
    out[:, 1] = counts[:, 1] + counts[:, 2] + 1
    out[:, 2] = counts[:, 2]
    out[:, 3] = flags[:, 0]
    out[:, 4:8] = counts[:, 3:7]
    out[:, 8] = counts[:, 7]
    out[:, 9:12] = flags[:, 1:4]
    return out


def features(b: Blocks) -> np.ndarray:
    """(blocks, len(feature_names())) float32 matrix for the classifier."""
    n = len(b)
    if n == 0:
        return np.zeros((0, len(feature_names())), np.float32)
    st = _text_stats(b.texts)
    chars, words, newlines, ends = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
    link = np.array(b.link_chars, np.float32)
    ld = link / chars
    is_p = np.array([k == 0 for k in b.kinds], np.float32)

    # container totals over each subtree (a run of blocks): prefix sums of per-block quantities
    quantities = np.stack([chars, link, np.ones(n, np.float32), chars * ends, chars * is_p, chars * (chars >= 100)], 1)
    prefix = np.vstack([np.zeros((1, quantities.shape[1]), np.float32), np.cumsum(quantities, 0)])
    lo = np.array(b.c_lo, np.int64)
    hi = np.array(b.c_hi, np.int64)
    totals = prefix[hi] - prefix[lo]  # (containers, 6)
    c_parent = np.array(b.c_parent, np.int64)
    level = np.array(b.owners, np.int64)
    cols = []
    for _ in range(N_LEVELS + 1):
        valid = level >= 0
        t = totals[np.where(valid, level, 0)]
        t[~valid] = quantities[~valid]
        cc = np.maximum(t[:, 0], 1)
        cols += [
            np.log1p(t[:, 0]),
            t[:, 1] / cc,
            np.log1p(t[:, 2]),
            chars / cc,
            t[:, 3] / cc,
            t[:, 4] / cc,
            t[:, 5] / cc,
        ]
        level = np.where(valid, c_parent[np.where(valid, level, 0)], -1)
    page_t = prefix[-1]
    total = max(float(page_t[0]), 1.0)

    masks = _bits(b.masks, N_BITS)
    # trafilatura's cascade: the first step whose element holds real text is the one it would use
    cand = masks[:, N_BITS - 5 :]
    cand_chars = chars @ cand
    chosen = next((k for k in range(5) if cand_chars[k] >= 100), -1)
    in_chosen = cand[:, chosen] if chosen >= 0 else np.zeros(n, np.float32)
    kinds = np.zeros((n, len(TAG_GROUPS)), np.float32)
    kinds[np.arange(n), b.kinds] = 1.0

    parent = c_parent[np.array(b.owners, np.int64)]
    nb = np.stack([np.log1p(chars), ld, ends], 1)
    zero = np.zeros((1, 3), np.float32)
    same = (parent[1:] == parent[:-1]).astype(np.float32)
    own = np.stack(
        [
            np.log1p(chars),
            np.log1p(words),
            newlines,
            ld,
            np.log1p(np.array(b.n_links, np.float32)),
            ends,
            st[:, 4] / words,
            st[:, 5] / words,
            np.log1p(st[:, 6]),
            st[:, 7] / words,
            st[:, 8] / chars,
            st[:, 9],
            st[:, 10],
            st[:, 11],
            chars / words,
            np.arange(n, dtype=np.float32) / max(n - 1, 1),
            (prefix[:-1, 0]) / total,
            in_chosen,
            np.array(b.pre, np.float32),
            np.concatenate([[0.0], same]),
            np.concatenate([same, [0.0]]),
        ],
        1,
    )
    page = np.array(
        [np.log1p(total), page_t[1] / total, np.log1p(n), float(chosen >= 0), page_t[3] / total, page_t[4] / total],
        np.float32,
    )
    return np.hstack(
        [
            own,
            kinds,
            masks,
            np.stack(cols, 1),
            np.broadcast_to(page, (n, len(page))),
            np.vstack([zero, nb[:-1]]),
            np.vstack([nb[1:], zero]),
        ]
    ).astype(np.float32)


def feature_names() -> list[str]:
    """The columns of features(), in order (the model file records them, so a mismatch is caught on loading)."""
    names = (
        "log_chars log_words newlines link_density log_links ends_punct dots_per_word commas_per_word log_separators "
        "colons_per_word digit_ratio upper_first copyright bullet_first chars_per_word position char_position "
        "in_chosen pre same_parent_prev same_parent_next"
    ).split()
    names += ["tag_" + "_".join(g) for g in TAG_GROUPS]
    names += ["bit_" + x for x in BITS]
    for lv in range(N_LEVELS + 1):
        names += [f"c{lv}_{c}" for c in _LEVEL_COLS]
    names += "page_log_chars page_link_density page_log_blocks page_has_candidate page_punct_share page_p_share".split()
    names += "prev_log_chars prev_link_density prev_ends next_log_chars next_link_density next_ends".split()
    return names


# -- rendering ----------------------------------------------------------------------------------------------------


MIN_REPEAT = 20


def render(b: Blocks, keep: np.ndarray | list[bool]) -> str:
    """The kept blocks as trafilatura's txt output lays them out: one line per paragraph, heading or <br>-line; a
    list item on one line as '- item', the blocks inside it joined by spaces (a nested list on lines of its own); a
    table row on one line as '| a | b | ', everything inside a cell joined into it, empty cells kept and the row
    padded to its table's width, a '|---|' line under a table's first row with a header cell, a nested table's rows
    on lines of their own; <pre> text verbatim.

    Repeats: a paragraph or list item of MIN_REPEAT characters or more that repeats one written earlier, with
    other text between them, is dropped (template text: a headline again in a breadcrumb, a teaser repeating the
    lead, a newsletter box twice; FineWeb's char_dup_ratio rejects a page for 1% of its characters in repeated
    lines). A run of the same paragraph is kept as written. trafilatura does the opposite (it drops a run's repeats
    of 50+ characters and keeps distant ones); measured on the tuning split (fast.corpus), this rule
    costs 0.013 of Readability's token F1 against keeping every repeat and gains 0.017 against trafilatura's rule,
    and it brings the FineWeb chain's decisions on the corpus pages closer to those on trafilatura's text
    (bench/README.md).
    """
    out: list[str | None] = []
    slot: dict[int, int] = {}  # row or item container -> its line in out
    parts: dict[int, list[str]] = {}  # cell or item container -> its kept texts
    pending: list[tuple[bool, int]] = []  # (a table row?, its container), in the order their lines were opened
    row_slots: set[int] = set()
    cells, items, cell_row, row_outer = b.cells, b.items, b.cell_row, b.row_outer

    def touch_row(r: int) -> None:
        if r in slot:
            return
        outer = row_outer.get(r, -1)
        if outer >= 0:
            touch_row(outer)  # a nested table's row comes after the row that holds it
        slot[r] = len(out)
        out.append(None)
        pending.append((True, r))

    for i, text in enumerate(b.texts):
        if not keep[i]:
            continue
        c = cells[i]
        if c >= 0 and c in cell_row:
            touch_row(cell_row[c])
            # a <br> in a cell is a space; a '|' in one is escaped, as trafilatura escapes it (_escape_cell)
            parts.setdefault(c, []).append(text.replace("\n", " ").replace("|", "\\|"))
            continue
        it = items[i]
        if it >= 0:
            got = parts.get(it)
            if got is None:
                parts[it] = [text]
                slot[it] = len(out)
                out.append(None)
                pending.append((False, it))
            else:
                got.append(text)
            continue
        out.append(text)
    for is_row, r in pending:
        if not is_row:  # a list item
            out[slot[r]] = "  " * b.item_level.get(r, 0) + "- " + " ".join(parts[r])
            continue
        line = ["| "]
        n = 0
        for c, span in b.row_cells[r]:
            got = parts.get(c) if c >= 0 else None
            line.append((" ".join(got) if got else "") + " | ")
            line.extend(" | " for _ in range(span - 1))
            n += span
        line.extend(" | " for _ in range(b.row_width[r] - n))
        if r in b.header_rows:
            line.append("\n|" + "---|" * b.row_width[r])
        out[slot[r]] = "".join(line)
        row_slots.add(slot[r])
    lines: list[str] = []
    seen: set[str] = set()
    previous = ""
    for k, t in enumerate(out):
        if t is None:
            continue
        if len(t) >= MIN_REPEAT and t != previous and k not in row_slots:  # paragraphs and list items
            if t in seen:
                continue
            seen.add(t)
        previous = t
        lines.append(t)
    return "\n".join(lines)


def context(b: Blocks, p: np.ndarray) -> np.ndarray:
    """(blocks, len(context_names())): what the first pass thinks of a block's surroundings, for the second pass
    (main text comes in runs: a block between kept blocks, in a container of kept blocks, is likely kept)."""
    n = len(b)
    if n == 0:
        return np.zeros((0, len(context_names())), np.float32)
    p = p.astype(np.float32)
    chars = np.fromiter((len(t) for t in b.texts), np.float32, n)
    pad = np.concatenate([np.zeros(8, np.float32), p, np.zeros(8, np.float32)])
    csum = np.concatenate([[0.0], np.cumsum(pad)])
    idx = np.arange(n) + 8
    cols = [p, pad[idx - 1], pad[idx - 2], pad[idx + 1], pad[idx + 2]]
    for w in (3, 8):
        cols.append((csum[idx + w + 1] - csum[idx - w]) / (2 * w + 1))
    # char-weighted mean of p over the subtree of the owner and of the containers above it
    prefix = np.concatenate([[0.0], np.cumsum(chars * p)]).astype(np.float32)
    cprefix = np.concatenate([[0.0], np.cumsum(chars)]).astype(np.float32)
    lo = np.array(b.c_lo, np.int64)
    hi = np.array(b.c_hi, np.int64)
    mean_c = (prefix[hi] - prefix[lo]) / np.maximum(cprefix[hi] - cprefix[lo], 1)
    c_parent = np.array(b.c_parent, np.int64)
    level = np.array(b.owners, np.int64)
    for _ in range(N_LEVELS + 1):
        valid = level >= 0
        safe = np.where(valid, level, 0)
        cols.append(np.where(valid, mean_c[safe], p))
        level = np.where(valid, c_parent[safe], -1)
    total = max(float(chars.sum()), 1.0)
    kept = p >= 0.5
    strong = np.flatnonzero(p >= 0.7)
    if len(strong):
        pos = np.arange(n)
        k = np.searchsorted(strong, pos)
        after = np.where(k < len(strong), strong[np.minimum(k, len(strong) - 1)] - pos, 10)
        before = np.where(k > 0, pos - strong[np.maximum(k - 1, 0)], 10)
        dist = np.minimum(np.minimum(after, np.where(p >= 0.7, 0, before)), 10).astype(np.float32)
    else:
        dist = np.full(n, 10.0, np.float32)
    page = [float(p.max()), float((chars * p).sum()) / total, float(chars[kept].sum()) / total]
    return np.hstack([np.stack(cols + [dist], 1), np.broadcast_to(np.array(page, np.float32), (n, 3))]).astype(
        np.float32
    )


def context_names() -> list[str]:
    """The columns of context()."""
    names = "p p_prev1 p_prev2 p_next1 p_next2 p_window3 p_window8".split()
    names += [f"c{lv}_mean_p" for lv in range(N_LEVELS + 1)]
    return names + ["dist_strong", "page_max_p", "page_mean_p", "page_kept_share"]


# -- the walk in C ----------------------------------------------------------------------------------------------

# filters/extraction/fast/_walk.pyx, compiled when the package is installed (setup.py; it needs Cython and a C compiler,
# and the install goes on without it). _walk above computes the same in Python: it runs where the module is not
# built, and on any page with a node the C walk leaves to it (a comment, an entity, a namespace).
try:
    from curate_filters.extraction.fast import _walk as _compiled
except (ImportError, ValueError):  # ValueError: built against an lxml whose element type has another size
    _compiled = None
