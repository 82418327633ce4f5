"""Prometheus metrics of one server process, held in its own registry (no module globals).

Label values are bounded sets (command names, Result-Codes, tenants from the catalog), never
free text from the wire, so a misbehaving peer cannot blow up the series count.

The hot path counts in plain Python numbers: ``prometheus_client``'s metric objects take a lock
and rebuild a label tuple on every increment, which cost several percent of a CCR's server CPU.
Here a series is a small object with a number in it; the families are turned into Prometheus
samples only when ``/metrics`` is scraped (one collector for all of them). Everything runs on
the server's event-loop thread, so no lock is needed. Callers that count per request should
keep the series objects ``labels()`` returns (they are stable) instead of looking them up again.
"""

from __future__ import annotations

import bisect
import importlib.metadata
import platform
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

# Seconds; a CCR budget is single-digit milliseconds, so the interesting buckets are small.
LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class CounterSeries:
    """One counter series: a number that only goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class GaugeSeries:
    """One gauge series: a number that is set."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount


class HistogramSeries:
    """One histogram series: a count per bucket (not cumulative until rendered) and a sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, i.e. Prometheus' "le" bucket of value.
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


S = TypeVar("S", CounterSeries, GaugeSeries, HistogramSeries)


class _Family(Generic[S]):
    """A metric with labels: one series per distinct label-value tuple, created on first use.

    Without labels the family is its own single series (``inc``/``set``/``observe`` on it);
    like ``prometheus_client``, a labelled family exports only series that were used.
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.series: dict[tuple[str, ...], S] = {}
        if not self.labelnames:
            self.series[()] = self._new_series()

    def _new_series(self) -> S:
        raise NotImplementedError

    def labels(self, *values: str | int) -> S:
        series = self.series.get(values)  # type: ignore[arg-type]  # ints miss, then match
        if series is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values!r}")
            key = tuple(str(v) for v in values)
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = self._new_series()
        return series

    def collect(self) -> Metric:
        raise NotImplementedError


class Counter(_Family[CounterSeries]):
    def _new_series(self) -> CounterSeries:
        return CounterSeries()

    def inc(self, amount: float = 1) -> None:
        self.series[()].inc(amount)

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self.series.items()):
            family.add_metric(values, series.value)
        return family


class Gauge(_Family[GaugeSeries]):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, documentation, labelnames)
        self._source: Callable[[], float] | None = None

    def _new_series(self) -> GaugeSeries:
        return GaugeSeries()

    def set(self, value: float) -> None:
        self.series[()].value = value

    def follow(self, source: Callable[[], float]) -> None:
        """Read the (unlabelled) value from ``source`` when scraped, instead of having it set
        on every change (e.g. a size the hot path would otherwise set per request)."""
        self._source = source

    def collect(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        source = self._source
        if source is not None:
            self.series[()].value = source()
        for values, series in list(self.series.items()):
            family.add_metric(values, series.value)
        return family


class Histogram(_Family[HistogramSeries]):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.bounds = tuple(sorted(float(b) for b in buckets))
        # The "le" label values, spelled as prometheus_client spells them.
        self._le: tuple[str, ...] = tuple(
            str(floatToGoString(b))  # type: ignore[no-untyped-call]
            for b in (*self.bounds, float("inf"))
        )
        super().__init__(name, documentation, labelnames)

    def _new_series(self) -> HistogramSeries:
        return HistogramSeries(self.bounds)

    def observe(self, value: float) -> None:
        self.series[()].observe(value)

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self.series.items()):
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for le, count in zip(self._le, series.counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(values, buckets, series.total)
        return family


class _Collector:
    """Renders every family of one ``Metrics`` at scrape time."""

    def __init__(self, families: list[Counter | Gauge | Histogram]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.collect()


# Per tenant: (tenant, slots, in use, waiting, waits so far, seconds waited so far).
PoolStats = Callable[[], Sequence[tuple[str, int, int, int, int, float]]]


def product_version() -> str:
    try:
        return importlib.metadata.version("mvna-ocs")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class _StateCollector:
    """Values read at scrape time: build info, the catalog in use, the ledger pools."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        build = GaugeMetricFamily(
            "ocs_build_info", "The running release (always 1)", labels=("version", "python")
        )
        build.add_metric((m.version, platform.python_version()), 1)
        yield build
        catalog = GaugeMetricFamily(
            "ocs_catalog_info",
            "The catalog this process serves (always 1): version = digest of its content",
            labels=("version",),
        )
        if m.catalog_version:
            catalog.add_metric((m.catalog_version,), 1)
        yield catalog
        yield GaugeMetricFamily(
            "ocs_catalog_loaded_timestamp_seconds",
            "When this process last loaded or reloaded its catalog (Unix time; 0: never)",
            value=m.catalog_loaded_at,
        )
        yield GaugeMetricFamily(
            "ocs_catalog_tenants",
            "Tenants in the catalog this process serves",
            value=m.catalog_tenants,
        )
        pools = m.ledger_pools() if m.ledger_pools is not None else ()
        size = GaugeMetricFamily(
            "ocs_ledger_pool_size", "Ledger call slots (redis.pool_size)", labels=("tenant",)
        )
        in_use = GaugeMetricFamily(
            "ocs_ledger_pool_in_use", "Ledger calls at Redis now", labels=("tenant",)
        )
        waiting = GaugeMetricFamily(
            "ocs_ledger_pool_waiting", "Ledger calls waiting for a slot now", labels=("tenant",)
        )
        waits = CounterMetricFamily(
            "ocs_ledger_pool_waits", "Ledger calls that had to wait for a slot", labels=("tenant",)
        )
        waited = CounterMetricFamily(
            "ocs_ledger_pool_wait_seconds",
            "Time ledger calls spent waiting for a slot, in total",
            labels=("tenant",),
        )
        for tenant, slots, inside, queued, count, seconds in pools:
            size.add_metric((tenant,), slots)
            in_use.add_metric((tenant,), inside)
            waiting.add_metric((tenant,), queued)
            waits.add_metric((tenant,), count)
            waited.add_metric((tenant,), seconds)
        yield from (size, in_use, waiting, waits, waited)
        if m.replica_waits is not None:
            batches, short_batches, short_answers = m.replica_waits()
            yield CounterMetricFamily(
                "ocs_ledger_replica_waits",
                "Batches of ledger calls followed by WAIT (redis.wait_replicas)",
                value=batches,
            )
            yield CounterMetricFamily(
                "ocs_ledger_replica_wait_short",
                "Ledger answers sent as charged with fewer replica acknowledgements than asked",
                value=short_answers,
            )
            yield CounterMetricFamily(
                "ocs_ledger_replica_wait_short_batches",
                "WAITs that returned fewer replicas than redis.wait_replicas (or failed)",
                value=short_batches,
            )


class Metrics:
    """Every metric the server exports; components get this object passed in."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # The standard process_* (CPU, memory, file descriptors) and python_* (interpreter,
        # garbage collector) metrics, read at scrape time like everything else here.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.version = product_version()
        self.catalog_version = ""
        self.catalog_loaded_at = 0.0
        self.catalog_tenants = 0
        self.ledger_pools: PoolStats | None = None
        # (batches, short batches, short answers) of redis.wait_replicas, read at scrape time.
        self.replica_waits: Callable[[], tuple[int, int, int]] | None = None
        families: list[Counter | Gauge | Histogram] = []

        def counter(name: str, doc: str, labelnames: Sequence[str] = ()) -> Counter:
            families.append(family := Counter(name, doc, labelnames))
            return family

        def gauge(name: str, doc: str) -> Gauge:
            families.append(family := Gauge(name, doc, ()))
            return family

        self.peers_connected = gauge(
            "ocs_diameter_peers_connected", "Diameter peers in the Open state"
        )
        self.connections_total = counter(
            "ocs_diameter_connections", "Diameter TCP connections accepted"
        )
        self.requests_total = counter(
            "ocs_diameter_requests", "Diameter requests received, by command", ["command"]
        )
        self.answers_total = counter(
            "ocs_diameter_answers",
            "Diameter answers sent, by command and Result-Code",
            ["command", "result_code"],
        )
        self.decode_errors_total = counter(
            "ocs_diameter_decode_errors",
            "Diameter messages refused by the codec or framer, by Result-Code or 'closed'",
            ["reason"],
        )
        self.tls_refused_total = counter(
            "ocs_diameter_tls_refused",
            "Diameter TLS connections refused: failed handshake or certificate not allowed",
        )
        self.duplicates_total = counter(
            "ocs_diameter_duplicates", "Retransmitted requests answered from the duplicate cache"
        )
        self.deviations_total = counter(
            "ocs_diameter_protocol_deviations",
            "Requests accepted under the lenient profile despite a deviation",
        )
        self.latency_seconds = Histogram(
            "ocs_diameter_request_latency_seconds",
            "Time from a request's arrival to its answer being written, by command",
            ["command"],
            buckets=LATENCY_BUCKETS_S,
        )
        families.append(self.latency_seconds)
        self.ccr_total = counter(
            "ocs_cc_requests",
            "Credit-Control-Requests by CC-Request-Type and tenant ('' when unresolved)",
            ["type", "tenant"],
        )
        self.cc_results_total = counter(
            "ocs_cc_results",
            "Result-Codes of CCAs and of their MSCCs, by level (session or mscc)",
            ["level", "result_code"],
        )
        self.granted_units_total = counter(
            "ocs_cc_granted_units",
            "Units granted, by tenant and service (bytes, seconds or events)",
            ["tenant", "service"],
        )
        self.used_units_total = counter(
            "ocs_cc_used_units",
            "Units reported as used and committed, by tenant and service",
            ["tenant", "service"],
        )
        self.open_sessions = gauge(
            "ocs_cc_open_sessions", "Credit-control sessions owned by this process"
        )
        self.reservations_expired_total = counter(
            "ocs_cc_reservations_expired",
            "Reservations released by Tcc supervision, by tenant",
            ["tenant"],
        )
        # Exception counters (seed 001's leakage), counted where the CCR result is already
        # handled: no Redis call and nothing per CCR beyond a comparison.
        self.leakage_money_total = counter(
            "ocs_cc_leakage_money",
            "Money (micro-units) of usage reported but not covered by credit, by tenant",
            ["tenant"],
        )
        self.rating_failures_total = counter(
            "ocs_cc_rating_failures",
            "MSCCs answered 5031 RATING_FAILED (no rate for the usage), by tenant",
            ["tenant"],
        )
        self.wholesale_above_retail_total = counter(
            "ocs_cc_wholesale_above_retail",
            "Committed rating groups whose wholesale cost exceeded their retail price, by tenant",
            ["tenant"],
        )
        self.sip_calls_auto_ended_total = counter(
            "ocs_sip_calls_auto_ended",
            "SIP calls ended by the auto-end sweep (no end event by max duration + grace)",
            ["tenant"],
        )
        self.http_requests_total = counter(
            "ocs_http_requests", "HTTP requests on the admin listener, by status", ["status"]
        )
        self.ledger_call_seconds = Histogram(
            "ocs_ledger_call_seconds",
            "Credit-control ledger calls, from the call being started to its reply being "
            "handled, by kind (session: CCR-I/U/T, one script call; event: CCR-E)",
            ["kind"],
            buckets=LATENCY_BUCKETS_S,
        )
        families.append(self.ledger_call_seconds)
        self.catalog_reloads_total = counter(
            "ocs_catalog_reloads",
            "Catalog loads and reloads by outcome (loaded, refused)",
            ["outcome"],
        )
        self.registry.register(_Collector(families))
        self.registry.register(_StateCollector(self))

    def catalog_loaded(self, version: str, tenants: int, at: float) -> None:
        """Record the catalog this process now serves (at start-up and on every reload)."""
        self.catalog_version = version
        self.catalog_tenants = tenants
        self.catalog_loaded_at = at
        self.catalog_reloads_total.labels("loaded").inc()

    def render(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self.registry)
