"""The ablation's plot needs no plotting library: an SVG with one line per arm."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("torch")

from curate.train.ablate_report import ArmResult, plot_svg  # noqa: E402
from curate.train.eval import EvalResult  # noqa: E402


def _arm(name, curve):
    import dataclasses

    fields = {f.name: 1.0 for f in dataclasses.fields(EvalResult)}
    heldout = EvalResult(**fields)
    return ArmResult(name, f"/out/{name}", 10, 1000, 2000, 1.0, heldout, {}, curve)


def test_svg_has_one_polyline_per_arm_with_every_point(tmp_path):
    arms = [_arm("raw <crawl>", [(0, 5.0), (1000, 3.0), (2000, 2.5)]), _arm("fineweb", [(0, 5.0), (2000, 2.0)])]
    path = plot_svg(arms, str(tmp_path / "a.svg"), "val of fineweb")
    root = ET.parse(path).getroot()  # well-formed XML, names escaped
    lines = [el for el in root.iter() if el.tag.endswith("polyline")]
    assert [len(el.get("points").split()) for el in lines] == [3, 2]
    ys = [float(p.split(",")[1]) for p in lines[1].get("points").split()]
    assert ys[1] > ys[0]  # a lower loss sits lower on the chart: SVG y grows downwards
    text = (tmp_path / "a.svg").read_text()
    assert "raw &lt;crawl&gt;" in text and re.search(r">2,000<", text)


def test_no_curve_no_plot(tmp_path):
    assert plot_svg([_arm("a", [])], str(tmp_path / "b.svg"), "x") is None
