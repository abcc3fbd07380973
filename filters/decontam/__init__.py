"""Benchmark decontamination: the `decontaminate` stage and `curate contamination` (docs/decontamination.md)."""
