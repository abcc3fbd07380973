"""Named counters a stage or a reader tallies while it works; the engine takes them after each batch or unit."""

from __future__ import annotations


class Counting:
    """Mixin: `self.count("lines_removed", 3)` tallies; the engine calls `take_counts()` to collect and reset."""

    def count(self, counter: str, n: int = 1) -> None:
        """Tally a named counter (lines removed, request records skipped); it lands in stats.json exactly once."""
        counts = self.__dict__.setdefault("_counters", {})
        counts[counter] = counts.get(counter, 0) + n

    def take_counts(self) -> dict[str, int]:
        """The counters tallied since the last call (and reset them)."""
        return self.__dict__.pop("_counters", None) or {}
