"""A global stage that uses every primitive of the Docs/Table interface (imported by tests as module:attr)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

import curate


class FirstWordGroups(curate.GlobalStage):
    """Groups documents by their first word through a derived table; keeps the smallest id of each group."""

    output_columns = {"group_size": pa.int64()}
    rejected_columns = {"duplicate_of": pa.string()}
    side: bool = True

    def apply_global(self, docs):
        def first_word(body: pa.Table) -> pa.Table:
            words = [(t or "").split()[:1] for t in body.column("text").to_pylist()]
            key = pa.array([w[0].lower() if w else None for w in words], pa.string())
            # two rows per document (any row count is allowed): the key, and a constant row that is filtered later
            return pa.concat_tables(
                [
                    pa.table({"key": key, "id": body.column("id"), "kind": pa.array(["k"] * body.num_rows)}),
                    pa.table({"key": key, "id": body.column("id"), "kind": pa.array(["x"] * body.num_rows)}),
                ]
            )

        rows = docs.derive(first_word).map_batches(lambda t: t.filter(pc.equal(t.column("kind"), "k")))
        rows = rows.materialize()
        self.count("key_rows", rows.count())

        def groups(t: pa.Table) -> pa.Table:
            g = t.group_by("key").aggregate([("id", "min"), ("id", "count")])
            first = dict(zip(g.column("key").to_pylist(), g.column("id_min").to_pylist()))
            size = dict(zip(g.column("key").to_pylist(), g.column("id_count").to_pylist()))
            keys = t.column("key").to_pylist()
            return pa.table(
                {
                    "id": t.column("id"),
                    "first": pa.array([first[k] for k in keys], pa.string()),
                    "group_size": pa.array([size[k] for k in keys], pa.int64()),
                }
            )

        labels = rows.group_by("key", groups)
        extra = docs.table(pa.table({"id": ["nobody"], "first": ["nobody"], "group_size": [0]}))
        labels = labels.union(extra).materialize()
        self.count(
            "groups", int(pc.sum(pc.equal(labels.collect().column("id"), labels.collect().column("first"))).as_py())
        )
        if self.side:
            docs.write_side("labels", labels)

        def decide(body: pa.Table) -> pa.Table:
            dup = pc.fill_null(pc.not_equal(body.column("id"), body.column("first")), False)
            reason = pc.if_else(dup, pa.scalar("same_first_word"), pa.scalar(None, pa.string()))
            dup_of = pc.if_else(dup, body.column("first"), pa.scalar(None, pa.string()))
            return body.drop_columns(["first"]).append_column("reason", reason).append_column("duplicate_of", dup_of)

        return docs.join(labels, on="id").map_batches(decide)


class SameText(curate.GlobalStage):
    """Keeps the smallest id of each text, deciding each text's documents together through partition_by."""

    def apply_global(self, docs):
        def decide(body: pa.Table) -> pa.Table:
            g = body.group_by("text").aggregate([("id", "min")])
            first = dict(zip(g.column("text").to_pylist(), g.column("id_min").to_pylist()))
            ids, texts = body.column("id").to_pylist(), body.column("text").to_pylist()
            reasons = [None if first[t] == i else "same_text" for i, t in zip(ids, texts)]
            return body.append_column("reason", pa.array(reasons, pa.string()))

        return docs.partition_by("text", decide)
