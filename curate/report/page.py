"""The frame of report.html: its style sheet, the script that checks its images, and the page being built
(sections, figures and the contents that link them); curate.report.html fills it."""

from __future__ import annotations

import base64
import html

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1.5em;
color:#222;line-height:1.4}
h1{margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
nav>ul{columns:2;list-style:none;padding:0} nav ul ul{list-style:none;padding-left:1em;font-size:.85em}
nav li{break-inside:avoid} nav a{text-decoration:none}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} th,td{padding:.2em .6em;border-bottom:1px solid #eee}
th{text-align:left;background:#f6f6f6} td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0} figure img{max-width:100%} figcaption{font-size:.85em;color:#555}
.note{background:#fff6dd;border:1px solid #e6cf8b;padding:.6em 1em;border-radius:4px}
.muted{color:#666;font-size:.9em} .doc{border-left:3px solid #d9534f;padding:.2em .8em;margin:.5em 0}
.doc code{font-size:.85em} .why{color:#a33}
"""

# Checks in the browser that every image decoded; a broken one is a console error (the browser test reads both).
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0, bad = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
    else { bad++; console.error("image did not load: " + imgs[i].id); }
  }
  document.body.setAttribute("data-images-loaded", String(ok));
  document.body.setAttribute("data-images-broken", String(bad));
});
"""


class Page:
    """The page being built: its HTML in order, its contents (sections and their figures), its figure count."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.toc: list[tuple[str, str, list[tuple[str, str]]]] = []  # (section id, title, its figures)
        self.figures = 0

    def section(self, sid: str, title: str, intro: str = "") -> None:
        self.toc.append((sid, title, []))
        self.parts.append(f'<section id="{sid}"><h2>{html.escape(title)}</h2>')
        if intro:
            self.parts.append(f"<p>{intro}</p>")

    def end(self) -> None:
        self.parts.append("</section>")

    def figure(self, fid: str, png: bytes | None, caption: str) -> None:
        if png is None:
            return
        self.figures += 1
        self.toc[-1][2].append((fid, caption.split(" (")[0].split(";")[0]))
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(
            f'<figure id="{fid}"><img id="img-{fid}" src="data:image/png;base64,{data}" '
            f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        )

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)


def toc_entry(sid: str, title: str, figures: list[tuple[str, str]]) -> str:
    """A section's line in the contents, with a link to each of its figures."""
    links = "".join(f'<li class="fig"><a href="#{fid}">{html.escape(cap)}</a></li>' for fid, cap in figures)
    return f'<li><a href="#{sid}">{html.escape(title)}</a>' + (f"<ul>{links}</ul>" if links else "") + "</li>"
