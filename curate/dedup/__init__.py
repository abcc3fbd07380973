"""Global dedup stages: exact text, URL (and MinHash near-duplicates)."""
