"""The credit-control handler's counters: requests and Result-Codes per answer, granted and
used units, rating failures, leakage and wholesale-above-retail per ledger result.

Each series is looked up once per label values and kept, so a CCR costs a few dict lookups
here. The keys are the request's own values as they come (an IntEnum member hashes and compares
as its int, in C: no ``int()`` copy per lookup).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from balance.records import RatingGroupResult
from diameter_apps.codes import ResultCode
from diameter_apps.credit_control import CreditControlAnswer, CreditControlRequest
from ocs.metrics import Counter, CounterSeries, Metrics
from tariffs.rating import Rating

_MSCC_SCOPE = 1 << 32  # added to an MSCC's Result-Code in the result series' key


class PlannedService(Protocol):
    """What counting needs of one planned MSCC: its rating (None: not rated), its rating
    failure code, and its item in the ledger's results (-1: none)."""

    @property
    def rating(self) -> Rating | None: ...
    @property
    def failure(self) -> int | None: ...
    @property
    def item(self) -> int: ...


class ChargingCounts:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        # Bounded like the labels themselves (request types, Result-Codes, catalog tenants).
        # The exception counters by tenant, one table each (read per MSCC).
        self._rating_failures: dict[str, CounterSeries] = {}
        self._leakage: dict[str, CounterSeries] = {}
        self._wholesale_above: dict[str, CounterSeries] = {}
        self._requests: dict[tuple[int, str], CounterSeries] = {}
        self._results: dict[int, CounterSeries] = {}
        self._units: dict[tuple[str, str], tuple[CounterSeries, CounterSeries]] = {}

    def answered(self, ccr: CreditControlRequest, tenant: str, answer: CreditControlAnswer) -> None:
        # The series' numbers are added to in place (``CounterSeries.inc`` is a Python call,
        # and every amount here is a positive count).
        key = (ccr.request_type, tenant)
        requests = self._requests.get(key)
        if requests is None:
            requests = self.metrics.ccr_total.labels(ccr.request_type.name, tenant)
            self._requests[key] = requests
        requests.value += 1
        results = self._results
        code = answer.result_code
        series = results.get(code)
        if series is None:
            series = results[code] = self.metrics.cc_results_total.labels("session", str(int(code)))
        series.value += 1
        for service in answer.services:
            # One dict for both scopes: an MSCC's code is keyed above the 32-bit codes.
            code = service.result_code | _MSCC_SCOPE
            series = results.get(code)
            if series is None:
                series = results[code] = self.metrics.cc_results_total.labels(
                    "mscc", str(code & 0xFFFF_FFFF)
                )
            series.value += 1

    def units(
        self,
        tenant: str,
        planned: Sequence[PlannedService],
        results: tuple[RatingGroupResult, ...],
    ) -> None:
        metrics = self.metrics
        for service in planned:
            rating, item = service.rating, service.item
            if rating is None or item < 0:
                if service.failure is None or service.failure == ResultCode.RATING_FAILED:
                    table, family = self._rating_failures, metrics.rating_failures_total
                    (table.get(tenant) or _remember(table, family, tenant)).value += 1
                continue
            result = results[item]
            if result.leakage_money > 0:
                table, family = self._leakage, metrics.leakage_money_total
                (
                    table.get(tenant) or _remember(table, family, tenant)
                ).value += result.leakage_money
            if result.wholesale > result.retail:
                table, family = self._wholesale_above, metrics.wholesale_above_retail_total
                (table.get(tenant) or _remember(table, family, tenant)).value += 1
            granted_units, used_units = result.granted_units, result.used_units
            if granted_units > 0 or used_units > 0:
                pair = self._units.get((tenant, rating.service))
                granted, used = pair or self._units_series(tenant, rating.service)
                if granted_units > 0:
                    granted.value += granted_units
                if used_units > 0:
                    used.value += used_units

    def _units_series(self, tenant: str, service: str) -> tuple[CounterSeries, CounterSeries]:
        """The granted and used units series of (tenant, service), remembered as a pair."""
        pair = self._units.get((tenant, service))
        if pair is None:
            pair = self._units[(tenant, service)] = (
                self.metrics.granted_units_total.labels(tenant, service),
                self.metrics.used_units_total.labels(tenant, service),
            )
        return pair


def _remember(table: dict[str, CounterSeries], family: Counter, tenant: str) -> CounterSeries:
    """``family.labels(tenant)``, kept in ``table`` (an exception counter's first count)."""
    series = table[tenant] = family.labels(tenant)
    return series
