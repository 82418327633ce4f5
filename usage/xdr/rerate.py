"""Re-rating (what-if): a period's stored usage priced again with a candidate catalog, beside
the catalog in force, per service and zone. Nothing is charged; no balance is read.

Both sides are list prices (no bundles), computed by the same rules as ``XdrRater`` (voice
split at tariff boundaries, data and SMS at their start), so the difference is the price change
alone; ``billed`` is what the records actually charged (bundles and leakage included), for
reference. A record the candidate cannot price is counted under ``unrated`` with the reason:
a candidate that drops a rate row shows up here instead of as a silent zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from balance.legs import time_legs
from tariffs.errors import RatingError
from tariffs.model import Catalog
from tariffs.price import retail, wholesale
from tariffs.rating import Rater, Rating, UsageRequest

RATED_KINDS = frozenset({"usage", "debit"})
REASONS_KEPT_MAX = 20


class StoredUsage(msgspec.Struct, frozen=True):
    """What re-rating needs of one stored record."""

    service: str
    rating_group: int
    units: int
    started_at_s: float
    ended_at_s: float
    visited_plmn: str
    called: str
    retail: int


def stored_usage(rows: Iterable[Sequence[Any]], columns: Sequence[str]) -> Iterable[StoredUsage]:
    """Export tuples (columns ``usage.sql.EXPORT_COLUMNS``) → the usage records among them."""
    at = {name: index for index, name in enumerate(columns)}
    for row in rows:
        if row[at["kind"]] not in RATED_KINDS or not row[at["service"]]:
            continue
        started = row[at["started_at"]]
        ended = row[at["ended_at"]]
        yield StoredUsage(
            service=str(row[at["service"]]),
            rating_group=int(row[at["rating_group"]]),
            units=int(row[at["units"]]),
            started_at_s=started.timestamp() if started is not None else 0.0,
            ended_at_s=ended.timestamp(),
            visited_plmn=str(row[at["visited_plmn"]]),
            called=str(row[at["called"]]),
            retail=int(row[at["retail"]]),
        )


class Line(msgspec.Struct):
    """One (service, zone) of the report; money in micro-units."""

    records: int = 0
    units: int = 0
    billed: int = 0
    retail_now: int = 0
    retail_candidate: int = 0
    wholesale_now: int = 0
    wholesale_candidate: int = 0

    @property
    def margin_now(self) -> int:
        return self.retail_now - self.wholesale_now

    @property
    def margin_candidate(self) -> int:
        return self.retail_candidate - self.wholesale_candidate


class RerateReport(msgspec.Struct):
    lines: dict[tuple[str, str], Line]
    unrated: dict[str, int]  # reason -> records


def _price(rater: Rater, tenant: str, usage: StoredUsage) -> tuple[int, int, Rating]:
    """List retail and wholesale of ``usage`` under ``rater``'s catalog, and its first rating."""
    group = usage.rating_group or None
    called = f"+{usage.called}" if usage.called and usage.called.isdigit() else usage.called

    def rate_at(at: int) -> Rating:
        return rater.rate(
            UsageRequest(
                tenant=tenant,
                now=at,
                service=usage.service,
                rating_group=group,
                visited_plmn=usage.visited_plmn or None,
                called_number=called or None,
            )
        )

    start = int(usage.started_at_s or usage.ended_at_s)
    first = rate_at(start)
    if first.unit == "second" and usage.units > 0:
        end = start + usage.units if usage.started_at_s else int(usage.ended_at_s)
        legs = time_legs(usage.units, end, rate_at)
        return (
            sum(retail(leg.price, leg.units) for leg in legs),
            sum(wholesale(leg.price, leg.units) for leg in legs),
            first,
        )
    return retail(first.price, usage.units), wholesale(first.price, usage.units), first


class Rerater:
    def __init__(self, current: Catalog, candidate: Catalog, tenant: str) -> None:
        if current.tenant(tenant) is None:
            raise ValueError(f"tenant {tenant!r} is not in the current catalog")
        if candidate.tenant(tenant) is None:
            raise ValueError(f"tenant {tenant!r} is not in the candidate catalog")
        self.tenant = tenant
        self.current = Rater(current)
        self.candidate = Rater(candidate)
        self.report = RerateReport({}, {})

    def _unrated(self, reason: str) -> None:
        unrated = self.report.unrated
        if reason not in unrated and len(unrated) >= REASONS_KEPT_MAX:
            reason = "other reasons"
        unrated[reason] = unrated.get(reason, 0) + 1

    def add(self, usage: StoredUsage) -> None:
        try:
            retail_now, wholesale_now, rating = _price(self.current, self.tenant, usage)
        except RatingError as exc:
            self._unrated(f"current catalog: {exc}")
            return
        try:
            retail_new, wholesale_new, _ = _price(self.candidate, self.tenant, usage)
        except RatingError as exc:
            self._unrated(f"candidate: {exc}")
            return
        key = (usage.service, rating.zone)
        line = self.report.lines.get(key)
        if line is None:
            line = self.report.lines[key] = Line()
        line.records += 1
        line.units += usage.units
        line.billed += usage.retail
        line.retail_now += retail_now
        line.retail_candidate += retail_new
        line.wholesale_now += wholesale_now
        line.wholesale_candidate += wholesale_new
