"""GrantAnswers: a granting MSCC answer is built once per shape and shared, never when final."""

from __future__ import annotations

from diameter_apps.credit_control import (
    FinalUnitAction,
    FinalUnitIndication,
    GrantedUnits,
    ServiceAnswer,
    ServiceRequest,
)
from ocs.charging.cc_answers import GrantAnswers


def test_the_same_shape_is_answered_by_the_same_answer() -> None:
    answers = GrantAnswers(threshold_percent=20, quota_holding_time_s=0)
    first = answers.answer(ServiceRequest(rating_group=10), 1000, "byte", 600, None)
    again = answers.answer(ServiceRequest(rating_group=10), 1000, "byte", 600, None)
    assert again is first
    assert first == ServiceAnswer(
        rating_group=10,
        granted=GrantedUnits(total_octets=1000),
        validity_time_s=600,
        volume_quota_threshold_octets=200,
    )
    other = answers.answer(ServiceRequest(rating_group=20), 1000, "byte", 600, None)
    assert other.rating_group == 20 and other is not first


def test_units_thresholds_and_holding_time_follow_the_unit() -> None:
    answers = GrantAnswers(threshold_percent=10, quota_holding_time_s=30)
    timed = answers.answer(ServiceRequest(rating_group=1), 60, "second", 60, 1_700_000_000)
    assert timed.granted == GrantedUnits(time_s=60)
    assert timed.time_quota_threshold_s == 6 and timed.volume_quota_threshold_octets is None
    assert timed.quota_holding_time_s == 30 and timed.tariff_time_change_s == 1_700_000_000
    events = answers.answer(ServiceRequest(rating_group=2), 5, "event", 60, None)
    assert events.granted == GrantedUnits(service_specific_units=5)
    assert events.unit_quota_threshold is None  # 10 % of 5 rounds down to nothing
    nothing = answers.answer(ServiceRequest(rating_group=3), 0, "byte", 60, None)
    assert nothing.granted is None


def test_a_final_grant_is_built_each_time() -> None:
    answers = GrantAnswers(threshold_percent=0, quota_holding_time_s=0)
    final = FinalUnitIndication(action=FinalUnitAction.TERMINATE)
    first = answers.answer(ServiceRequest(rating_group=10), 100, "byte", 60, None, final)
    assert first.final_unit_indication == final
    plain = answers.answer(ServiceRequest(rating_group=10), 100, "byte", 60, None)
    assert plain.final_unit_indication is None and plain is not first
