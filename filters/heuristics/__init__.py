"""filters/heuristics"""
