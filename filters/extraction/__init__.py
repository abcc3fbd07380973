"""Extraction: main text from HTML (extractors.py: trafilatura, resiliparse; fast/: fast_extract)."""
