"""Resolve and rate a chunk's ok rows together: what ``XdrRater`` does a record at a time,
done once per distinct subscriber and once per rating context and tariff period.

- The subscriber of each distinct IMSI / MSISDN is looked up once (bounded memo), as
  ``XdrRater.resolve`` does it (IMSI first, then MSISDN).
- Rows that share (tenant, plan, service, rating group, visited network, called number) share
  a rating context. Within one, sorted by start time, the rating at the earliest start holds
  until its ``next_change_at`` (time band end, next rate card): every row starting before that
  gets the same ``Rating``, the one ``Rater.rate`` gives at its own start time. So a chunk costs
  one scalar rating per context and tariff period, not per row.
- Prices are ``tariffs.price_arrays.prices``: the scalar formulas on int64 columns.

A row is left to the scalar path (``scalar`` mask) when anything is not plain: no subscriber,
another tenant than the import's, no such service, no rate (each a reject there, with its
reason), a call that crosses a tariff boundary (split into legs by ``balance.legs``), or a
price too large for int64 arithmetic. The scalar path then gives the exact online answer.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from balance.records import OnExhaust, UsedLeg
from tariffs.errors import RatingError
from tariffs.model import Service
from tariffs.price import Price
from tariffs.price_arrays import PriceArrays, prices
from tariffs.rating import Rating, UsageRequest
from tariffs.subscribers import SubscriberRef
from usage.xdr.mapping import ServiceRule
from usage.xdr.rate import RatedRecord, XdrRater
from usage.xdr.vectors import MEMO_MAX, Columns

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
NO_CHANGE = np.iinfo(np.int64).max
_ZERO_PRICE = Price(0, 1, 0, 1)
PERIODS_MAX = 4096  # tariff periods remembered per rating context


@dataclass
class RatedColumns:
    """The rows of ``Columns`` rated here (``fast``), with their subscriber (index into
    ``refs``), rating (index into ``ratings``), rating group and full prices."""

    fast: Bools
    ref: Ints
    rating: Ints
    group: Ints
    retail: Ints
    wholesale: Ints
    refs: list[SubscriberRef]
    ratings: list[Rating]


class BatchRater:
    """Rates ``Columns`` with one ``XdrRater``'s catalog (memos live as long as it)."""

    def __init__(self, rater: XdrRater, rules: list[ServiceRule]) -> None:
        self.rater = rater
        self.rules = rules
        self.refs: list[SubscriberRef] = []
        self._ref_ids: dict[SubscriberRef, int] = {}
        self._by_imsi: dict[str, int] = {}
        self._by_msisdn: dict[str, int] = {}
        self._known: dict[UsageRequest, _Periods] = {}

    def rate(self, cols: Columns) -> RatedColumns:
        n = len(cols)
        ref = self._resolve(cols)
        fast = ref >= 0
        tenants = [r.tenant for r in self.refs]
        only = self.rater.only_tenant
        if only is not None:
            allowed = np.array([t == only for t in tenants] + [False], dtype=np.bool_)
            fast &= allowed[ref]
        # Per (subscriber's tenant and plan, service rule, group as read): the service and
        # the group the rater uses (None: no such service in the tenant, a scalar reject).
        plans: dict[tuple[str, str], int] = {}
        plan_of_ref = np.array(
            [plans.setdefault((r.tenant, r.plan), len(plans)) for r in self.refs] + [0],
            dtype=np.int64,
        )
        plan = plan_of_ref[ref]
        rows = np.flatnonzero(fast)
        context_of = _combined(
            [plan, cols.service, cols.group, cols.visited_plmn.codes, cols.called.codes], rows
        )
        rating = np.full(n, -1, dtype=np.int64)
        group = np.full(n, -1, dtype=np.int64)
        plan_names = list(plans)
        ratings: list[Rating] = []
        rating_ids: dict[int, int] = {}
        order = np.lexsort((cols.started_at_s[rows], context_of))
        bounds = np.flatnonzero(np.diff(context_of[order])) + 1
        for members in np.split(rows[order], bounds):
            if len(members) == 0:
                continue
            tenant, plan_id = plan_names[int(plan[members[0]])]
            rule = self.rules[int(cols.service[members[0]])]
            service = self._service(tenant, rule.service)
            if service is None:
                continue
            group_in = int(cols.group[members[0]])
            rg: int | None = group_in
            if group_in < 0:
                rg = service.rating_groups[0] if service.rating_groups else None
            visited = cols.visited_plmn.at(int(members[0]))
            called = cols.called.at(int(members[0]))
            request = UsageRequest(
                tenant=tenant, now=0, service=rule.service, rating_group=rg,
                visited_plmn=visited or None, called_number=f"+{called}" if called else None,
                plan=plan_id,
            )  # fmt: skip
            group[members] = 0 if rg is None else rg
            self._periods(request, members, cols.started_at_s, rating, ratings, rating_ids)
        fast &= rating >= 0
        index = np.maximum(rating, 0)
        seconds = np.array([r.unit == "second" for r in ratings] + [False], dtype=np.bool_)
        change = np.array(
            [NO_CHANGE if r.next_change_at is None else r.next_change_at for r in ratings] + [0],
            dtype=np.int64,
        )
        index_or_last = np.where(rating >= 0, rating, len(ratings))
        crosses = (
            seconds[index_or_last]
            & (cols.quantity > 0)
            & (cols.started_at_s + cols.quantity > change[index_or_last])
        )
        fast &= ~crosses
        table = PriceArrays([r.price for r in ratings] or [_ZERO_PRICE])
        retail, wholesale, safe = prices(table.take(index), np.where(fast, cols.quantity, 0))
        fast &= safe
        return RatedColumns(fast, ref, rating, group, retail, wholesale, list(self.refs), ratings)

    def _periods(
        self,
        request: UsageRequest,
        members: Ints,
        started: Ints,
        rating: Ints,
        ratings: list[Rating],
        rating_ids: dict[int, int],
    ) -> None:
        """Rate ``members`` (one context, sorted by start): one rating per tariff period."""
        times = started[members]
        known = self._known.get(request)
        if known is None:
            if len(self._known) >= MEMO_MAX:
                self._known.clear()
            known = self._known[request] = _Periods()
        position = 0
        while position < len(members):
            at = int(times[position])
            found = known.find(at)
            if found is None:
                try:
                    found = self.rater.rater.rate(_at(request, at))
                except RatingError:
                    position += 1  # this row is a scalar reject; the next may have a rate
                    continue
                known.add(at, found)
            end = NO_CHANGE if found.next_change_at is None else found.next_change_at
            stop = position + int(np.searchsorted(times[position:], end, side="left"))
            stop = max(stop, position + 1)
            number = rating_ids.get(id(found))
            if number is None:
                number = rating_ids[id(found)] = len(ratings)
                ratings.append(found)
            rating[members[position:stop]] = number
            position = stop

    def _service(self, tenant_id: str, name: str) -> Service | None:
        tenant = self.rater.rater.tenant(tenant_id)
        return None if tenant is None else tenant.service(name)

    def _resolve(self, cols: Columns) -> Ints:
        """Row → index into ``self.refs`` (IMSI first, then MSISDN), -1 for none."""
        resolver = self.rater.resolver
        by_imsi = np.array(
            [self._ref(self._by_imsi, v, resolver.by_imsi) for v in cols.imsi.values] + [-1],
            dtype=np.int64,
        )
        by_msisdn = np.array(
            [self._ref(self._by_msisdn, v, resolver.by_msisdn) for v in cols.msisdn.values] + [-1],
            dtype=np.int64,
        )
        from_imsi = by_imsi[cols.imsi.codes]
        return np.where(from_imsi >= 0, from_imsi, by_msisdn[cols.msisdn.codes])

    def _ref(self, memo: dict[str, int], value: str, find) -> int:  # type: ignore[no-untyped-def]
        if value == "":
            return -1
        known = memo.get(value)
        if known is not None:
            return known
        ref = find(value)
        number = -1
        if ref is not None:
            number = self._ref_ids.get(ref, -1)
            if number < 0:
                number = self._ref_ids[ref] = len(self.refs)
                self.refs.append(ref)
        if len(memo) >= MEMO_MAX:
            memo.clear()
        memo[value] = number
        return number

    def records(
        self, cols: Columns, rated: RatedColumns, first_line: int
    ) -> list[tuple[int, RatedRecord]]:
        """The fast rows as ``RatedRecord``s (what the ledger call needs), with their index."""
        out: list[tuple[int, RatedRecord]] = []
        currencies = self.rater.currencies
        exhaust = [OnExhaust(r.on_exhaust) for r in rated.ratings]
        for i in np.flatnonzero(rated.fast).tolist():
            ref = rated.refs[int(rated.ref[i])]
            number = int(rated.rating[i])
            found = rated.ratings[number]
            record = cols.record(i, first_line, self.rules)
            out.append((i, RatedRecord(
                record=record, tenant=ref.tenant, subscriber=ref.subscriber_id,
                service=record.service.service, rating_group=int(rated.group[i]),
                legs=(UsedLeg(found.price_key, record.quantity, found.price),),
                kinds=found.bucket_kinds, on_exhaust=exhaust[number],
                block_kinds=found.block_kinds, retail=int(rated.retail[i]),
                wholesale=int(rated.wholesale[i]), rate_card_version=found.version,
                zone=found.zone, destination=found.destination or "",
                currency=currencies.get(ref.tenant, ""), msisdn=ref.subscriber_id,
                imsi=ref.imsi or record.imsi,
            )))  # fmt: skip
        return out


class _Periods:
    """The ratings of one context already known, as tariff periods [start, end): a rating
    found at ``start`` holds until its ``next_change_at`` (``end``)."""

    def __init__(self) -> None:
        self.ends: list[int] = []
        self.periods: dict[int, tuple[int, Rating]] = {}

    def find(self, at: int) -> Rating | None:
        i = bisect_right(self.ends, at)
        if i == len(self.ends):
            return None
        start, rating = self.periods[self.ends[i]]
        return rating if start <= at else None

    def add(self, at: int, rating: Rating) -> None:
        end = NO_CHANGE if rating.next_change_at is None else rating.next_change_at
        if end <= at:
            return
        if len(self.ends) >= PERIODS_MAX:
            self.ends.clear()
            self.periods.clear()
        known = self.periods.get(end)
        if known is None:
            insort(self.ends, end)
            self.periods[end] = (at, rating)
        elif at < known[0]:
            self.periods[end] = (at, rating)


def _combined(columns: list[Ints], rows: Ints) -> Ints:
    """One code per distinct combination of the columns' values at ``rows``: mixed radix
    while the product of the ranges fits in int64, re-coded (np.unique) when it would not."""
    key = np.zeros(len(rows), dtype=np.int64)
    span = 1
    for column in columns:
        values = column[rows]
        if len(values) == 0:
            break
        low = int(values.min())
        size = int(values.max()) - low + 1
        if span * size >= 1 << 62:
            _, inverse = np.unique(key, return_inverse=True)
            key, span = inverse.reshape(-1).astype(np.int64), len(rows)
        if span * size >= 1 << 62:
            _, inverse = np.unique(values, return_inverse=True)
            values, low, size = inverse.reshape(-1).astype(np.int64), 0, len(rows)
        key = key * size + (values - low)
        span *= size
    return key


def _at(request: UsageRequest, at: int) -> UsageRequest:
    return UsageRequest(
        tenant=request.tenant, now=at, service=request.service,
        rating_group=request.rating_group, visited_plmn=request.visited_plmn,
        called_number=request.called_number, plan=request.plan,
    )  # fmt: skip
