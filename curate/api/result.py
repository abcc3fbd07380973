"""What curate.run returns: the run's stats (OUT/stats.json, still a dict), the table `curate run` prints (as rows,
a pandas frame, text, HTML in Jupyter and a rich table in a terminal), the output's paths, and its documents."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from curate.io.base import join

if TYPE_CHECKING:
    import pandas as pd

    from curate.api.outputs import OutputData
    from curate.config import Pipeline

COLUMNS = ("stage", "uses", "docs_in", "kept", "rejected", "words_out", "seconds", "reasons")
_HEADERS = {"docs_in": "in", "words_out": "words out", "tokens_out": "tokens out", "reasons": "top reasons"}


def columns(stats: dict[str, Any]) -> tuple[str, ...]:
    """The table's columns: COLUMNS, and tokens_out after words_out when the pipeline counted tokens."""
    if "tokenizer" not in stats:
        return COLUMNS
    at = COLUMNS.index("words_out") + 1
    return COLUMNS[:at] + ("tokens_out",) + COLUMNS[at:]


def _numbers(stats: dict[str, Any]) -> tuple[str, ...]:
    return tuple(c for c in columns(stats) if c in ("docs_in", "kept", "rejected", "words_out", "tokens_out"))


def stats_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the table `curate run` prints (curate.cli.format_stats): one per stage, the input pseudo-stage
    only where it rejected something; `reasons` in full (the printed table shows the top three); `tokens_out` when
    the pipeline counted tokens."""
    tokens = "tokenizer" in stats
    return [
        {
            "stage": s["id"],
            "uses": s.get("uses", ""),
            "docs_in": s["docs_in"],
            "kept": s["kept"],
            "rejected": s["rejected"],
            "words_out": s.get("words_out", 0),
            **({"tokens_out": s.get("tokens_out", 0)} if tokens else {}),
            "seconds": s["seconds"],
            "reasons": dict(s["reasons"]),
        }
        for s in stats["stages"]
        if not (s["id"] == "input" and not s["rejected"])
    ]


def _top(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in list(reasons.items())[:3])


def _headline(stats: dict[str, Any]) -> str:
    # the first line of the CLI's table
    from curate.cli import format_stats

    return format_stats({**stats, "stages": []}, "").splitlines()[0]


class RunResult(dict):
    """The result of curate.run: a dict of the run's stats (OUT/stats.json, as curate.run always returned) with the
    table, the output's paths and its documents.

    `result["output_docs"]` and `result.stats` are the stats; `result.table()` the table's rows and `to_pandas()` the
    same as a DataFrame; `result.output` is OUT, `result.data` OUT/data and `result.rejected` {stage: its folder};
    `result.open()` reads the documents back (curate.open) and `result.report()` writes OUT/report.html.
    """

    def __init__(self, stats: dict[str, Any], pipeline: Pipeline) -> None:
        super().__init__(stats)
        self.pipeline = pipeline
        self.output: str = pipeline.output.path

    @property
    def stats(self) -> dict[str, Any]:
        """OUT/stats.json as a plain dict."""
        return dict(self)

    @property
    def data(self) -> str:
        """The folder of the kept documents (OUT/data)."""
        from curate.output import sink

        return join(self.output, sink.DATA_DIR)

    @property
    def rejected(self) -> dict[str, str]:
        """{stage id: the folder of the documents it rejected} for each stage that rejected any and wrote them."""
        if not self.pipeline.output.write_rejected:
            return {}
        return {s["id"]: join(self.output, "rejected", s["id"]) for s in self["stages"] if s["rejected"]}

    def table(self) -> list[dict[str, Any]]:
        """The rows of the table `curate run` prints, as dicts (stage, uses, docs_in, kept, rejected, words_out,
        tokens_out with a pipeline tokenizer, seconds, reasons)."""
        return stats_rows(self)

    def to_pandas(self) -> pd.DataFrame:
        """The table as a pandas DataFrame indexed by stage."""
        import pandas as pd

        return pd.DataFrame(self.table(), columns=list(columns(self))).set_index("stage")

    def open(self) -> OutputData:
        """The output's documents, kept and rejected (curate.open(OUT))."""
        from curate.api.outputs import open_output

        return open_output(self.output)

    def report(self, **kwargs: Any) -> str:
        """Write OUT/report.html (curate report OUT; keyword arguments max_rows and examples) and return its path."""
        from curate.report.html import write_report

        return str(write_report(self.output, **kwargs))

    # -- how it shows -------------------------------------------------------------------------------------------
    def __str__(self) -> str:
        from curate.cli import format_stats

        return format_stats(self, self.output)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's plain-text display
        p.text(str(self))

    def _repr_html_(self) -> str:
        heads = "".join(f"<th>{html.escape(_HEADERS.get(c, c))}</th>" for c in columns(self) if c != "uses")
        rows = []
        for r in self.table():
            cells = [
                f"<td><b>{html.escape(r['stage'])}</b> <small>{html.escape(r['uses'])}</small></td>",
                *(f'<td style="text-align:right">{r[c]:,}</td>' for c in _numbers(self)),
                f'<td style="text-align:right">{r["seconds"]:.1f}</td>',
                f"<td>{html.escape(_top(r['reasons']))}</td>",
            ]
            rows.append(f"<tr>{''.join(cells)}</tr>")
        return (
            f"<div><p>{html.escape(_headline(self))}</p>"
            f"<table><thead><tr>{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p><small>output: <code>{html.escape(self.data)}</code></small></p></div>"
        )

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=_headline(self), title_justify="left", caption=f"output: {self.data}", caption_justify="left")
        t.add_column("stage")
        for c in (*_numbers(self), "seconds"):
            t.add_column(_HEADERS.get(c, c), justify="right")
        t.add_column("top reasons")
        for r in self.table():
            t.add_row(
                r["stage"],
                *(f"{r[c]:,}" for c in _numbers(self)),
                f"{r['seconds']:.1f}",
                _top(r["reasons"]),
            )
        return t
