"""The credit-control handler's counters: requests and Result-Codes per answer, granted and
used units, rating failures, leakage and wholesale-above-retail per ledger result.

Each series is looked up once per label values and kept (plain int and str keys: an IntEnum
hashes through a Python-level ``__hash__``), so a CCR costs a few dict lookups here.
"""

from __future__ import annotations

from collections.abc import Sequence

from balance.records import RatingGroupResult
from diameter_apps.codes import ResultCode
from diameter_apps.credit_control import CreditControlAnswer, CreditControlRequest
from ocs.metrics import Counter, CounterSeries, Metrics
from tariffs.rating import Rating

_MSCC_SCOPE = 1 << 32  # added to an MSCC's Result-Code in the result series' key

PlannedService = tuple[Rating | None, int | None, int]
"""What counting needs of one planned MSCC: its rating (None: not rated), its rating failure
code, and its item in the ledger's results (-1: none)."""


class ChargingCounts:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        # Bounded like the labels themselves (request types, Result-Codes, catalog tenants).
        self._by_tenant: dict[tuple[int, str], CounterSeries] = {}
        self._requests: dict[tuple[int, str], CounterSeries] = {}
        self._results: dict[int, CounterSeries] = {}
        self._units: dict[tuple[str, str], tuple[CounterSeries, CounterSeries]] = {}

    def answered(
        self,
        ccr: CreditControlRequest,
        tenant: str,
        answer: CreditControlAnswer,
        open_sessions: int,
    ) -> None:
        metrics = self.metrics
        kind = ccr.request_type
        requests = self._requests.get((int(kind), tenant))
        if requests is None:
            requests = metrics.ccr_total.labels(kind.name, tenant)
            self._requests[(int(kind), tenant)] = requests
        requests.inc()
        results = self._results
        code = int(answer.result_code)
        series = results.get(code)
        if series is None:
            series = results[code] = metrics.cc_results_total.labels("session", str(code))
        series.inc()
        for service in answer.services:
            # One dict for both scopes: an MSCC's code is keyed above the 32-bit codes.
            code = int(service.result_code) | _MSCC_SCOPE
            series = results.get(code)
            if series is None:
                series = results[code] = metrics.cc_results_total.labels(
                    "mscc", str(code & 0xFFFF_FFFF)
                )
            series.inc()
        metrics.open_sessions.set(open_sessions)

    def units(
        self,
        tenant: str,
        planned: Sequence[PlannedService],
        results: tuple[RatingGroupResult, ...],
    ) -> None:
        metrics = self.metrics
        for rating, failure, item in planned:
            if rating is None or item < 0:
                if failure is None or failure == ResultCode.RATING_FAILED:
                    self._tenant_series(metrics.rating_failures_total, tenant).inc()
                continue
            result = results[item]
            if result.leakage_money:
                self._tenant_series(metrics.leakage_money_total, tenant).inc(result.leakage_money)
            if result.wholesale > result.retail:
                self._tenant_series(metrics.wholesale_above_retail_total, tenant).inc()
            if result.granted_units or result.used_units:
                granted, used = self._units_series(tenant, rating.service)
                if result.granted_units:
                    granted.inc(result.granted_units)
                if result.used_units:
                    used.inc(result.used_units)

    def _tenant_series(self, family: Counter, tenant: str) -> CounterSeries:
        """``family.labels(tenant)``, remembered (the exception counters)."""
        key = (id(family), tenant)
        series = self._by_tenant.get(key)
        if series is None:
            series = self._by_tenant[key] = family.labels(tenant)
        return series

    def _units_series(self, tenant: str, service: str) -> tuple[CounterSeries, CounterSeries]:
        """The granted and used units series of (tenant, service), remembered as a pair."""
        pair = self._units.get((tenant, service))
        if pair is None:
            pair = self._units[(tenant, service)] = (
                self.metrics.granted_units_total.labels(tenant, service),
                self.metrics.used_units_total.labels(tenant, service),
            )
        return pair
