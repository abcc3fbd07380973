"""Near-duplicate removal by MinHash LSH (Broder 1997), distributed end to end: signatures per batch, candidates from
a shuffle of band keys (never of the text), verification by estimated Jaccard, connected components by large-star /
small-star, and an index that later crawl dumps are deduplicated against.

Documents are graph nodes named by a sortable key, `<tier><rank><id>`: tier 0 for documents of an index (they
always win), 1 for this run's; the rank encodes `keep` (empty for `first`, a fixed-width number for `longest` or a
score). Connected components label each cluster with its smallest node, which is therefore the document to keep.
With `clusters: star` each component is then split, in node-key order, into stars of documents similar to the one
kept for them (steps.StarClusters).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.errors import ConfigError, InputError, StageError
from curate.io.base import join as join_path
from curate.io.base import open_input
from curate.stage import Docs, GlobalStage, Table
from curate.text import canonical_language, check_splitter, require_splitter, simplify_text, tokenizer
from curate_filters.dedup import minhash_math as mm
from curate_filters.dedup import minhash_steps as steps
from curate_filters.dedup.components import connected_components, stars_in_memory

log = logging.getLogger("curate_filters.dedup")

INDEX_MANIFEST = "_manifest.json"
_RANK_WIDTH = 20  # digits of a uint64
_MAX_INDEXES = 1000  # index numbers are three digits in node keys
_DEFAULT_THRESHOLD = 0.8
PRESETS: dict[str, dict[str, Any]] = {
    # FineWeb (Penedo et al. 2024, and datatrove's MinhashConfig as FineWeb ran it): 5-grams, 14 buckets of 8
    # hashes, no verification of candidate pairs.
    "fineweb": {"ngram": 5, "bands": 14, "rows": 8, "min_jaccard": None},
}
# Verified edges up to this many are joined into clusters by one worker (about 100 bytes each in memory).
SMALL_GRAPH_EDGES = 1_000_000
# clusters: star prunes the exact comparisons of a component by signatures of this many permutations.
STAR_PERMUTATIONS = 128


@dataclass(frozen=True)
class Plan:
    """The resolved LSH parameters of a stage (after preset, threshold and defaults)."""

    ngram: int
    bands: int
    rows: int
    seed: int
    min_jaccard: float | None
    language: str | None
    word_splitter: str | None = None

    @property
    def permutations(self) -> int:
        return self.bands * self.rows

    def index_meta(self) -> dict[str, Any]:
        """What must agree between an index and a stage that reads it."""
        return {
            "hash_scheme": mm.HASH_SCHEME,
            "ngram": self.ngram,
            "bands": self.bands,
            "rows": self.rows,
            "seed": self.seed,
            "language": self.language,
            **({"word_splitter": self.word_splitter} if self.word_splitter else {}),
        }


class MinHash(GlobalStage):
    """Near-duplicate removal with MinHash LSH over word n-grams; keeps one document per cluster.

    Replaces datatrove's MinhashDedupSignature / Buckets / Cluster / Filter (its n_grams, num_buckets and
    hashes_per_bucket are accepted as ngram, bands and rows). Kept documents get `dedup_cluster` (the id of the
    cluster's kept document, their own for singletons) and `dedup_cluster_size`; removed ones the reason
    `near_duplicate` (or `near_duplicate_indexed`) and `duplicate_of` (and `duplicate_index`) in OUT/rejected/.
    With `clusters: star` a cluster is a kept document and the members whose exact n-gram Jaccard with it reaches
    min_jaccard, so chains (A~B~C with A and C unlike) no longer remove C for A.
    """

    name = "minhash"
    aliases: ClassVar[dict[str, str]] = {"n_grams": "ngram", "num_buckets": "bands", "hashes_per_bucket": "rows"}
    output_columns = {"dedup_cluster": pa.string(), "dedup_cluster_size": pa.int64()}
    rejected_columns = {"duplicate_of": pa.string(), "duplicate_index": pa.string()}
    input_columns = ("id", "text")
    reasons = (steps.NEAR, steps.NEAR_INDEXED)

    # Words per shingle (after datatrove's simplify_text); a document with fewer words is one shingle.
    ngram: int = 5
    # LSH bands and rows (hashes) per band; give both, or `threshold`, or neither (threshold 0.8: 20 x 8).
    bands: int | None = None
    rows: int | None = None
    # Jaccard similarity to detect with probability >= 0.95; chooses bands x rows from 160 permutations.
    threshold: float | None = None
    # Published parameter sets: `fineweb` (5-grams, 14 x 8, no verification).
    preset: Literal["fineweb"] | None = None
    # Seed of the permutations (signatures of different seeds are not comparable).
    seed: int = 1
    # Drop candidate pairs whose estimated Jaccard is below this; auto: the threshold minus 0.1; null: keep all.
    min_jaccard: float | Literal["auto"] | None = "auto"
    # Which document of a cluster stays: first (smallest id), longest (most characters), or the highest value of
    # a numeric column (e.g. quality_score).
    keep: str = "first"
    # Word splitting rules; null: each document's `language` column.
    language: str | None = "en"
    # A named word splitter for the languages it serves (curate.text.SPLITTERS); null: the language's default.
    word_splitter: str | None = None
    # How verified pairs become clusters. connected: connected components, the smallest node key of each is kept and
    # every other member removed as its duplicate, however far along a chain (A~B~C removes C for A even when A and
    # C differ). star: each component is split greedily in `keep` order into stars whose every removed member has
    # exact word-n-gram Jaccard >= min_jaccard with the document kept for it (its duplicate_of); costs a join of
    # the documents of components, their shingling again and a shuffle of their shingle sets by component. Needs
    # min_jaccard; not with index.against (indexed documents have no text here to compare with). auto (the
    # default): star where it can run (min_jaccard set, no index.against), else connected.
    clusters: Literal["auto", "connected", "star"] = "auto"
    # Cross-dump index: {write: PATH} saves this run's kept documents' band keys; {against: [PATH, ...]} removes
    # documents that match an indexed one (indexed documents always win).
    index: dict[str, Any] | None = None

    plan: Plan = field(init=False, repr=False, compare=False, default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.plan = self._resolve()
        _, against = self._index_paths()  # validates the index mapping
        self._check_clusters(against)

    # -- parameters ---------------------------------------------------------------------------------------------
    def _check_clusters(self, against: list[str]) -> None:
        if self.clusters not in ("auto", "connected", "star"):
            raise ConfigError(f"clusters must be auto, connected or star, got {self.clusters!r}")
        if self.clusters == "auto":
            return
        if self.clusters != "star":
            return
        if self.plan.min_jaccard is None:
            raise ConfigError(
                "clusters: star keeps a document unless its Jaccard with the kept one reaches min_jaccard, "
                "and min_jaccard is null here (no verification)",
                hint="give min_jaccard (e.g. auto, or 0.7 with preset: fineweb), or use clusters: connected",
            )
        if against:
            raise ConfigError(
                "clusters: star cannot be combined with index.against: indexed documents have no text or "
                "shingles here to compare members with",
                hint="use clusters: connected with index.against (index.write works with star)",
            )

    @property
    def cluster_mode(self) -> str:
        """The clustering in force: `clusters`, with auto resolved (star where min_jaccard is set and no
        index.against is given, else connected)."""
        if self.clusters != "auto":
            return self.clusters
        _, against = self._index_paths()
        return "star" if self.plan.min_jaccard is not None and not against else "connected"

    def _resolve(self) -> Plan:
        ngram, bands, rows, min_j = self.ngram, self.bands, self.rows, self.min_jaccard
        if isinstance(ngram, bool) or ngram < 1:
            raise ConfigError(f"ngram must be at least 1, got {ngram}")
        if not 0 <= self.seed < 2**64:
            raise ConfigError(f"seed must be between 0 and 2^64 - 1, got {self.seed}")
        if self.keep in ("", "id", "text"):
            raise ConfigError(f"keep: '{self.keep}' is not a ranking", hint="first, longest, or a numeric column")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be between 0 and 1, got {self.threshold}")
        if (bands is None) != (rows is None):
            raise ConfigError("give both bands and rows, or neither", hint="or give threshold: and let it choose")
        if self.preset is not None:
            preset = PRESETS[self.preset]
            if bands is not None or self.threshold is not None:
                raise ConfigError(f"preset: {self.preset} sets bands and rows; do not also give bands/rows/threshold")
            if ngram != preset["ngram"]:
                raise ConfigError(f"preset: {self.preset} uses ngram {preset['ngram']}, not {ngram}")
            bands, rows = preset["bands"], preset["rows"]
            if min_j == "auto":
                min_j = preset["min_jaccard"]
        elif bands is None:
            target = self.threshold if self.threshold is not None else _DEFAULT_THRESHOLD
            bands, rows = mm.choose_bands_rows(target)
        else:
            self._check_banding(bands, rows)  # type: ignore[arg-type]
        assert bands is not None and rows is not None
        if min_j == "auto":
            # the threshold stated, or the one the banding was chosen for, or the one given bands x rows reach
            stated = self.threshold or (_DEFAULT_THRESHOLD if self.bands is None else _threshold_of(bands, rows))
            min_j = round(max(0.0, stated - 0.1), 4)
        if min_j is not None and not 0.0 <= float(min_j) <= 1.0:
            raise ConfigError(f"min_jaccard must be between 0 and 1, got {min_j}")
        if min_j is not None and self.threshold is not None and min_j > self.threshold:
            raise ConfigError(
                f"min_jaccard {min_j} is above threshold {self.threshold}: verification would drop pairs the "
                "banding is asked to find",
                hint="lower min_jaccard (or auto), or raise threshold",
            )
        language = canonical_language(self.language) if self.language else None
        check_splitter(self.word_splitter)
        min_j = None if min_j is None else float(min_j)
        return Plan(ngram, bands, rows, self.seed, min_j, language, self.word_splitter)

    def _check_banding(self, bands: int, rows: int) -> None:
        if bands < 1 or rows < 1:
            raise ConfigError(f"bands and rows must be at least 1, got {bands} x {rows}")
        if bands * rows > mm.MAX_PERMUTATIONS:
            raise ConfigError(f"{bands} x {rows} = {bands * rows} permutations; at most {mm.MAX_PERMUTATIONS}")
        t = self.threshold
        if t is not None:
            p = mm.detection_probability(t, bands, rows)
            if p < mm.MIN_RECALL:
                raise ConfigError(
                    f"{bands} bands x {rows} rows detect a pair at Jaccard {t} with probability {p:.3f} only "
                    f"(need {mm.MIN_RECALL})",
                    hint=self._banding_hint(t, bands, rows),
                )
        elif rows > bands:
            # no threshold stated: a banding that misses most pairs at the default 0.8 but not when swapped
            p, swapped = (mm.detection_probability(_DEFAULT_THRESHOLD, b, r) for b, r in ((bands, rows), (rows, bands)))
            if p < 0.5 <= mm.MIN_RECALL <= swapped:
                raise ConfigError(
                    f"bands: {bands}, rows: {rows} looks swapped: it detects a pair at Jaccard {_DEFAULT_THRESHOLD} "
                    f"with probability {p:.3f}, bands: {rows}, rows: {bands} with {swapped:.3f}",
                    hint=f"swap them, or state the threshold: you mean (e.g. threshold: {_threshold_of(bands, rows)})",
                )

    @staticmethod
    def _banding_hint(t: float, bands: int, rows: int) -> str:
        if mm.detection_probability(t, rows, bands) >= mm.MIN_RECALL:
            return f"bands and rows look swapped: bands: {rows}, rows: {bands}"
        b, r = mm.choose_bands_rows(t)
        return f"with rows: {rows} use at least bands: {mm.bands_for(t, rows)}; or drop bands/rows ({b} x {r})"

    def _index_paths(self) -> tuple[str | None, list[str]]:
        if self.index is None:
            return None, []
        unknown = set(self.index) - {"write", "against"}
        if unknown:
            raise ConfigError(f"index: unknown key(s) {', '.join(sorted(unknown))} (known: write, against)")
        write = self.index.get("write")
        against = self.index.get("against") or []
        if isinstance(against, str):
            against = [against]
        if write is not None and not (isinstance(write, str) and write):
            raise ConfigError("index.write must be a path")
        if not isinstance(against, list) or not all(isinstance(p, str) and p for p in against):
            raise ConfigError("index.against must be a path or a list of paths")
        if len(against) > _MAX_INDEXES:
            raise ConfigError(f"index.against: at most {_MAX_INDEXES} indexes")
        if write is not None and write.rstrip("/") in [p.rstrip("/") for p in against]:
            raise ConfigError("index.write must differ from every index.against path")
        return write, list(against)

    # -- per batch: signatures, band keys, node keys -------------------------------------------------------------
    def preflight(self) -> None:
        require_splitter(self.plan.word_splitter)

    def setup(self) -> None:
        # spaCy's rules compile into large regular expressions: build them once per worker
        tokenizer(self.plan.language, self.plan.word_splitter)

    def signatures(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(documents, permutations) uint32 MinHash signatures of a batch, and which documents have a word (the
        others get all-ones rows and are nobody's duplicate)."""
        hashes, counts = self.shingles(batch)
        return mm.signatures(hashes, counts, _permutations(self.plan.permutations, self.plan.seed)), counts > 0

    def member_shingles(self, batch: pa.Table) -> pa.Table:
        """The documents of a batch that are in a component (joined column steps.COMP) -> their shingle sets, as
        rows (node, comp, shingles) for clusters: star."""
        batch = batch.filter(pc.is_valid(batch.column(steps.COMP)))
        hashes, counts = self.shingles(batch)
        return steps.shingle_set_rows(batch.column(steps.NODE), batch.column(steps.COMP), hashes, counts)

    def shingles(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """The shingle hashes of a batch's documents, concatenated, and their number per document."""
        plan = self.plan
        texts = [simplify_text(t) if t else "" for t in batch.column("text").to_pylist()]
        if plan.language is not None or "language" not in batch.column_names:
            words: Any = mm.batch_word_hashes(texts, tokenizer(plan.language, plan.word_splitter))
        else:
            # each document's own language: one batch per language, then back in document order
            langs = [canonical_language(x) for x in batch.column("language").to_pylist()]
            words = [np.zeros(0, np.uint64)] * len(texts)
            for lang in set(langs):
                rows = [i for i, x in enumerate(langs) if x == lang]
                flat, counts = mm.batch_word_hashes([texts[i] for i in rows], tokenizer(lang, plan.word_splitter))
                for i, part in zip(rows, np.split(flat, np.cumsum(counts)[:-1])):
                    words[i] = part
        return mm.shingle_hashes(words, plan.ngram)

    def node_keys(self, batch: pa.Table) -> pa.Array:
        """The node key `1<rank><id>` of each document (see the module docstring)."""
        ids = batch.column("id").combine_chunks()
        if self.keep == "first":
            return pc.binary_join_element_wise("1", ids, "")
        if self.keep not in ("longest", *batch.column_names):
            raise StageError(
                f"minhash keep: no column '{self.keep}' on the documents",
                hint="keep: first, longest, or a numeric column that an earlier stage adds (quality_score)",
            )
        if self.keep == "longest":
            length = pc.fill_null(pc.utf8_length(batch.column("text")), 0).to_numpy(zero_copy_only=False)
            rank = np.uint64(2**64 - 1) - length.astype(np.uint64)
        else:
            rank = _descending_rank(batch.column(self.keep), self.keep)
        digits = pc.utf8_lpad(pc.cast(pa.array(rank, pa.uint64()), pa.string()), _RANK_WIDTH, "0")
        return pc.binary_join_element_wise("1", digits, ids, "")

    def _node_width(self) -> int:
        return 1 + (0 if self.keep == "first" else _RANK_WIDTH)

    def derive_rows(self, batch: pa.Table) -> pa.Table:
        """Per batch of documents: band rows (band, key, node), and when verifying one sketch row (node, sig)
        per document, in one table (schema steps.ROWS)."""
        plan = self.plan
        sigs, has = self.signatures(batch)
        sigs = sigs[has]
        nodes = self.node_keys(batch).filter(pa.array(has))
        keys = mm.band_keys(sigs, plan.bands, plan.rows)
        bands = pa.table(
            {
                "band": pa.array(np.tile(np.arange(plan.bands, dtype=np.int32), len(nodes))),
                "key": pa.array(keys.ravel()),
                "node": nodes.take(pa.array(np.repeat(np.arange(len(nodes)), plan.bands))),
            }
        )
        parts = [steps.conform(bands, steps.ROWS)]
        if plan.min_jaccard is not None:
            parts.append(steps.conform(pa.table({"node": nodes, "sig": steps.sketch_rows(sigs)}), steps.ROWS))
        return pa.concat_tables(parts)

    # -- the global pass -----------------------------------------------------------------------------------------
    def apply_global(self, docs: Docs) -> Docs:
        plan = self.plan
        write, against = self._index_paths()
        log.info(
            "minhash: %s; %s; clusters: %s",
            mm.describe(plan.bands, plan.rows),
            _verify_text(plan.min_jaccard),
            self.cluster_mode,
        )
        self.count(f"hash_scheme:{mm.HASH_SCHEME}", 1)
        rows = docs.derive(self.derive_rows).materialize()
        bands = rows.map_batches(steps.only_bands)
        indexes = [self._read_index(docs, path, k) for k, path in enumerate(against)]
        # candidates: a shuffle of band keys; each bucket links its members to its smallest node
        edges = (bands.union(*indexes) if indexes else bands).group_by(["band", "key"], steps.bucket_edges)
        if plan.min_jaccard is not None:
            # each edge meets the sketches of its two ends (a shuffle by node), then its other half (by pair)
            sketches = rows.map_batches(steps.only_sketches).map_batches(steps.Conform(steps.HALF))
            edges = edges.map_batches(steps.edge_ends).union(sketches).group_by("node", steps.half_edges)
        pairs = edges.group_by(["u", "v"], steps.VerifyPairs(plan.min_jaccard)).materialize()
        counts = pairs.map_batches(steps.pair_counts).collect()
        candidates, verified = (_total(counts, c) for c in ("pairs", "verified"))
        self.count("candidate_pairs", candidates)
        self.count("verified_pairs", verified)
        labels = None
        if verified:
            edges = pairs.map_batches(steps.verified_only)
            width = self._node_width()
            clusters = steps.Clusters(width, against)
            if verified <= SMALL_GRAPH_EDGES:
                # one worker finishes a small graph faster than distributed rounds would (memory: the edges)
                stars = edges.map_batches(steps.with_constant_key).group_by("__all__", stars_in_memory)
                self.count("cc_rounds", 0)
            else:
                stars, rounds = connected_components(edges, log.debug)
                self.count("cc_rounds", rounds)
            if self.cluster_mode == "star":
                # the documents of components (joined by id: the text stays) give their shingle sets, which meet
                # by component and are split into stars of members similar to their representative
                members = stars.map_batches(steps.component_members).group_by("node", steps.UniqueMembers(width))
                sets = docs.join(members.materialize(), on="id").derive(self.member_shingles)
                assert plan.min_jaccard is not None
                perms = _permutations(STAR_PERMUTATIONS, plan.seed)
                labels = sets.group_by("comp", steps.StarClusters(width, plan.min_jaccard, perms)).materialize()
            else:
                labels = stars.group_by("v", clusters).materialize()
            summary = labels.map_batches(steps.cluster_counts).collect()
            for name in ("clusters", "near_duplicates", "indexed_duplicates"):
                self.count(name, _total(summary, name))
            if self.cluster_mode == "star":
                self.count("chain_kept", _total(summary, "chain_kept"))
            self.count("largest_cluster", int(pc.max(summary.column("largest_cluster")).as_py() or 0))
            docs = docs.join(labels, on="id")
        if write is not None:
            marked = bands.map_batches(steps.Conform(steps.MARKED))
            if labels is not None:
                marked = marked.union(labels.map_batches(steps.duplicate_marks))
            kept = marked.group_by("node", steps.KeptIndexRows(self._node_width(), plan.index_meta()))
            files = docs.write_side("index", kept, path=write)
            self.count("index_rows_written", sum(int(f.get("rows", 0)) for f in files))
        return docs.map_batches(steps.decide)

    def _read_index(self, docs: Docs, path: str, number: int) -> Table:
        """The band rows of an index as nodes of tier 0; its parameters must match this stage's."""
        try:
            with open_input(join_path(path, INDEX_MANIFEST), compression=None) as fh:
                manifest = json.load(fh)
        except (OSError, ValueError) as e:
            raise InputError(
                f"minhash index '{path}' has no readable {INDEX_MANIFEST} ({e})",
                hint="the run that writes an index writes its manifest last, when it finishes",
            ) from None
        files = [join_path(path, f["path"]) for f in manifest.get("files", [])]
        if not files:
            return docs.table(steps.ROWS.empty_table().select(["band", "key", "node"]))
        with open_input(files[0], compression=None) as fh:
            meta = (pq.read_schema(fh).metadata or {}).get(steps.INDEX_META)
        found = json.loads(meta) if meta else None
        want = self.plan.index_meta()
        if found != want:
            diff = (
                ", ".join(f"{k}: {found.get(k)!r} (here {want[k]!r})" for k in want if found.get(k) != want[k])
                if isinstance(found, dict)
                else "no minhash metadata"
            )
            raise ConfigError(
                f"minhash index '{path}' does not match this stage: {diff}",
                hint="deduplicate against an index written with the same hash scheme and parameters, or rebuild it",
            )
        return docs.table(files).map_batches(steps.IndexNodes(number))


# -- helpers ---------------------------------------------------------------------------------------------------------

_PERMS: dict[tuple[int, int], mm.Permutations] = {}


def _permutations(count: int, seed: int) -> mm.Permutations:
    perms = _PERMS.get((count, seed))
    if perms is None:
        perms = _PERMS[(count, seed)] = mm.Permutations.make(count, seed)
    return perms


def _threshold_of(bands: int, rows: int) -> float:
    """The Jaccard similarity that bands x rows detect with probability TARGET_RECALL (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if mm.detection_probability(mid, bands, rows) >= mm.TARGET_RECALL else (mid, hi)
    return round(hi, 3)


def _total(t: pa.Table, column: str) -> int:
    return int(pc.sum(t.column(column)).as_py() or 0) if t.num_rows else 0


def _verify_text(min_jaccard: float | None) -> str:
    if min_jaccard is None:
        return "no verification"
    return f"candidate pairs verified at estimated Jaccard >= {min_jaccard}"


def _descending_rank(column: pa.ChunkedArray, name: str) -> np.ndarray:
    try:
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise StageError(f"minhash keep: column '{name}' is not numeric ({column.type})") from e
    return steps.descending_rank(values)
