"""The sample crawl's phrase lists, package data in curate/samples/data/phrases.json (written for curate).

Sentences are built from a subject, a verb in the past tense, an object and a tail (a prepositional or adverbial
phrase), chosen per topic, plus sentence templates with numbers, names and places. Every subject is singular, so
verbs agree; German subjects are nominative and objects accusative, and an opener moves the verb before the
subject (verb-second). The aim is grammatical, varied text with the statistics of news prose (stop words, word
lengths, punctuation), not meaning. The order of every list and key is part of what a seed generates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "phrases.json"

_PHRASES: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))

TOPICS: tuple[str, ...] = tuple(_PHRASES["topics"])
# Per language ("en", "de", "fr", "es"): subjects and objects per topic, verbs, tails, openers, fact templates,
# names, places, months, site names and TLDs, and the boilerplate of a news site (navigation, footer, cookie notice).
LANGUAGES: dict[str, dict[str, Any]] = _PHRASES["languages"]
# Share of articles per language, roughly a Western-European crawl.
LANGUAGE_WEIGHTS: dict[str, float] = _PHRASES["language_weights"]
# Keyword-stuffed spam: what SEO spam pages repeat.
SPAM_KEYWORDS: list[str] = _PHRASES["spam_keywords"]
# Hosts of spam pages; some with words that the URL filter's lists ban.
SPAM_HOSTS: list[str] = _PHRASES["spam_hosts"]
