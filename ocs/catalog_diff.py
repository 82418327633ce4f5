"""What changes between two catalogs, tenant by tenant: settings, rate rows and subscribers.

Pure: ``ocs catalog load --dry-run`` prints it before anything changes, and ``ocs serve`` logs it
when the catalog it was started with differs from the stored one. Subscriber ranges are compared
as MSISDN intervals (never expanded), so a diff of 100-million-number ranges costs a few
comparisons.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from typing import Literal

import msgspec

from tariffs.model import Catalog, RateCard, RateRow, Tenant

Status = Literal["added", "removed", "changed", "unchanged"]
_MARKS: dict[str, str] = {"added": "+", "removed": "-", "changed": "~", "unchanged": " "}
# Tenant fields compared as a whole and named when they differ (rates and subscribers are
# counted row by row instead; ``source`` is only where the text came from).
SETTING_FIELDS = tuple(
    name
    for name in Tenant.__struct_fields__
    if name not in ("id", "rate_cards", "ranges", "entries", "source")
)

# What a catalog says about one subscriber besides its MSISDN: (IMSI length, IMSI - MSISDN) so a
# range's numbers compare without expanding, the opening balance and the starting bundles.
_Terms = tuple[int, int | None, int, tuple[str, ...]]
# (MSISDN length, first, last, terms)
_Interval = tuple[int, int, int, _Terms]


class Counts(msgspec.Struct, frozen=True):
    added: int = 0
    removed: int = 0
    changed: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def __str__(self) -> str:
        return f"+{self.added} -{self.removed} ~{self.changed}"


class TenantDiff(msgspec.Struct, frozen=True):
    tenant: str
    status: Status
    settings: tuple[str, ...] = ()  # names of the tenant fields that differ
    rates: Counts = Counts()
    subscribers: Counts = Counts()

    def line(self) -> str:
        if self.status == "unchanged":
            return f"  {self.tenant}: unchanged"
        parts = [f"rate rows {self.rates}", f"subscribers {self.subscribers}"]
        if self.settings:
            parts.append("settings changed: " + ", ".join(self.settings))
        return f"{_MARKS[self.status]} {self.tenant}: {self.status}; " + "; ".join(parts)


class CatalogDiff(msgspec.Struct, frozen=True):
    tenants: tuple[TenantDiff, ...]

    @property
    def changed(self) -> bool:
        return any(t.status != "unchanged" for t in self.tenants)

    def of(self, status: Status) -> list[str]:
        return [t.tenant for t in self.tenants if t.status == status]

    def lines(self) -> list[str]:
        """Human-readable: a summary line, then one line per tenant."""
        summary = ", ".join(
            f"{len(self.of(s))} {s}"
            for s in ("added", "removed", "changed", "unchanged")
            if self.of(s)
        )
        return [f"tenants: {summary or 'none'}", *(t.line() for t in self.tenants)]


def diff_catalogs(old: Catalog | None, new: Catalog) -> CatalogDiff:
    """Every tenant of either catalog, in id order, with what changed from ``old`` to ``new``."""
    before = {t.id: t for t in (old.tenants if old is not None else ())}
    after = {t.id: t for t in new.tenants}
    return CatalogDiff(
        tuple(diff_tenant(before.get(tid), after.get(tid)) for tid in sorted({*before, *after}))
    )


def diff_tenant(old: Tenant | None, new: Tenant | None) -> TenantDiff:
    if old is None and new is None:
        raise ValueError("diff_tenant needs at least one tenant")
    tenant_id = (new or old).id  # type: ignore[union-attr]
    rates = _diff_rates(_rate_rows(old), _rate_rows(new))
    subscribers = _diff_intervals(_intervals(old), _intervals(new))
    if old is None:
        return TenantDiff(tenant_id, "added", rates=rates, subscribers=subscribers)
    if new is None:
        return TenantDiff(tenant_id, "removed", rates=rates, subscribers=subscribers)
    settings = [name for name in SETTING_FIELDS if getattr(old, name) != getattr(new, name)]
    if [(c.version, c.effective_from) for c in old.rate_cards] != [
        (c.version, c.effective_from) for c in new.rate_cards
    ]:
        settings.append("rate_cards")
    changed = bool(settings) or bool(rates) or bool(subscribers)
    return TenantDiff(
        tenant_id,
        "changed" if changed else "unchanged",
        settings=tuple(settings),
        rates=rates,
        subscribers=subscribers,
    )


def _rate_rows(tenant: Tenant | None) -> dict[tuple[object, ...], RateRow]:
    """Rows keyed by what selects them (card version, service, zone, destination, band)."""
    cards: Iterable[RateCard] = tenant.rate_cards if tenant is not None else ()
    return {
        (card.version, row.service, row.zone, row.dest, row.band): row
        for card in cards
        for row in card.rates
    }


def _diff_rates(
    old: dict[tuple[object, ...], RateRow], new: dict[tuple[object, ...], RateRow]
) -> Counts:
    return Counts(
        added=len(new.keys() - old.keys()),
        removed=len(old.keys() - new.keys()),
        changed=sum(1 for key in old.keys() & new.keys() if old[key] != new[key]),
    )


def _intervals(tenant: Tenant | None) -> list[_Interval]:
    if tenant is None:
        return []
    out: list[_Interval] = []
    for block in tenant.ranges:
        first = int(block.msisdn_first)
        terms = (
            len(block.imsi_first),
            int(block.imsi_first) - first,
            block.opening_balance,
            block.bundles,
        )
        out.append((len(block.msisdn_first), first, int(block.msisdn_last), terms))
    for entry in tenant.entries:
        number = int(entry.msisdn)
        imsi_len, offset = (0, None) if entry.imsi is None else (len(entry.imsi), int(entry.imsi))
        entry_terms = (
            imsi_len,
            None if offset is None else offset - number,
            entry.opening_balance,
            entry.bundles,
        )
        out.append((len(entry.msisdn), number, number, entry_terms))
    return out


def _covering(intervals: list[_Interval], starts: list[int], point: int) -> _Interval | None:
    index = bisect.bisect_right(starts, point) - 1
    if index >= 0 and intervals[index][2] >= point:
        return intervals[index]
    return None


def _diff_intervals(old: list[_Interval], new: list[_Interval]) -> Counts:
    """Numbers only in ``new`` (added), only in ``old`` (removed), in both with other terms
    (changed): a sweep over the interval edges, per MSISDN length (``0049…`` ≠ ``49…``).
    The loader guarantees the intervals of one catalog do not overlap."""
    added = removed = changed = 0
    for length in {i[0] for i in old} | {i[0] for i in new}:
        a = sorted(i for i in old if i[0] == length)
        b = sorted(i for i in new if i[0] == length)
        a_starts, b_starts = [i[1] for i in a], [i[1] for i in b]
        edges = sorted({e for i in (*a, *b) for e in (i[1], i[2] + 1)})
        for low, high in itertools.pairwise(edges):
            was, now = _covering(a, a_starts, low), _covering(b, b_starts, low)
            count = high - low
            if was is None and now is not None:
                added += count
            elif was is not None and now is None:
                removed += count
            elif was is not None and now is not None and was[3] != now[3]:
                changed += count
    return Counts(added, removed, changed)
