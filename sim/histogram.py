"""A log-bucketed latency histogram (HDR-style): constant memory, mergeable across processes,
percentiles within 1/64 (≈1.6 %) of the true value.

Values are integer microseconds. Below 128 µs every value has its own bucket; above, a value
keeps its 7 most significant bits (exponent + 6-bit mantissa), so the relative error is bounded
while the bucket count grows only with log2 of the range.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SUB_BUCKET_BITS = 7
_EXACT_BELOW = 1 << SUB_BUCKET_BITS  # 128
_HALF = _EXACT_BELOW >> 1  # 64
VALUE_US_MAX = 3_600_000_000  # an hour: anything longer is clamped (and is a bug elsewhere)


def bucket_of(value_us: int) -> int:
    """The bucket index of a value (monotone in the value)."""
    if value_us < _EXACT_BELOW:
        return max(value_us, 0)
    value_us = min(value_us, VALUE_US_MAX)
    shift = value_us.bit_length() - SUB_BUCKET_BITS
    return shift * _HALF + (value_us >> shift)


def bucket_low(index: int) -> int:
    """The smallest value of a bucket."""
    if index < _EXACT_BELOW:
        return index
    shift, mantissa = divmod(index - _EXACT_BELOW, _HALF)
    shift += 1
    return (mantissa + _HALF) << shift


def bucket_mid(index: int) -> int:
    """A representative value of a bucket: its midpoint."""
    if index < _EXACT_BELOW:
        return index
    low = bucket_low(index)
    width = bucket_low(index + 1) - low
    return low + width // 2


class Histogram:
    """Counts per bucket; ``record`` is the hot path (one dict update)."""

    __slots__ = ("counts", "max_us", "total")

    def __init__(self, counts: Mapping[int, int] | None = None, max_us: int = 0) -> None:
        self.counts: dict[int, int] = dict(counts or {})
        self.total = sum(self.counts.values())
        self.max_us = max_us

    def record(self, value_us: int) -> None:
        # bucket_of written out: this runs twice per answer.
        if value_us < _EXACT_BELOW:
            index = value_us if value_us > 0 else 0
        else:
            clamped = value_us if value_us < VALUE_US_MAX else VALUE_US_MAX
            shift = clamped.bit_length() - SUB_BUCKET_BITS
            index = shift * _HALF + (clamped >> shift)
        counts = self.counts
        counts[index] = counts.get(index, 0) + 1
        self.total += 1
        if value_us > self.max_us:
            self.max_us = value_us

    def merge(self, other: Histogram) -> None:
        counts = self.counts
        for index, count in other.counts.items():
            counts[index] = counts.get(index, 0) + count
        self.total += other.total
        self.max_us = max(self.max_us, other.max_us)

    def percentile(self, fraction: float) -> int:
        """The value at ``fraction`` (0..1) of the recorded values; 0 when empty."""
        if not self.total:
            return 0
        rank = max(1, int(fraction * self.total + 0.999999))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(bucket_mid(index), self.max_us) if index >= _EXACT_BELOW else index
        return self.max_us

    def percentiles(self, fractions: Iterable[float] = (0.5, 0.9, 0.99, 0.999)) -> dict[str, int]:
        return {_label(f): self.percentile(f) for f in fractions}

    def to_wire(self) -> dict[str, object]:
        """A plain-dict form for JSON and for crossing process boundaries."""
        return {"counts": {str(k): v for k, v in self.counts.items()}, "max_us": self.max_us}

    @classmethod
    def from_wire(cls, wire: Mapping[str, object]) -> Histogram:
        counts = wire.get("counts", {})
        assert isinstance(counts, dict)
        max_us = wire.get("max_us", 0)
        assert isinstance(max_us, int)
        return cls({int(k): int(v) for k, v in counts.items()}, max_us)


def _label(fraction: float) -> str:
    text = f"{fraction * 100:.3f}".rstrip("0").rstrip(".")
    return "p" + text.replace(".", "_")
