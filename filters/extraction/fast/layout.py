"""Kept blocks -> text, laid out as trafilatura's txt output lays them out (render)."""

from __future__ import annotations

import numpy as np

from curate_filters.extraction.fast.tree import Blocks

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
        out[slot[r]] = _row_line(b, r, parts)
        row_slots.add(slot[r])
    return _without_repeats(out, row_slots)


def _row_line(b: Blocks, r: int, parts: dict[int, list[str]]) -> str:
    """Table row r as one line: '| a | b | ', each cell's kept texts joined, a cell's colspan and the table's width
    in empty cells, and the '|---|' line under it where it is its table's header row."""
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
    return "".join(line)


def _without_repeats(out: list[str | None], row_slots: set[int]) -> str:
    """The lines of `out` (None: a line opened and never filled) joined, less the paragraphs and list items of
    MIN_REPEAT characters or more that repeat an earlier one with other text between them (see render)."""
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
