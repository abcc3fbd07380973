"""MkDocs hook: fill the stage reference page from the stage registry when the site is built.

The page (docs/stages/reference.md) holds a marker; this hook replaces it with
`curate.config.reference.stage_reference_markdown()`, the same registry `curate stages` reads. A stage that cannot
be imported is a warning, which fails `mkdocs build --strict`.
"""

from __future__ import annotations

import logging
from typing import Any

from curate.config.reference import stage_entries, stage_reference_markdown

PAGE = "stages/reference.md"
MARKER = "<!-- stage-reference -->"

log = logging.getLogger("mkdocs.hooks.stage_reference")


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        log.warning("%s has no %s marker: the stage reference is not on it", PAGE, MARKER)
        return markdown
    entries = stage_entries()
    for e in entries:
        if e.error:
            log.warning("stage '%s' (%s) cannot be loaded: %s", e.name, e.target, e.error)
    return markdown.replace(MARKER, stage_reference_markdown(entries))
