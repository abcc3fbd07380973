# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""tree._walk in C: the same blocks and containers from the same lxml tree, read from libxml2's nodes instead of
through lxml's element proxies (no proxy is made, no dict is keyed by element, no getparent() walks up).

What it must match, and how:
- lxml's .text and .tail: the run of text (and CDATA) nodes that starts at a node's first child or after it,
  concatenated (lxml's _collectText); a run of XPath whitespace only is no text, as in _walk;
- iterwalk's order: each element's start, its children, its end; its tail belongs to its parent;
- the containers: _walk finds a text's owner and the owner's unindexed ancestors by getparent(); here the path from
  the root element down to the current element is a stack, and the indexed part of it is always a prefix of it;
- attributes: the first attribute of that name in no namespace (lxml's get, libxml2's xmlGetNsProp), its text
  children concatenated;
- everything else (an element's bits, the text clean-up, the colspans) calls the Python code of markup.py
  that _walk calls too (own_bits, run_text, span).

A page with a node _walk would see differently (a comment, a processing instruction, an entity reference, an
element in a namespace) is left to _walk: walk() returns None before it changes the tree. libxml2's HTML parser, as
tree.parse sets it up, makes none of them.
"""

from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdlib cimport free, realloc
from libc.string cimport strcmp, strlen

from lxml.includes cimport tree
from lxml.includes.etreepublic cimport _Element
from lxml import etree

import curate_filters.extraction.fast.markup as M


# the attributes markup._element_bits reads, in its arguments' order after the tag
cdef enum:
    N_ATTRS = 7
cdef const char* ATTRS[N_ATTRS]
ATTRS[:] = [b"class", b"id", b"role", b"itemprop", b"style", b"aria-hidden", b"hidden"]


cdef inline bint _is_text(tree.xmlNode* n) noexcept nogil:
    return n.type == tree.XML_TEXT_NODE or n.type == tree.XML_CDATA_SECTION_NODE


cdef inline bint _blank(const unsigned char* s) noexcept nogil:
    """Only XPath whitespace (space, tab, CR, LF), or nothing."""
    cdef unsigned char ch
    while True:
        ch = s[0]
        if ch == 0:
            return True
        if ch != 32 and ch != 9 and ch != 10 and ch != 13:
            return False
        s += 1


cdef object _run(tree.xmlNode* n, bint keep_blank):
    """The text of the run of text nodes starting at n, as lxml's .text/.tail would give it; None where there is no
    text node, and where keep_blank is false also where the run is XPath whitespace only."""
    cdef tree.xmlNode* m = n
    cdef int count = 0
    cdef bint blank = True
    while m != NULL and _is_text(m):
        if blank and m.content != NULL and not _blank(<const unsigned char*>m.content):
            blank = False
        count += 1
        m = m.next
    if count == 0 or (blank and not keep_blank):
        return None
    return _joined(n, True)


cdef inline object _utf8(const tree.xmlChar* s):
    return "" if s == NULL else PyUnicode_DecodeUTF8(<const char*>s, strlen(<const char*>s), NULL)


cdef object _joined(tree.xmlNode* n, bint text_only):
    """The contents of n and of the nodes after it (while they are text nodes, if text_only), concatenated."""
    cdef tree.xmlNode* m = n.next
    if m == NULL or (text_only and not _is_text(m)):  # one node: the common case, no copy
        return _utf8(n.content)
    parts = bytearray()
    m = n
    while m != NULL and (not text_only or _is_text(m)):
        if m.content != NULL:
            parts += (<const char*>m.content)[:strlen(<const char*>m.content)]
        m = m.next
    return parts.decode("utf-8")


cdef object _attr_value(tree.xmlAttr* a):
    """An attribute's value: its children's text, concatenated (lxml: xmlGetNsProp)."""
    return "" if a.children == NULL else _joined(a.children, False)


cdef object _get(tree.xmlNode* e, const char* name):
    """e.get(name) for a name in no namespace."""
    cdef tree.xmlAttr* a = e.properties
    while a != NULL:
        if a.type == tree.XML_ATTRIBUTE_NODE and a.ns == NULL and strcmp(<const char*>a.name, name) == 0:
            return _attr_value(a)
        a = a.next
    return None


cdef class _Names:
    """Tag names by libxml2 name pointer (the parser interns them, so a page has a few dozen)."""
    cdef dict by_ptr

    def __cinit__(self):
        self.by_ptr = {}

    cdef inline object tag(self, tree.xmlNode* e):
        key = <size_t>e.name
        t = self.by_ptr.get(key)
        if t is None:
            t = self.by_ptr[key] = _utf8(e.name)
        return t


cdef inline bint _named(tree.xmlNode* e, const char* name) noexcept nogil:
    return e.type == tree.XML_ELEMENT_NODE and strcmp(<const char*>e.name, name) == 0


cdef object _links(tree.xmlNode* top, _Names names, frozenset block_tags):
    """_walk's link_of, keyed by node address: for each <a> under top, its text's characters and a count, added
    to its nearest ancestor that is a block element. None where a node under top (or top) is other than an element
    in no namespace or a text node: that page is _walk's."""
    cdef dict out = {}
    cdef tree.xmlNode* n = top
    cdef tree.xmlNode* up
    while True:
        if n.type != tree.XML_ELEMENT_NODE:
            if not _is_text(n):
                return None
        elif n.ns != NULL:
            return None
        else:
            if _named(n, "a"):
                text = _run(n.children, True)
                chars = len(text.strip()) if text else 0
                up = n.parent
                while up != NULL and up.type == tree.XML_ELEMENT_NODE and names.tag(up) not in block_tags:
                    up = up.parent
                if up != NULL and up.type == tree.XML_ELEMENT_NODE:
                    entry = out.get(<size_t>up)
                    if entry is None:
                        out[<size_t>up] = [chars, 1]
                    else:
                        entry[0] += chars
                        entry[1] += 1
            if n.children != NULL:
                n = n.children
                continue
        while n != top and n.next == NULL:
            n = n.parent
        if n == top:
            return out
        n = n.next


cdef void* _grown(void* p, Py_ssize_t n, size_t size) except NULL:
    """p reallocated to n items of `size` bytes (MemoryError if it cannot be)."""
    cdef void* q = realloc(p, n * size)
    if q == NULL:
        raise MemoryError()
    return q


cdef inline tree.xmlNode* _first_element(tree.xmlNode* n) noexcept nogil:
    while n != NULL and n.type != tree.XML_ELEMENT_NODE:
        n = n.next
    return n


cdef class _Walk:
    """The state of one walk: the path from the root element down, the open containers, the outputs."""
    cdef tree.xmlNode** path
    cdef int* path_cont
    cdef Py_ssize_t depth, cap
    cdef int* open_
    cdef Py_ssize_t n_open, open_cap
    cdef tree.xmlNode** c_node
    cdef unsigned char* c_flags  # 1: hidden; 2: <pre> or inside one
    cdef Py_ssize_t n_c, c_cap
    cdef list texts, owners, c_tag, c_cum, c_parent, c_lo, c_hi
    cdef object seen_cands
    cdef _Names names

    def __cinit__(self):
        self.path = NULL
        self.path_cont = NULL
        self.open_ = NULL
        self.c_node = NULL
        self.c_flags = NULL
        self.depth = self.cap = self.n_open = self.open_cap = self.n_c = self.c_cap = 0
        self.texts, self.owners, self.c_tag, self.c_cum = [], [], [], []
        self.c_parent, self.c_lo, self.c_hi = [], [], []
        self.seen_cands = 0
        self.names = _Names()

    def __dealloc__(self):
        free(self.path)
        free(self.path_cont)
        free(self.open_)
        free(self.c_node)
        free(self.c_flags)

    cdef int push(self, tree.xmlNode* e) except -1:
        cdef Py_ssize_t cap
        if self.depth == self.cap:
            cap = self.cap * 2 + 64
            self.path = <tree.xmlNode**>_grown(self.path, cap, sizeof(tree.xmlNode*))
            self.path_cont = <int*>_grown(self.path_cont, cap, sizeof(int))
            self.cap = cap
        self.path[self.depth] = e
        self.path_cont[self.depth] = -1
        self.depth += 1
        return 0

    cdef void close_to(self, int i):
        """Close the open containers below container i (the next block lies outside them)."""
        cdef object end = len(self.texts)
        while self.n_open and self.open_[self.n_open - 1] != i:
            self.n_open -= 1
            self.c_hi[self.open_[self.n_open]] = end

    cdef int container(self, Py_ssize_t at) except -2:
        """The container of the element at path position `at`, made (outer first) with its ancestors' that are
        not made yet."""
        cdef Py_ssize_t k = at
        cdef int i, j
        cdef tree.xmlNode* e
        cdef tree.xmlAttr* a
        cdef Py_ssize_t n_attrib, m, q
        while k >= 0 and self.path_cont[k] < 0:
            k -= 1
        i = self.path_cont[k] if k >= 0 else -1
        self.close_to(i)
        start = len(self.texts)
        own_bits = M.own_bits
        for m in range(k + 1, at + 1):
            e = self.path[m]
            tag = self.names.tag(e)
            n_attrib = 0
            values = [None] * N_ATTRS
            a = e.properties
            while a != NULL:
                if a.type == tree.XML_ATTRIBUTE_NODE:
                    n_attrib += 1
                    if a.ns == NULL:
                        for q in range(N_ATTRS):
                            if strcmp(<const char*>a.name, ATTRS[q]) == 0:
                                if values[q] is None:  # the first of a name, as lxml's get() finds it
                                    values[q] = _attr_value(a)
                                break
                a = a.next
            if n_attrib:
                key = (tag, values[0], values[1], values[2], values[3], values[4], values[5], values[6])
            else:
                key = (tag,)
            bits, cand = own_bits(key)
            if cand:
                cand &= ~self.seen_cands
                self.seen_cands |= cand
                bits |= cand
            cum = bits | self.c_cum[i] if i >= 0 else bits
            j = <int>self.n_c
            self.add_container(e, (1 if cum & M.HIDDEN_BIT else 0) | (2 if tag == "pre" or cum & M.PRE_BIT else 0))
            self.path_cont[m] = j
            self.c_tag.append(tag)
            self.c_cum.append(cum)
            self.c_parent.append(i)
            self.c_lo.append(start)
            self.c_hi.append(start)
            self.open_push(j)
            i = j
        return i

    cdef int add_container(self, tree.xmlNode* e, unsigned char flags) except -1:
        cdef Py_ssize_t cap
        if self.n_c == self.c_cap:
            cap = self.c_cap * 2 + 64
            self.c_node = <tree.xmlNode**>_grown(self.c_node, cap, sizeof(tree.xmlNode*))
            self.c_flags = <unsigned char*>_grown(self.c_flags, cap, 1)
            self.c_cap = cap
        self.c_node[self.n_c] = e
        self.c_flags[self.n_c] = flags
        self.n_c += 1
        return 0

    cdef int open_push(self, int j) except -1:
        cdef Py_ssize_t cap
        if self.n_open == self.open_cap:
            cap = self.open_cap * 2 + 64
            self.open_ = <int*>_grown(self.open_, cap, sizeof(int))
            self.open_cap = cap
        self.open_[self.n_open] = j
        self.n_open += 1
        return 0

    cdef int text(self, tree.xmlNode* first, Py_ssize_t at) except -1:
        """A run of text starting at node `first`, owned by the element at path position `at`."""
        cdef int owner
        cdef unsigned char flags
        run = _run(first, False)
        if run is None:
            return 0
        owner = self.path_cont[at]
        if owner < 0:
            owner = self.container(at)
        elif self.open_[self.n_open - 1] != owner:
            self.close_to(owner)
        flags = self.c_flags[owner]
        if flags & 1:
            return 0  # not shown by a browser
        text = M.run_text(run, flags & 2)
        if text:
            self.texts.append(text)
            self.owners.append(owner)
        return 0


def walk(body):
    """What tree._walk returns for `body` (after segment's first steps), or None for a page it leaves to it."""
    cdef tree.xmlNode* top = (<_Element?>body)._c_node
    cdef tree.xmlNode* n
    cdef tree.xmlNode* cur
    cdef tree.xmlNode* r
    cdef tree.xmlNode* c
    cdef _Walk w
    cdef Py_ssize_t j
    if top == NULL:
        return None
    w = _Walk()
    links = _links(top, w.names, M.BLOCK_TAGS)
    if links is None:
        return None
    etree.strip_tags(body, "a", "br", "hr")
    # the path starts at the root element: the ancestors of body first (getparent() stops at the document)
    ancestors = []
    n = top.parent
    while n != NULL and n.type == tree.XML_ELEMENT_NODE:
        ancestors.append(<size_t>n)
        n = n.parent
    for address in reversed(ancestors):
        w.push(<tree.xmlNode*><size_t>address)
    w.push(top)
    w.text(top.children, w.depth - 1)
    cur = _first_element(top.children)
    while True:
        if cur != NULL:  # an element starts: its text is its own
            w.push(cur)
            w.text(cur.children, w.depth - 1)
            cur = _first_element(cur.children)
            continue
        n = w.path[w.depth - 1]  # the element on top ends: its tail is its parent's
        if n == top:
            break
        w.depth -= 1
        w.text(n.next, w.depth - 1)
        cur = _first_element(n.next)
    w.close_to(-1)

    if links:
        c_links = [links.get(<size_t>w.c_node[j]) for j in range(w.n_c)]
    else:
        c_links = [None] * w.n_c
    # the tables (tree._table_rows)
    c_tag, c_parent = w.c_tag, w.c_parent
    tables = sorted({c_parent[j] for j in range(w.n_c) if c_tag[j] == "tr" and c_parent[j] >= 0})
    table_rows = {}
    if tables:
        index = {<size_t>w.c_node[j]: j for j in range(w.n_c) if c_tag[j] in ("tr", "td", "th")}
        span = M.span
        for t in tables:
            rows = []
            r = w.c_node[<Py_ssize_t>t].children
            while r != NULL:
                if _named(r, "tr"):
                    cells = []
                    has_th = False
                    c = r.children
                    while c != NULL:
                        if _named(c, "td") or _named(c, "th"):
                            cells.append((index.get(<size_t>c, -1), span(_get(c, "colspan"))))
                            has_th = has_th or _named(c, "th")
                        c = c.next
                    rows.append((index.get(<size_t>r), cells, has_th))
                r = r.next
            table_rows[t] = rows
    return w.texts, w.owners, c_tag, w.c_cum, c_parent, w.c_lo, w.c_hi, c_links, table_rows
