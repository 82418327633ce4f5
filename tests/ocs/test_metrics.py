"""The server's metrics: plain numbers on the hot path, Prometheus text at scrape time."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ocs.metrics import LATENCY_BUCKETS_S, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_labelled_counters_export_only_used_series_and_share_them() -> None:
    metrics = Metrics()
    series = metrics.answers_total.labels("CCR", "2001")
    series.inc()
    metrics.answers_total.labels("CCR", 2001).inc(2)  # an int label is the same series
    assert metrics.answers_total.labels("CCR", "2001") is series
    got = samples(metrics)
    assert got[("ocs_diameter_answers_total", (("command", "CCR"), ("result_code", "2001")))] == 3
    assert not [key for key in got if key[0] == "ocs_diameter_requests_total"]
    assert got[("ocs_diameter_connections_total", ())] == 0  # unlabelled: always exported


def test_counters_refuse_to_go_down_and_labels_must_match() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError):
        metrics.connections_total.inc(-1)
    with pytest.raises(ValueError):
        metrics.answers_total.labels("CCR")


def test_histogram_buckets_are_cumulative_with_prometheus_le_values() -> None:
    metrics = Metrics()
    latency = metrics.latency_seconds.labels("CCR")
    for seconds in (0.0001, 0.0003, 0.004, 0.004, 7.0):
        latency.observe(seconds)
    got = samples(metrics)

    def bucket(le: str) -> float:
        return got[
            ("ocs_diameter_request_latency_seconds_bucket", (("command", "CCR"), ("le", le)))
        ]

    assert bucket("0.0001") == 1  # "le" includes the bound itself
    assert bucket("0.0005") == 2
    assert bucket("0.005") == 4
    assert bucket(str(LATENCY_BUCKETS_S[-1])) == 4
    assert bucket("+Inf") == 5
    assert got[("ocs_diameter_request_latency_seconds_count", (("command", "CCR"),))] == 5
    assert got[
        ("ocs_diameter_request_latency_seconds_sum", (("command", "CCR"),))
    ] == pytest.approx(7.0084)


def test_gauges_are_set() -> None:
    metrics = Metrics()
    metrics.peers_connected.set(3)
    metrics.open_sessions.set(12)
    got = samples(metrics)
    assert got[("ocs_diameter_peers_connected", ())] == 3
    assert got[("ocs_cc_open_sessions", ())] == 12
