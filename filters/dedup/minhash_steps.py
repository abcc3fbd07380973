"""The per-piece functions of the minhash stage's global pass (run on workers; module level so they pickle by
reference). Node keys are `<tier><rank><id>` (see dedup.minhash): tier 0 is an indexed document, 1 this run's.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import StageError
from curate_filters.dedup import minhash_math as mm
from curate_filters.dedup.components import star_edges

INDEX_META = b"curate.minhash"
# temporary columns joined onto the documents (the engine drops `__` columns a stage leaves behind)
CLUSTER, SIZE, DUP_OF, DUP_INDEX, REASON, NODE, SPLIT = (
    "__mh_cluster", "__mh_size", "__mh_dup_of", "__mh_dup_index", "__mh_reason", "__mh_node", "__mh_split",
)  # fmt: skip
NEAR, NEAR_INDEXED = "near_duplicate", "near_duplicate_indexed"

# One schema per union, so that both sides of a union agree column for column.
ROWS = pa.schema([("band", pa.int32()), ("key", pa.int64()), ("node", pa.string()), ("sig", pa.binary())])
HALF = pa.schema([("node", pa.string()), ("u", pa.string()), ("v", pa.string()), ("sig", pa.binary())])
MARKED = pa.schema([("band", pa.int32()), ("key", pa.int64()), ("node", pa.string()), ("dup", pa.bool_())])
MEMBER = pa.schema([("node", pa.string()), ("comp", pa.string()), ("sig", pa.binary())])


def conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """`t` with exactly `schema`'s columns: missing ones null, others cast, extra ones dropped."""
    cols = [t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


class Conform:
    def __init__(self, schema: pa.Schema, names: dict[str, str] | None = None) -> None:
        self.schema = schema
        self.names = names or {}

    def __call__(self, t: pa.Table) -> pa.Table:
        return conform(t.rename_columns([self.names.get(c, c) for c in t.column_names]), self.schema)


# -- signatures as rows ----------------------------------------------------------------------------------------------


def sketch_rows(sigs: np.ndarray) -> pa.Array:
    """Signatures as binary rows of their low 16 bits (b-bit MinHash, Li & Koenig 2010: equal with probability
    J + (1 - J) / 2^16), half the bytes through the verification shuffle."""
    packed = np.ascontiguousarray(sigs.astype(np.uint16))
    width = packed.shape[1] * 2
    offsets = np.arange(len(packed) + 1, dtype=np.int32) * width
    return pa.Array.from_buffers(pa.binary(), len(packed), [None, pa.py_buffer(offsets), pa.py_buffer(packed)])


_CHANCE = 1.0 / 65536


def sketch_jaccard(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Estimated Jaccard of row pairs of 16-bit sketches, corrected for chance collisions."""
    if len(a) == 0:
        return np.zeros(0)
    x = np.stack([np.frombuffer(s, np.uint16) for s in a.to_pylist()])
    y = np.stack([np.frombuffer(s, np.uint16) for s in b.to_pylist()])
    return _corrected(mm.estimated_jaccard(x, y))


def _corrected(equal_share: np.ndarray) -> np.ndarray:
    return np.clip((equal_share - _CHANCE) / (1 - _CHANCE), 0.0, 1.0)


def only_bands(t: pa.Table) -> pa.Table:
    return t.filter(pc.is_valid(t.column("band"))).select(["band", "key", "node"])


def only_sketches(t: pa.Table) -> pa.Table:
    return t.filter(pc.is_valid(t.column("sig"))).select(["node", "sig"])


# -- candidates and their verification -------------------------------------------------------------------------------


def bucket_edges(t: pa.Table) -> pa.Table:
    """Star edges of each (band, key) bucket to its smallest node; none between two indexed nodes."""
    edges = star_edges(t, ["band", "key"])
    return edges.filter(pc.invert(pc.starts_with(edges.column("v"), "0")))


def edge_ends(t: pa.Table) -> pa.Table:
    """Each edge twice, keyed by either end, to meet the sketches of its two documents."""
    return pa.concat_tables([conform(t.append_column("node", t.column(end)), HALF) for end in ("u", "v")])


def half_edges(t: pa.Table) -> pa.Table:
    """Groups of node: its sketch (if any; indexed documents have none) and its edges -> (u, v, end, sig)."""
    is_sketch = pc.is_valid(t.column("sig"))
    sketches = t.filter(is_sketch)
    edges = t.filter(pc.invert(is_sketch))
    sig = sketches.column("sig").take(pc.index_in(edges.column("node"), value_set=sketches.column("node")))
    end_u = pc.equal(edges.column("node"), edges.column("u"))
    return pa.table({"u": edges.column("u"), "v": edges.column("v"), "end_u": end_u, "sig": sig})


class VerifyPairs:
    """Groups of (u, v): its half edges -> one row per distinct pair with `verified` (estimated Jaccard of the two
    sketches >= min_jaccard; a pair with an indexed document, which has no sketch, passes)."""

    def __init__(self, min_jaccard: float | None) -> None:
        self.min_jaccard = min_jaccard

    def __call__(self, t: pa.Table) -> pa.Table:
        if self.min_jaccard is None or "end_u" not in t.column_names:
            pairs = t.group_by(["u", "v"]).aggregate([])
            return pa.table({"u": pairs.column("u"), "v": pairs.column("v"), "verified": np.ones(pairs.num_rows, bool)})
        first = t.group_by(["u", "v", "end_u"], use_threads=False).aggregate([("sig", "first")])
        ends = [first.filter(pc.equal(first.column("end_u"), side)).drop_columns(["end_u"]) for side in (True, False)]
        pairs = (
            ends[0].rename_columns(["u", "v", "sig_u"]).join(ends[1].rename_columns(["u", "v", "sig_v"]), ["u", "v"])
        )
        su, sv = pairs.column("sig_u").combine_chunks(), pairs.column("sig_v").combine_chunks()
        both = pc.and_(pc.is_valid(su), pc.is_valid(sv)).to_numpy(zero_copy_only=False)
        verified = ~both
        idx = pa.array(np.flatnonzero(both))
        verified[both] = sketch_jaccard(su.take(idx), sv.take(idx)) >= self.min_jaccard
        return pa.table({"u": pairs.column("u"), "v": pairs.column("v"), "verified": verified})


def pair_counts(t: pa.Table) -> pa.Table:
    return pa.table({"pairs": [t.num_rows], "verified": [int(pc.sum(t.column("verified")).as_py() or 0)]})


def verified_only(t: pa.Table) -> pa.Table:
    return t.filter(t.column("verified")).select(["u", "v"])


def with_constant_key(t: pa.Table) -> pa.Table:
    return t.append_column("__all__", pa.array(np.zeros(t.num_rows, np.int8)))


# -- clusters --------------------------------------------------------------------------------------------------------


class Clusters:
    """Star edges grouped by centre v -> one row per document of this run in a cluster: its id, the cluster (the
    kept document's id), the cluster size, and for the others the reason and the document they duplicate."""

    def __init__(self, width: int, indexes: list[str]) -> None:
        self.width = width  # characters before the id in a node key of this run
        self.indexes = indexes

    def __call__(self, t: pa.Table) -> pa.Table:
        t = t.group_by(["u", "v"]).aggregate([])
        sizes = t.group_by("v").aggregate([("u", "count")])
        centres = sizes.column("v").combine_chunks()
        size = pc.add(sizes.column("u_count"), 1).combine_chunks()
        nodes = pa.concat_arrays([t.column("u").combine_chunks(), centres])
        leader = pa.concat_arrays([t.column("v").combine_chunks(), centres])
        sizes_of = size.take(pc.index_in(leader, value_set=centres))
        new = pc.starts_with(nodes, "1")
        nodes, leader, sizes_of = nodes.filter(new), leader.filter(new), sizes_of.filter(new)
        indexed = pc.starts_with(leader, "0")
        leader_id = pc.if_else(indexed, pc.utf8_slice_codeunits(leader, 4), pc.utf8_slice_codeunits(leader, self.width))
        is_dup = pc.not_equal(nodes, leader)
        null = pa.scalar(None, pa.string())
        dup_index = pa.nulls(len(nodes), pa.string())
        if self.indexes:
            digits = pc.if_else(indexed, pc.utf8_slice_codeunits(leader, 1, 4), pa.scalar("000"))
            names = pa.array(self.indexes, pa.string()).take(pc.cast(digits, pa.int64()))
            dup_index = pc.if_else(indexed, names, null)
        reason = pc.if_else(is_dup, pc.if_else(indexed, pa.scalar(NEAR_INDEXED), pa.scalar(NEAR)), null)
        return pa.table(
            {
                "id": pc.utf8_slice_codeunits(nodes, self.width),
                CLUSTER: leader_id,
                SIZE: sizes_of,
                DUP_OF: pc.if_else(is_dup, leader_id, null),
                DUP_INDEX: dup_index,
                REASON: reason,
                NODE: nodes,
            }
        )


def cluster_counts(t: pa.Table) -> pa.Table:
    reason = t.column(REASON)
    leaders = pc.and_(pc.is_null(reason), pc.greater(t.column(SIZE), 1))  # star mode also labels its singletons
    split = t.column(SPLIT) if SPLIT in t.column_names else pa.array(np.zeros(t.num_rows, bool))
    return pa.table(
        {
            "clusters": [int(pc.sum(leaders).as_py() or 0)],
            "near_duplicates": [int(pc.sum(pc.equal(reason, NEAR)).as_py() or 0)],
            "indexed_duplicates": [int(pc.sum(pc.equal(reason, NEAR_INDEXED)).as_py() or 0)],
            "largest_cluster": [int(pc.max(t.column(SIZE)).as_py() or 0)],
            "chain_kept": [int(pc.sum(split).as_py() or 0)],
        }
    )


# -- star clusters (clusters: star) ----------------------------------------------------------------------------------

COMP = "__mh_comp"  # joined onto the documents: the component (its smallest node) of a document in one
MEMBER = pa.schema([("id", pa.string()), (COMP, pa.string()), (NODE, pa.string())])
SHINGLES = pa.schema([("node", pa.string()), ("comp", pa.string()), ("shingles", pa.large_binary())])
# A pair is compared exactly only if its signatures estimate Jaccard >= min_jaccard - this (5 standard deviations
# at 128 permutations): the estimate only prunes pairs that cannot be similar.
PRUNE_MARGIN = 0.2


def component_members(t: pa.Table) -> pa.Table:
    """Star edges (leaf u, component minimum v) -> membership rows (node, comp) for leaves and centres (a centre
    once per edge; unique_members keeps one)."""
    u, v = t.column("u").combine_chunks(), t.column("v").combine_chunks()
    return pa.table({"node": pa.concat_arrays([u, v]), "comp": pa.concat_arrays([v, v])})


class UniqueMembers:
    """Groups of node -> one row (id, COMP, NODE) per document of this run in a component, to join by id."""

    def __init__(self, width: int) -> None:
        self.width = width

    def __call__(self, t: pa.Table) -> pa.Table:
        t = t.filter(pc.starts_with(t.column("node"), "1"))
        m = t.group_by("node", use_threads=False).aggregate([("comp", "min")])
        node = m.column("node").combine_chunks()
        cols = [pc.utf8_slice_codeunits(node, self.width), m.column("comp_min").combine_chunks(), node]
        return pa.Table.from_arrays(cols, schema=MEMBER)


def shingle_set_rows(nodes: pa.Array, comps: pa.Array, hashes: np.ndarray, counts: np.ndarray) -> pa.Table:
    """(node, comp, shingles): each document's distinct shingle hashes, sorted, as the bytes of a uint64 array."""
    parts = np.split(hashes, np.cumsum(counts)[:-1]) if len(counts) else []
    sets = [np.unique(p) for p in parts]
    flat = np.concatenate(sets) if sets else np.zeros(0, np.uint64)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in sets], dtype=np.int64)]) * 8
    data = pa.Array.from_buffers(pa.large_binary(), len(sets), [None, pa.py_buffer(offsets), pa.py_buffer(flat)])
    return pa.Table.from_arrays([nodes, comps, data], schema=SHINGLES)


def exact_jaccards(a: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """Jaccard of the sorted distinct hashes `a` with each of `others`."""
    out = np.zeros(len(others))
    for k, b in enumerate(others):
        inter = len(np.intersect1d(a, b, assume_unique=True))
        union = len(a) + len(b) - inter
        out[k] = inter / union if union else 1.0
    return out


def star_representatives(sets: list[np.ndarray], sigs: np.ndarray, min_jaccard: float) -> np.ndarray:
    """Greedy star clustering of one component whose rows are in node-key order: the first row not yet assigned
    becomes a representative and takes every unassigned later row whose exact shingle Jaccard with it is >=
    min_jaccard; repeat. `sigs` (rows, permutations) are MinHash signatures of the same sets: a pair whose estimate
    is below min_jaccard - PRUNE_MARGIN is not compared exactly. Returns each row's representative (its own index
    for one). Cost: O(rows x representatives) signature comparisons, exact ones for the pairs that pass."""
    k = len(sets)
    rep = np.full(k, -1, np.int64)
    for i in range(k):
        if rep[i] >= 0:
            continue
        rep[i] = i
        rest = np.flatnonzero(rep[i + 1 :] < 0) + i + 1
        if not len(rest):
            continue
        rest = rest[mm.estimated_jaccard(sigs[rest], sigs[i]) >= min_jaccard - PRUNE_MARGIN]
        if len(rest):
            similar = exact_jaccards(sets[i], [sets[j] for j in rest]) >= min_jaccard
            rep[rest[similar]] = i
    return rep


class StarClusters:
    """Groups of component (node, comp, shingles) -> the same rows as Clusters, but every removed document's exact
    shingle Jaccard with its representative (the document kept for it) is >= min_jaccard: each component is split
    by star_representatives. Representatives left alone get a row with size 1 (not counted as clusters); SPLIT
    marks the documents kept that connected components would have removed."""

    def __init__(self, width: int, min_jaccard: float, perms: mm.Permutations) -> None:
        self.width = width
        self.min_jaccard = min_jaccard
        self.perms = perms

    def __call__(self, t: pa.Table) -> pa.Table:
        t = t.sort_by([("comp", "ascending"), ("node", "ascending")])
        nodes = t.column("node").combine_chunks()
        if len(nodes) != len(pc.unique(nodes)):
            raise StageError("minhash clusters: star: a document id occurs more than once")
        comp = t.column("comp").to_numpy(zero_copy_only=False)
        sets = [np.frombuffer(b, np.uint64) if b else np.zeros(0, np.uint64) for b in t.column("shingles").to_pylist()]
        counts = np.fromiter(map(len, sets), np.int64, len(sets))
        flat = np.concatenate(sets) if sets else np.zeros(0, np.uint64)
        sigs = mm.signatures(flat, counts, self.perms)
        rep = np.arange(len(nodes))
        starts = np.flatnonzero(np.concatenate([[True], comp[1:] != comp[:-1]])) if len(comp) else np.zeros(0, int)
        for a, b in zip(starts, [*starts[1:], len(comp)]):
            rep[a:b] = star_representatives(sets[a:b], sigs[a:b], self.min_jaccard) + a
        own = rep == np.arange(len(rep))
        size = np.bincount(rep, minlength=len(rep))[rep]
        leader_id = pc.utf8_slice_codeunits(nodes.take(pa.array(rep)), self.width)
        is_dup = pa.array(~own)
        first_of_comp = np.zeros(len(rep), bool)
        first_of_comp[starts] = True
        null = pa.scalar(None, pa.string())
        return pa.table(
            {
                "id": pc.utf8_slice_codeunits(nodes, self.width),
                CLUSTER: leader_id,
                SIZE: pa.array(size.astype(np.int64)),
                DUP_OF: pc.if_else(is_dup, leader_id, null),
                DUP_INDEX: pa.nulls(len(nodes), pa.string()),
                REASON: pc.if_else(is_dup, pa.scalar(NEAR), null),
                NODE: nodes,
                SPLIT: pa.array(own & ~first_of_comp),
            }
        )


# -- the index -------------------------------------------------------------------------------------------------------


def duplicate_marks(t: pa.Table) -> pa.Table:
    """Label rows of removed documents -> marks (node, dup) that meet their band rows."""
    dup = t.filter(pc.is_valid(t.column(REASON)))
    return conform(pa.table({"node": dup.column(NODE), "dup": np.ones(dup.num_rows, bool)}), MARKED)


class KeptIndexRows:
    """Groups of node: band rows and, for removed documents, a mark -> the band rows (band, key, id) of kept
    documents of this run, with the index metadata on the schema."""

    def __init__(self, width: int, meta: dict[str, Any]) -> None:
        self.width = width
        self.meta = json.dumps(meta, sort_keys=True).encode()

    def __call__(self, t: pa.Table) -> pa.Table:
        marked = t.filter(pc.fill_null(t.column("dup"), False)).column("node")
        rows = t.filter(pc.is_valid(t.column("band")))
        rows = rows.filter(pc.invert(pc.is_in(rows.column("node"), value_set=marked.combine_chunks())))
        rows = rows.filter(pc.starts_with(rows.column("node"), "1"))
        out = pa.table(
            {
                "band": rows.column("band"),
                "key": rows.column("key"),
                "id": pc.utf8_slice_codeunits(rows.column("node"), self.width),
            }
        )
        return out.replace_schema_metadata({INDEX_META: self.meta})


class IndexNodes:
    """Index rows (band, key, id) -> band rows whose node is `0<index number><id>`."""

    def __init__(self, number: int) -> None:
        self.prefix = f"0{number:03d}"

    def __call__(self, t: pa.Table) -> pa.Table:
        node = pc.binary_join_element_wise(self.prefix, pc.cast(t.column("id"), pa.string()), "")
        return conform(pa.table({"band": t.column("band"), "key": t.column("key"), "node": node}), ROWS).select(
            ["band", "key", "node"]
        )


# -- the documents' columns ------------------------------------------------------------------------------------------


def decide(body: pa.Table) -> pa.Table:
    """The stage's columns and reasons from the joined cluster labels (no label: a singleton, kept)."""
    n = body.num_rows
    ids = body.column("id")

    def col(name: str, dtype: pa.DataType) -> Any:
        return body.column(name) if name in body.column_names else pa.nulls(n, dtype)

    values = {
        "dedup_cluster": pc.coalesce(col(CLUSTER, pa.string()), ids),
        "dedup_cluster_size": pc.coalesce(col(SIZE, pa.int64()), pa.scalar(1, pa.int64())),
        "duplicate_of": col(DUP_OF, pa.string()),
        "duplicate_index": col(DUP_INDEX, pa.string()),
        "reason": col(REASON, pa.string()),
    }
    body = body.drop_columns([c for c in body.column_names if c.startswith("__mh_") or c in values])
    for name, value in values.items():
        body = body.append_column(name, value)
    return body


def descending_rank(values: np.ndarray) -> np.ndarray:
    """uint64 ranks whose ascending order is the float values' descending order; NaN (null) ranks last."""
    values = np.where(np.isnan(values), -np.inf, values.astype(np.float64))
    bits = values.view(np.uint64)
    ordered = np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))  # ascending with the value
    rank = ~ordered
    rank[np.isneginf(values)] = np.uint64(2**64 - 1)
    return rank
