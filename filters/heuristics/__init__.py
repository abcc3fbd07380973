"""Heuristic filters: the URL filter and the published Gopher, C4, FineWeb and RefinedWeb rules."""
