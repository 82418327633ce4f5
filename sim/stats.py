"""Counters one worker keeps and the parent merges: requests sent, answers by Result-Code,
errors, latency (overall and per second of the run), units used per tenant and service.

Workers ship :meth:`RunStats.to_wire` snapshots (plain dicts) over a multiprocessing queue; the
parent rebuilds and merges them with :meth:`RunStats.from_wire` and :meth:`RunStats.merge`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sim.histogram import Histogram

SERVICES = ("data", "voice", "sms", "sip")
_RESULT_LABELS: dict[int | str | None, str] = {
    code: str(code) for code in (2001, 2002, 3004, 4010, 4011, 4012, 5030, 5031)
}
"""The Result-Code keys of the commonest answers, so the hot path does not format them."""


def _add(target: dict[str, int], source: dict[str, int]) -> None:
    for key, value in source.items():
        target[key] = target.get(key, 0) + value


class TenantTotals:
    """What the simulator did for one tenant; ``used`` is what it reported as consumed."""

    __slots__ = ("ccrs", "sessions", "uncertain", "used")

    def __init__(self) -> None:
        self.sessions = 0
        self.ccrs = 0
        self.used: dict[str, int] = {}
        self.uncertain: dict[str, int] = {}

    def to_wire(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "ccrs": self.ccrs,
            "used": dict(self.used),
            "uncertain": dict(self.uncertain),
        }

    def merge_wire(self, wire: dict[str, Any]) -> None:
        self.sessions += int(wire["sessions"])
        self.ccrs += int(wire["ccrs"])
        _add(self.used, wire["used"])
        _add(self.uncertain, wire["uncertain"])


class RunStats:
    """Counters of one worker (or, merged, of the whole run)."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.results: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.sessions: Counter[str] = Counter()
        self.server_requests: Counter[str] = Counter()
        self.latency = Histogram()
        self.per_second: dict[int, Histogram] = {}
        self.tenants: dict[str, TenantTotals] = {}
        self.subscribers: set[tuple[str, str]] = set()
        # Ledger sessions not named by the run's prefix (SIP calls: "sip:<call key>").
        self.extra_sessions: set[str] = set()
        self.cpu_s = 0.0

    # -- hot path ------------------------------------------------------------------------------

    def answered(self, second: int, latency_us: int, result: int | str | None) -> None:
        """An answer arrived ``latency_us`` after its request, in ``second`` of the run."""
        self.latency.record(latency_us)
        bucket = self.per_second.get(second)
        if bucket is None:
            bucket = self.per_second[second] = Histogram()
        bucket.record(latency_us)
        label = _RESULT_LABELS.get(result)
        if label is None:
            label = str(result) if result is not None else "none"
        self.results[label] += 1

    def tenant(self, tenant: str) -> TenantTotals:
        totals = self.tenants.get(tenant)
        if totals is None:
            totals = self.tenants[tenant] = TenantTotals()
        return totals

    # -- wire and merge ------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        return {
            "sent": dict(self.sent),
            "results": dict(self.results),
            "errors": dict(self.errors),
            "sessions": dict(self.sessions),
            "server_requests": dict(self.server_requests),
            "latency": self.latency.to_wire(),
            "per_second": {str(s): h.to_wire() for s, h in self.per_second.items()},
            "tenants": {t: v.to_wire() for t, v in self.tenants.items()},
            "subscribers": sorted(self.subscribers),
            "extra_sessions": sorted(self.extra_sessions),
            "cpu_s": self.cpu_s,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> RunStats:
        stats = cls()
        stats.merge_wire(wire)
        return stats

    def merge_wire(self, wire: dict[str, Any]) -> None:
        self.sent.update(wire["sent"])
        self.results.update(wire["results"])
        self.errors.update(wire["errors"])
        self.sessions.update(wire["sessions"])
        self.server_requests.update(wire["server_requests"])
        self.latency.merge(Histogram.from_wire(wire["latency"]))
        for second, hist in wire["per_second"].items():
            key = int(second)
            bucket = self.per_second.get(key)
            if bucket is None:
                bucket = self.per_second[key] = Histogram()
            bucket.merge(Histogram.from_wire(hist))
        for tenant, totals in wire["tenants"].items():
            self.tenant(tenant).merge_wire(totals)
        self.subscribers.update((t, s) for t, s in wire["subscribers"])
        self.extra_sessions.update(wire["extra_sessions"])
        self.cpu_s += float(wire["cpu_s"])

    def merge(self, other: RunStats) -> None:
        self.merge_wire(other.to_wire())

    @property
    def answers(self) -> int:
        return sum(self.results.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())
