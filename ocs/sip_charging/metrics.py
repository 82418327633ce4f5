"""SIP front-end counters (``ocs.sip.metrics.SipMetrics``, plain Python) on ``/metrics``.

A custom collector reads the counters when Prometheus scrapes, so the sans-IO core keeps
incrementing plain integers and nothing is mirrored twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ocs.sip.metrics import LATENCY_BUCKETS_S, SipMetrics


class SipMetricsCollector(Collector):
    def __init__(self, metrics: SipMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        invites = CounterMetricFamily(
            "ocs_sip_invites",
            "INVITE final answers by tenant and SIP status",
            labels=["tenant", "status"],
        )
        for (tenant, status), count in sorted(m.invites.items()):
            invites.add_metric([tenant, str(status)], count)
        yield invites
        requests = CounterMetricFamily(
            "ocs_sip_requests", "SIP requests received, by method", labels=["method"]
        )
        for method, count in sorted(m.requests_by_method.items()):
            requests.add_metric([method], count)
        yield requests
        responses = CounterMetricFamily(
            "ocs_sip_responses", "SIP responses sent, by status", labels=["status"]
        )
        for status, count in sorted(m.responses_by_status.items()):
            responses.add_metric([str(status)], count)
        yield responses
        dropped = CounterMetricFamily(
            "ocs_sip_dropped",
            "SIP messages dropped without an answer, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(m.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
        for name, documentation, value in (
            (
                "ocs_sip_retransmissions_absorbed",
                "Retransmitted requests answered from the transaction layer",
                m.retransmissions_absorbed,
            ),
            (
                "ocs_sip_responses_retransmitted",
                "Final INVITE responses re-sent on Timer G",
                m.responses_retransmitted,
            ),
            ("ocs_sip_ack_timeouts", "INVITE transactions that hit Timer H", m.ack_timeouts),
            ("ocs_sip_shed", "Requests answered 503 at the in-flight limit", m.shed),
            ("ocs_sip_authorizer_calls", "Authorizations asked of the ledger", m.authorizer_calls),
            (
                "ocs_sip_authorizer_failures",
                "Authorizations that raised, timed out or returned an invalid decision",
                m.authorizer_failures,
            ),
            (
                "ocs_sip_reservations_granted",
                "302 answers with a reservation",
                m.reservations_granted,
            ),
        ):
            yield CounterMetricFamily(name, documentation, value=value)
        yield GaugeMetricFamily(
            "ocs_sip_active_reservations",
            "Reservations granted by this process and not yet ended",
            value=m.active_reservations,
        )
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip(
            (*map(str, LATENCY_BUCKETS_S), "+Inf"), m.latency_bucket_counts, strict=True
        ):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "ocs_sip_invite_latency_seconds",
            "INVITE receipt to final answer",
            buckets=buckets,
            sum_value=m.latency_sum_s,
        )
