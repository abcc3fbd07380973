"""Readers (input formats) and the shard writer."""
