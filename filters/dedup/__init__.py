"""Global dedup stages: exact text and URL (exact.py), MinHash near-duplicates (minhash.py)."""
