"""HTML pages the extraction stages are tested on (tests/filters/extraction/: test_extraction.py for trafilatura and
resiliparse, test_fast_extract.py and test_fast_walk.py for fast_extract), a batch of them as a reader gives it, and
the check every stage passes on the article."""

from __future__ import annotations

import pyarrow as pa

ARTICLE = """<!DOCTYPE html><html lang="de"><head><meta charset="{meta}"><title>Bericht</title></head><body>
<header><nav><ul><li><a href="/">Startseite</a></li><li><a href="/politik">Politik</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/kontakt">Kontakt</a></li></ul></nav></header>
<main><article><h1>Der Stadtrat beschloss einen neuen Haushalt</h1>
<p>Der Stadtrat beschloss am Dienstagabend nach monatelanger Debatte einen neuen Haushalt für die Schulen.
Über vierhundert Bürgerinnen und Bürger verfolgten die Sitzung im großen Saal des Rathauses.</p>
<p>Die Bürgermeisterin nannte die Entscheidung überfällig und notwendig für die ganze Gemeinde, während
Kritiker die hohen Kosten für die Sanierung der alten Brücke bemängelten und mehr Geld für Straßen forderten.</p>
<p>Die Änderungen treten im März in Kraft. Das nächste Treffen ist für Juni in Neustadt geplant, hieß es.</p>
</article></main>
<footer><p>Impressum | Datenschutz | Alle Rechte vorbehalten.</p><div class="cookie">Wir verwenden Cookies.</div>
</footer></body></html>"""


def batch(htmls, charsets=None, texts=None) -> pa.Table:
    n = len(htmls)
    return pa.table(
        {
            "id": [f"d{i}" for i in range(n)],
            "text": pa.array(texts or [None] * n, pa.string()),
            "url": [f"https://example.de/{i}" for i in range(n)],
            "html": pa.array(htmls, pa.binary()),
            "charset": pa.array(charsets or [None] * n, pa.string()),
        }
    )


BROKEN = (
    b"<html><head><title>Broken</title><body><div class=content><h1>Unclosed heading"
    b"<p>The first paragraph is never closed and runs straight into the next one, as old pages often do"
    b"<p>The second paragraph has <b>bold <i>crossed</b> tags</i> and a stray closing tag</span> inside it."
    b"</div></div></div><p>A third paragraph after too many closing divs still carries the story onwards.</td>"
    b"<table><p>Text inside a table without rows, which browsers move out of it, is still main content."
    b"<!-- an unterminated comment"
)


def big_page(paragraphs: int) -> bytes:
    """A page of `paragraphs` article paragraphs after a 40-link navigation list."""
    nav = "<nav><ul>" + "".join(f"<li><a href='/{i}'>Section {i}</a></li>" for i in range(40)) + "</ul></nav>"
    body = "".join(
        f"<p>Paragraph {i} of a very long report: the council discussed the budget, the schools and the roads "
        f"again, and the minutes record every word of it for the archive.</p>"
        for i in range(paragraphs)
    )
    return f"<html><body>{nav}<article><h1>A long report</h1>{body}</article></body></html>".encode()


def extract_article(stage) -> str:
    """Run `stage` on ARTICLE (UTF-8): its main text is kept, without the html column and the boilerplate; returns
    the text."""
    out, reasons = stage.map_batch(batch([ARTICLE.format(meta="utf-8").encode()]))
    assert reasons == [None]
    assert "html" not in out.column_names
    text = out.column("text")[0].as_py()
    assert "neuen Haushalt für die Schulen" in text and "überfällig" in text
    for boilerplate in ("Impressum", "Startseite", "Cookies"):
        assert boilerplate not in text
    return text
