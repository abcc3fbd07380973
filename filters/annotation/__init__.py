"""Annotation: fastText language ID (langid.py) and PII masking (pii.py)."""
