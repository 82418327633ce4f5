"""Longest-prefix lookup of E.164 numbers: one dict of every prefix, probed from the longest
prefix length present down to the shortest. A probe is a slice and a dict lookup, so a lookup
costs at most (number of distinct prefix lengths) probes whatever the table size; building is
one dict insertion per prefix (200k prefixes in tens of milliseconds)."""

from __future__ import annotations

from collections.abc import Iterable


class PrefixTable:
    __slots__ = ("_lengths", "_owner")

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        """``entries``: (prefix digits, value); a prefix given twice keeps its first value."""
        owner: dict[str, str] = {}
        for prefix, value in entries:
            owner.setdefault(prefix, value)
        self._owner = owner
        self._lengths = tuple(sorted({len(p) for p in owner}, reverse=True))

    def __len__(self) -> int:
        return len(self._owner)

    def longest(self, number: str) -> str | None:
        """The value of the longest prefix of ``number`` in the table, or None."""
        owner = self._owner
        size = len(number)
        for length in self._lengths:
            if length <= size:
                value = owner.get(number[:length])
                if value is not None:
                    return value
        return None
