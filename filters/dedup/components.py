"""Connected components of a distributed edge table by alternating large-star and small-star (Kiveris et al.,
"Connected Components in MapReduce and Beyond", SoCC 2014).

Nodes are strings; every component ends labelled with its smallest node, so a caller that wants a particular node to
lead its component (the document dedup keeps) encodes that preference as a sortable prefix. Each round is two
group-bys over the edges; memory per group grows with a node's degree only, never with the graph. A round that
changes nothing ends the loop: then every node is a leaf with exactly one, smaller, neighbour or a centre with
only larger ones, i.e. the graph is a set of stars around the component minima.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import StageError
from curate.stage import Table

_CHANGED = "changed"
MAX_ROUNDS = 100  # Kiveris et al. prove O(log^2 n) rounds; real graphs take under ten


def _ordered(t: pa.Table) -> tuple[pa.Array, pa.Array]:
    u, v = t.column("u").combine_chunks(), t.column("v").combine_chunks()
    return u, v


def orient(t: pa.Table) -> pa.Table:
    """Edges as (larger, smaller) with self-loops dropped; a `changed` flag, if present, is kept."""
    u, v = _ordered(t)
    big = pc.greater(u, v)
    hi, lo = pc.if_else(big, u, v), pc.if_else(big, v, u)
    out = pa.table({"u": hi, "v": lo, **({_CHANGED: t.column(_CHANGED)} if _CHANGED in t.column_names else {})})
    return out.filter(pc.not_equal(hi, lo))


def both_directions(t: pa.Table) -> pa.Table:
    """Each edge in both directions (large-star looks at every neighbour of a node)."""
    u, v = _ordered(t)
    return pa.table({"u": pa.concat_arrays([u, v]), "v": pa.concat_arrays([v, u])})


def large_star(t: pa.Table) -> pa.Table:
    """For each node u with m = min(u, neighbours): link every larger neighbour v to m. Output oriented (v, m);
    `changed` marks links where m is not u (the edge (v, u) was replaced)."""
    if t.num_rows == 0:
        return _empty(changed=True)
    t = t.select(["u", "v"])
    mins = t.group_by("u").aggregate([("v", "min")])
    t = t.join(mins, "u")
    u, v = _ordered(t)
    m = pc.min_element_wise(u, t.column("v_min").combine_chunks())
    larger = pc.greater(v, u)
    out = pa.table({"u": v.filter(larger), "v": m.filter(larger)})
    return out.append_column(_CHANGED, pc.not_equal(out.column("v"), u.filter(larger)))


def small_star(t: pa.Table) -> pa.Table:
    """For each node u and its smaller neighbours N (edges arrive oriented (u, v), u > v): with m = min N, link
    every other v in N and u itself to m. `changed` marks a node with several smaller neighbours, or whose
    incoming links were changed by the large-star step before it."""
    if t.num_rows == 0:
        return _empty(changed=True)
    t = t.group_by(["u", "v"]).aggregate([(_CHANGED, "max")])
    t = pa.table({"u": t.column("u"), "v": t.column("v"), _CHANGED: t.column(f"{_CHANGED}_max")})
    per = t.group_by("u").aggregate([("v", "min"), ("v", "count"), (_CHANGED, "max")])
    incoming = pc.fill_null(per.column(f"{_CHANGED}_max"), False)
    changed = pc.or_(pc.greater(per.column("v_count"), 1), incoming)
    per = pa.table({"u": per.column("u"), "m": per.column("v_min"), _CHANGED: changed})
    joined = t.select(["u", "v"]).join(per, "u")
    others = joined.filter(pc.not_equal(joined.column("v"), joined.column("m")))
    leaves = pa.table({"u": others.column("v"), "v": others.column("m"), _CHANGED: others.column(_CHANGED)})
    centre_links = pa.table({"u": per.column("u"), "v": per.column("m"), _CHANGED: per.column(_CHANGED)})
    return pa.concat_tables([leaves, centre_links])


def _empty(changed: bool = False) -> pa.Table:
    cols: dict[str, Any] = {"u": pa.array([], pa.string()), "v": pa.array([], pa.string())}
    if changed:
        cols[_CHANGED] = pa.array([], pa.bool_())
    return pa.table(cols)


def only_changed(t: pa.Table) -> pa.Table:
    return t.filter(pc.fill_null(t.column(_CHANGED), False)).select(["u"])


def connected_components(edges: Table, log: Callable[[str], None] | None = None) -> tuple[Table, int]:
    """Star edges (leaf, minimum of its component) for every node that has a neighbour, and the number of
    large-star + small-star rounds it took (the last one changes nothing). `edges` has string columns u, v."""
    current = edges.map_batches(orient).materialize()
    for rounds in range(1, MAX_ROUNDS + 1):
        ls = current.map_batches(both_directions).group_by("u", large_star)
        ss = ls.map_batches(orient).group_by("u", small_star).materialize()
        changed = ss.map_batches(only_changed).count()
        if log is not None:
            log(f"connected components: round {rounds}, {changed} links changed")
        current = ss
        if changed == 0:
            return current.map_batches(_drop_flag), rounds
    raise StageError(f"connected components did not converge in {MAX_ROUNDS} rounds")


def _drop_flag(t: pa.Table) -> pa.Table:
    return t.select(["u", "v"])


def star_edges(t: pa.Table, key: list[str], node: str = "node") -> pa.Table:
    """Within each group of equal `key` columns, an edge from the group's smallest node to every other member."""
    if t.num_rows < 2:
        return _empty()
    t = t.sort_by([(k, "ascending") for k in key] + [(node, "ascending")])
    new_group = np.zeros(t.num_rows, bool)
    new_group[0] = True
    for k in key:
        col = t.column(k).to_numpy()
        new_group[1:] |= col[1:] != col[:-1]
    starts = np.flatnonzero(new_group)
    first = starts[np.cumsum(new_group) - 1]
    member = np.flatnonzero(~new_group)
    nodes = t.column(node).combine_chunks()
    return pa.table({"u": nodes.take(pa.array(first[member])), "v": nodes.take(pa.array(member))})


def min_labels(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """For nodes 0..n-1 and edges (u, v): the smallest node of each node's component (hook roots onto the smaller
    root, then jump pointers, until every edge has one root; Shiloach & Vishkin 1982 in numpy)."""
    parent = np.arange(n, dtype=np.int64)
    while len(u):
        pu, pv = parent[u], parent[v]
        if np.array_equal(pu, pv):
            return parent
        m = np.minimum(pu, pv)
        # every node's parent is <= the node, so a root is the smallest node of its tree
        np.minimum.at(parent, pu, m)
        np.minimum.at(parent, pv, m)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent


def stars_in_memory(t: pa.Table) -> pa.Table:
    """Star edges (leaf, component minimum) of all of `t`'s edges at once: for an edge set small enough for one
    worker, where a handful of distributed rounds would cost more than the work."""
    if t.num_rows == 0:
        return _empty()
    u, v = _ordered(t)
    nodes = pc.unique(pa.concat_arrays([u, v]))
    nodes = nodes.take(pc.sort_indices(nodes))  # index order = string order, so the smallest index is the minimum
    ui = pc.index_in(u, value_set=nodes).to_numpy()
    vi = pc.index_in(v, value_set=nodes).to_numpy()
    labels = min_labels(ui, vi, len(nodes))
    leaves = np.flatnonzero(labels != np.arange(len(nodes)))
    return pa.table({"u": nodes.take(pa.array(leaves)), "v": nodes.take(pa.array(labels[leaves]))})
