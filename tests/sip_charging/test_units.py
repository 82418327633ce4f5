"""Pure pieces: reservation ids, the route template, the metrics collector."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from ocs.config import ConfigError, SipConfig
from ocs.sip.metrics import SipMetrics
from ocs.sip_charging.metrics import SipMetricsCollector
from ocs.sip_charging.policy import CallPolicy
from ocs.sip_charging.reservation import InvalidReservation, call_ref, parse_reservation


def test_reservation_round_trip_and_derivation() -> None:
    ref = call_ref("acme.eu-1", "4917099000001", "a@b", "tag")
    assert parse_reservation(ref.reservation_id) == ref
    assert ref.reservation_id.startswith("acme.eu-1.4917099000001.")
    assert ref.session_id == f"sip:{ref.key}" and ref.op_id("end") == f"sip:{ref.key}:end"
    # Every part of the key material matters; the separator cannot be forged by shifting text.
    assert call_ref("acme", "1", "a@b", "tag").key != call_ref("acme", "1", "a@b", "tag2").key
    assert call_ref("acme", "1", "ab", "c").key != call_ref("acme", "1", "a", "bc").key
    assert call_ref("acme", "1", "x", "").key != call_ref("globex", "1", "x", "").key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "acme.4917099000001",
        "acme.4917099000001." + "0" * 31,
        "acme.4917099000001." + "0" * 33,
        "acme.4917099000001." + "A" * 32,
        "acme.+4917099000001." + "0" * 32,
        "acme.4917099000001234567." + "0" * 32,
        "ac*me.4917099000001." + "0" * 32,
        "acme\n.4917099000001." + "0" * 32,
        "acme.4917099000001." + "0" * 32 + "\n",
        "ácme.4917099000001." + "0" * 32,
        "a" * 65 + ".4917099000001." + "0" * 32,
    ],
)
def test_malformed_reservations_are_refused(text: str) -> None:
    with pytest.raises(InvalidReservation):
        parse_reservation(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_a_reservation_or_a_clear_refusal(text: str) -> None:
    try:
        ref = parse_reservation(text)
    except InvalidReservation as exc:
        assert str(exc).startswith("reservation id")
    else:
        assert ref.reservation_id == text


def test_route_template() -> None:
    policy = CallPolicy.from_config(SipConfig(route_uri="sip:+{callee}@gw.{tenant}.example"))
    assert policy.route(callee="4930", caller="49170", tenant="acme") == "sip:+4930@gw.acme.example"
    assert CallPolicy().route(callee="4930", caller="1", tenant="acme") is None
    for bad in ("sip:{nope}@gw", "sip:{callee!r}@gw", "sip:{callee:>5}@gw", "http://{callee}"):
        with pytest.raises(ConfigError):
            CallPolicy.from_config(SipConfig(route_uri=bad))
    assert CallPolicy(sweep_interval_s=30).expiry_margin_s == 121
    assert CallPolicy(sweep_interval_s=1).expiry_margin_s == 60


def test_metrics_collector_renders_the_sip_counters() -> None:
    metrics = SipMetrics()
    metrics.invites[("acme", 302)] += 2
    metrics.requests_by_method["INVITE"] += 3
    metrics.active_reservations = 2
    metrics.observe_latency(0.003)
    metrics.observe_latency(10.0)
    registry = CollectorRegistry()
    registry.register(SipMetricsCollector(metrics))
    text = generate_latest(registry).decode()
    assert 'ocs_sip_invites_total{status="302",tenant="acme"} 2.0' in text
    assert 'ocs_sip_requests_total{method="INVITE"} 3.0' in text
    assert "ocs_sip_active_reservations 2.0" in text
    assert 'ocs_sip_invite_latency_seconds_bucket{le="0.002"} 0.0' in text
    assert 'ocs_sip_invite_latency_seconds_bucket{le="0.005"} 1.0' in text
    assert 'ocs_sip_invite_latency_seconds_bucket{le="+Inf"} 2.0' in text
    assert "ocs_sip_invite_latency_seconds_count 2.0" in text
