"""What fast_extract's walks read off the markup: the tags they drop, merge, and cut blocks on; the bits of an
element (its tag, its ARIA role, its class/id names against a vocabulary of trafilatura's boilerplate and content
tokens and more, and whether it is the first element that a step of trafilatura's main-content cascade, BODY_XPATH,
would select); and how a text run becomes block text. Both walks, tree._walk in Python and _walk.pyx in C, call the
same code here (own_bits, run_text, span), so that they cannot disagree on it.
"""

from __future__ import annotations

import re

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
TAG_GROUP = {t: i for i, g in enumerate(TAG_GROUPS) for t in g}

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


PRE_BIT = _BIT["t_pre"]
HIDDEN_BIT = _BIT["hidden_attr"]
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
    """(bits, candidate bits) of an element from its tag and attributes (cached by own_bits)."""
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


def own_bits(key: tuple) -> tuple[int, int]:
    """(bits, candidate bits) of an element, cached: key is (tag, class, id, role, itemprop, style, aria-hidden,
    hidden), or (tag,) for an element without attributes. Both walks (tree._walk and _walk.pyx) read bits through it."""
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


# <br> in the text until blocks are cut: a private-use character, since a newline in the source is only a space
BREAK = "\ue000"


def run_text(run: str, pre: bool) -> str:
    """A text node's run as block text: verbatim inside <pre> (a <br> a newline); elsewhere a newline in the source
    is a space and a <br> a line break. Both walks cut their runs through it."""
    if pre:
        return run.replace(BREAK, "\n").strip("\n")
    if BREAK in run:
        return "\n".join(" ".join(line.split()) for line in run.split(BREAK) if line and not line.isspace())
    return " ".join(run.split())


MAX_SPAN = 100  # trafilatura's cap on a colspan and on a table's width (main_extractor._MAX_SPAN)


def span(value: str | None) -> int:
    """A cell's colspan attribute as trafilatura reads it: a decimal number, at most MAX_SPAN, else 1."""
    return 1 if value is None or not value.isdecimal() else max(1, min(int(value), MAX_SPAN))
