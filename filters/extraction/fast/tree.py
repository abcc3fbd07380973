"""Page -> blocks: parse, drop and merge markup, and cut the page into blocks in one walk.

A block is the text between two block-level boundaries (what a browser lays out as one paragraph, heading, list item
or table cell); a <br> is a line break inside its block. Each block keeps its owner element, the bits of its
ancestors (markup.py) and its share of links; each container (a block element with text in its subtree) its run of
blocks, and each table its rows, for the features (featurize.py) and the layout (layout.py).

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

from lxml import etree

from curate_filters.extraction.fast.markup import (
    BLOCK_TAGS,
    BREAK,
    DROP_TAGS,
    HIDDEN_BIT,
    LIST_ITEMS,
    MAX_SPAN,
    PRE_BIT,
    STRIP_TAGS,
    TAG_GROUP,
    own_bits,
    run_text,
    span,
)

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
    computes in C over libxml2's nodes (tests/filters/extraction/test_fast_walk.py checks that the two agree)."""
    link_of = _links(body)
    # Elements left that are not HTML blocks are custom elements (amp-ad, fb:like, mjx-*): they stay, as blocks
    # whose tag name reads like a class name.
    etree.strip_tags(body, "a", "br", "hr")

    cs = _Containers()
    index, open_, c_tag, c_cum = cs.index, cs.open_, cs.c_tag, cs.c_cum
    texts: list[str] = []
    owners: list[int] = []
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
            owner = cs.add(owner_el, len(texts))
        elif open_[-1] != owner:
            cs.close_to(owner, len(texts))
        cum = c_cum[owner]
        if cum & HIDDEN_BIT:
            continue  # what a browser does not show (trafilatura drops it too: OVERALL_DISCARD_XPATH)
        text = run_text(run, c_tag[owner] == "pre" or bool(cum & PRE_BIT))
        if text:
            texts.append(text)
            owners.append(owner)

    cs.close_to(-1, len(texts))
    c_el = cs.c_el
    c_links = [link_of.get(e) for e in c_el] if link_of else [None] * len(c_el)
    table_rows = _table_rows(c_tag, cs.c_parent, c_el, index)
    return texts, owners, c_tag, c_cum, cs.c_parent, cs.c_lo, cs.c_hi, c_links, table_rows


def _links(body: etree._Element) -> dict[etree._Element, list[int]]:
    """Per block element: [the characters, the count] of the <a> whose nearest block element it is."""
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
    return link_of


def _bits_key(e: etree._Element) -> tuple:
    """An element's key for own_bits: its tag and the attributes its bits depend on."""
    tag = e.tag
    n_attrib = len(e.attrib)
    if not n_attrib:
        return (tag,)
    cls = e.get("class")
    id_ = e.get("id")
    if n_attrib > (cls is not None) + (id_ is not None):
        return (tag, cls, id_, e.get("role"), e.get("itemprop"), e.get("style"), e.get("aria-hidden"), e.get("hidden"))
    return (tag, cls, id_, None, None, None, None, None)  # class and id only: the common case, two lookups not seven


class _Containers:
    """The containers of _walk: the block elements on the way from a text node up to the root, each visited once,
    in the order they are first met (a parent before its children)."""

    def __init__(self) -> None:
        self.index: dict[etree._Element, int] = {}
        self.c_tag: list[str] = []
        self.c_cum: list[int] = []  # the container's bits with its ancestors'
        self.c_parent: list[int] = []
        self.c_el: list[etree._Element] = []
        self.c_lo: list[int] = []  # its blocks are texts[c_lo:c_hi] (a subtree is a run in document order)
        self.c_hi: list[int] = []
        self.open_: list[int] = []  # the containers from the root down to the last block's owner
        self.seen_cands = 0  # the cand<k> steps an element has taken already

    def close_to(self, i: int, end: int) -> None:
        """Close the open containers below container i (the next block, number `end`, lies outside them)."""
        open_, c_hi = self.open_, self.c_hi
        while open_ and open_[-1] != i:
            c_hi[open_.pop()] = end

    def add(self, el: etree._Element, start: int) -> int:
        """The container of an element not indexed yet, with its unindexed ancestors; its blocks start at `start`."""
        index = self.index
        chain = []
        i = -1
        while el is not None:
            j = index.get(el)
            if j is not None:
                i = j
                break
            chain.append(el)
            el = el.getparent()
        self.close_to(i, start)
        c_cum = self.c_cum
        for e in reversed(chain):  # outer first: candidate steps go to the first element in document order
            bits, cand = own_bits(_bits_key(e))
            if cand:
                cand &= ~self.seen_cands
                self.seen_cands |= cand
                bits |= cand
            j = len(self.c_tag)
            index[e] = j
            self.c_tag.append(e.tag)
            c_cum.append(bits | (c_cum[i] if i >= 0 else 0))
            self.c_parent.append(i)
            self.c_el.append(e)
            self.c_lo.append(start)
            self.c_hi.append(start)
            self.open_.append(j)
            i = j
        return i


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
                    cells.append((index.get(c, -1), span(c.get("colspan"))))
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
        kinds=[TAG_GROUP.get(t, 1) for t in owner_tags],
        owner_tags=owner_tags,
        masks=[c_cum[o] for o in owners],
        link_chars=link_chars,
        n_links=n_links,
        owners=owners,
        cells=[c_cell[o] for o in owners],
        items=[c_item[o] for o in owners],
        pre=[t == "pre" or bool(c_cum[o] & PRE_BIT) for t, o in zip(owner_tags, owners)],
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
        width = min(max((sum(span for _, span in cells) for _, cells, _ in rows), default=0), MAX_SPAN)
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


# -- the walk in C ----------------------------------------------------------------------------------------------

# filters/extraction/fast/_walk.pyx, compiled when the package is installed (setup.py; it needs Cython and a C compiler,
# and the install goes on without it). _walk above computes the same in Python: it runs where the module is not
# built, and on any page with a node the C walk leaves to it (a comment, an entity, a namespace).
try:
    from curate_filters.extraction.fast import _walk as _compiled
except (ImportError, ValueError):  # ValueError: built against an lxml whose element type has another size
    _compiled = None
