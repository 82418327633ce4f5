"""The simulator's pure parts: histogram accuracy, requests an independent decoder accepts,
scenario errors, and a verification that fails when the ledger disagrees."""

from __future__ import annotations

import random

import pytest
from diameter.message import Message as PdMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from balance.records import LedgerRecord
from sim import messages as m
from sim.histogram import Histogram, bucket_low, bucket_of
from sim.scenario import ScenarioError, load_scenario
from sim.stats import RunStats
from sim.verify import LedgerSnapshot, compare

PEER = m.PeerIdentity("sim-x-w0c0.sim.local", "sim.local")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**9))
def test_bucket_holds_value_within_one_64th(value: int) -> None:
    index = bucket_of(value)
    low, high = bucket_low(index), bucket_low(index + 1)
    assert low <= value < high
    assert value < 128 or (high - low) / value <= 1 / 64


def test_percentiles_match_sorted_values_within_bucket_precision() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(7, 1.2)) for _ in range(20_000)]
    first, second = Histogram(), Histogram()
    for n, value in enumerate(values):
        (first if n % 2 else second).record(value)
    first.merge(Histogram.from_wire(second.to_wire()))
    ordered = sorted(values)
    for fraction in (0.5, 0.9, 0.99):
        exact = ordered[int(fraction * len(ordered)) - 1]
        assert abs(first.percentile(fraction) - exact) <= max(2, exact / 32)
    assert first.total == len(values) and first.max_us == max(values)


def test_ccr_decodes_with_python_diameter() -> None:
    spec = m.CcrSpec(
        "sim-x-w0c0.sim.local;1;0", 2, 3, m.GY_CONTEXT, "4917099000001", "262019900000001",
        (m.MsccRequest(10, m.Unit.BYTES, requested=0, used=5000),
         m.MsccRequest(20, m.Unit.BYTES, used=7)),
        visited_plmn="20801",
    )  # fmt: skip
    encoded = m.ccr(spec, PEER, "test.local", hop_by_hop=5, end_to_end=6)
    decoded = PdMessage.from_bytes(encoded)
    assert decoded.session_id == spec.session_id
    assert decoded.cc_request_number == 3 and decoded.cc_request_type == 2
    msccs = decoded.multiple_services_credit_control
    assert [x.rating_group for x in msccs] == [10, 20]
    assert msccs[0].used_service_unit[0].cc_total_octets == 5000
    assert decoded.service_information.ps_information.tgpp_sgsn_mcc_mnc == "20801"
    retransmit = m.with_hop_by_hop(encoded, 99, retransmit=True)
    again = PdMessage.from_bytes(retransmit)
    assert again.header.is_retransmit and again.header.hop_by_hop_identifier == 99
    assert again.header.end_to_end_identifier == 6 and retransmit[20:] == encoded[20:]


def test_malformed_ccr_lacks_request_type() -> None:
    spec = m.CcrSpec("s;1", 1, 0, m.GY_CONTEXT, "4917099000001", None)
    encoded = m.ccr(spec, PEER, "r", hop_by_hop=1, end_to_end=1, omit_request_type=True)
    assert all(avp.code != 416 for avp in PdMessage.from_bytes(encoded).avps)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"load": {"rate": 0, "concurrency": 0}}, "load.rate or load.concurrency"),
        ({"mix": {"data": 0, "voice": 0, "sms": 0, "sip": 0}}, "mix"),
        ({"faults": {"duplicate_share": 1.5}}, "faults.duplicate_share"),
        ({"workers": 0}, "workers"),
        ({"load": {"session_timer_slot_ms": 0}}, "load.session_timer_slot_ms"),
        ({"load": {"rate_unit": "bogus"}}, "rate_unit"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_bad_scenarios_name_the_field(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(ScenarioError, match=fragment):
        load_scenario(None, overrides)


def test_ccr_rate_converts_to_sessions() -> None:
    scenario = load_scenario(
        None, {"load": {"rate": 1000, "rate_unit": "ccr"}, "mix": {"data": 1, "voice": 0, "sms": 0}}
    )
    assert scenario.session_rate() == pytest.approx(200.0)  # I + 3 U + T


def _record(op_id: str, units: int, retail: int, kind: str = "usage") -> LedgerRecord:
    return LedgerRecord(
        kind, "acme", "4917099000001", "sim-r-w0c0;1;0", op_id, "data", 10, units, retail, 0,
        (), 0, 0, (), 0.0, 0, "", -retail,
    )  # fmt: skip


def _stats(used: int) -> RunStats:
    stats = RunStats()
    stats.tenant("acme").used["data"] = used
    return stats


def test_compare_passes_when_everything_agrees() -> None:
    before = LedgerSnapshot({"acme/4917099000001": 1000}, {})
    records = [_record("a:1", 300, 30), _record("a:2", 200, 20), _record("x", 0, 0, "expiry")]
    result = compare(_stats(500), before, {"acme/4917099000001": 950}, records, "sim-r-")
    assert result.passed, result
    assert result.tenants[0].expiry_records == 1


@pytest.mark.parametrize(
    ("used", "after", "records", "problem"),
    [
        (499, 950, [_record("a:1", 300, 30), _record("a:2", 200, 20)], "reported 499"),
        (500, 949, [_record("a:1", 300, 30), _record("a:2", 200, 20)], "balances fell by 51"),
        (600, 920, [_record("a:1", 300, 40), _record("a:1", 300, 40)], "charged more than once"),
    ],
)
def test_compare_fails_on_any_disagreement(
    used: int, after: int, records: list[LedgerRecord], problem: str
) -> None:
    before = LedgerSnapshot({"acme/4917099000001": 1000}, {})
    result = compare(_stats(used), before, {"acme/4917099000001": after}, records, "sim-r-")
    assert not result.passed
    assert problem in " ".join(result.tenants[0].problems)


def test_unanswered_usage_is_a_failure_not_a_pass() -> None:
    stats = _stats(300)
    stats.tenant("acme").uncertain["data"] = 200
    before = LedgerSnapshot({"acme/4917099000001": 1000}, {})
    result = compare(
        stats, before, {"acme/4917099000001": 970}, [_record("a:1", 300, 30)], "sim-r-"
    )
    assert not result.passed and "unverifiable" in result.tenants[0].problems[0]


def test_record_buckets_as_bucket_of_does() -> None:
    values = [-5, 0, 1, 127, 128, 129, 255, 256, 10**6, 3_600_000_001, 10**12]
    histogram = Histogram()
    for value in values:
        histogram.record(value)
    expected: dict[int, int] = {}
    for value in values:
        expected[bucket_of(value)] = expected.get(bucket_of(value), 0) + 1
    assert histogram.counts == expected and histogram.max_us == 10**12


def test_verification_discounts_a_renewal_during_the_run() -> None:
    # 50 of usage and a 10.00 plan renewal (a record outside any session) during the run.
    renewal = LedgerRecord(
        "bucket", "acme", "4917099000001", "", "renew:4917099000001:plan:m:1", "m.data", 0,
        1000, 10_000_000, 0, (), 0, 0, (), 0.0, 0, "plan:m", -10_000_000,
    )  # fmt: skip
    before = LedgerSnapshot({"acme/4917099000001": 20_000_000}, {})
    records = [_record("a:1", 300, 30), _record("a:2", 200, 20), renewal]
    after = {"acme/4917099000001": 20_000_000 - 50 - 10_000_000}
    assert compare(_stats(500), before, after, records, "sim-r-").passed
    # Without the renewal record the same balances do not add up.
    assert not compare(_stats(500), before, after, records[:2], "sim-r-").passed


def test_verification_does_not_excuse_an_adjustment() -> None:
    taken = LedgerRecord(
        "adjust", "acme", "4917099000001", "", "adj-1", "", 0, 0, 0, 0, (), 0, 0, (), 0.0, 0,
        "wrong", -1,
    )  # fmt: skip
    before = LedgerSnapshot({"acme/4917099000001": 1000}, {})
    records = [_record("a:1", 300, 30), _record("a:2", 200, 20), taken]
    assert not compare(_stats(500), before, {"acme/4917099000001": 949}, records, "sim-r-").passed
