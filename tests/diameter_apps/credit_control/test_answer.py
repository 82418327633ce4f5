"""CCAs built by build_cca, decoded by python-diameter (an independent decoder)."""

from __future__ import annotations

from typing import Any

import pytest
from diameter.message import Message as PdMessage
from diameter.message.avp import Avp as PdAvp

from diameter_apps.codec import Avp, Message, decode_message
from diameter_apps.codes import FLAG_PROXIABLE, FLAG_REQUEST, VENDOR_3GPP, AvpCode, ResultCode
from diameter_apps.credit_control import (
    CheckBalanceResult,
    CostInformation,
    CreditControlAnswer,
    CreditControlFailureHandling,
    DirectDebitingFailureHandling,
    FinalUnitAction,
    FinalUnitIndication,
    GrantedUnits,
    Money,
    MsccAvpCache,
    RedirectServer,
    ServiceAnswer,
    build_cca,
    currency_code,
    parse_ccr,
)
from diameter_apps.credit_control.answer import unit_value
from diameter_apps.credit_control.codes import CcAvp, GppAvp
from tests.diameter_apps.credit_control.ccr_builders import (
    OUR_HOST,
    OUR_REALM,
    SESSION,
    SMS,
    ccr,
    mscc,
    rsu,
    units,
    usu,
)

G = VENDOR_3GPP
EUR = 978
TOP_UP = "https://top-up.acme.example/?msisdn=4915112345678"


def cca_for(request: Message, answer: CreditControlAnswer) -> tuple[PdMessage, bytes]:
    """The CCA decoded by python-diameter, and its bytes (for :func:`values`)."""
    built = build_cca(parse_ccr(request), answer, origin_host=OUR_HOST, origin_realm=OUR_REALM)
    data = built.encode()
    return PdMessage.from_bytes(data), data


def values(data: bytes, *chain: tuple[int, int]) -> list[Any]:
    """Values at the end of ``chain`` in the raw AVP tree of ``decoded``.

    python-diameter's typed attributes drop AVPs its dataclasses do not model (CC-Output-Octets,
    Tariff-Time-Change in a GSU), so the tree is re-read with its AVP decoder from the bytes.
    """
    level: list[Any] = [PdAvp.from_bytes(avp.encode()) for avp in decode_message(data).avps]
    for code, vendor in chain[:-1]:
        level = [c for a in level if (a.code, a.vendor_id) == (code, vendor) for c in a.value]
    code, vendor = chain[-1]
    return [a.value for a in level if (a.code, a.vendor_id) == (code, vendor)]


MSCC = (int(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL), 0)
GSU = (int(CcAvp.GRANTED_SERVICE_UNIT), 0)


def test_gy_cca_with_two_mscc_each_answered_on_its_own() -> None:
    request = ccr(2, 5, body=[mscc(10, requested=rsu(), used=[usu(*units(total=1))]),
                              mscc(20, service_id=3, requested=rsu())])  # fmt: skip
    answer = CreditControlAnswer(
        services=(
            ServiceAnswer(
                rating_group=10,
                granted=GrantedUnits(total_octets=50_000_000),
                validity_time_s=900,
                volume_quota_threshold_octets=5_000_000,
                quota_holding_time_s=120,
                tariff_time_change_s=1_750_003_600,
                final_unit_indication=FinalUnitIndication(
                    action=FinalUnitAction.REDIRECT, redirect_server=RedirectServer(TOP_UP)
                ),
            ),
            ServiceAnswer(
                rating_group=20,
                service_identifier=3,
                result_code=ResultCode.CREDIT_LIMIT_REACHED,
            ),
        ),
        credit_control_failure_handling=CreditControlFailureHandling.RETRY_AND_TERMINATE,
    )
    decoded, raw = cca_for(request, answer)

    assert decoded.header.is_request is False
    assert decoded.header.hop_by_hop_identifier == 7
    assert decoded.header.end_to_end_identifier == 107
    assert decoded.avps[0].code == AvpCode.SESSION_ID and decoded.avps[0].value == SESSION
    assert decoded.result_code == ResultCode.SUCCESS
    assert decoded.origin_host == OUR_HOST.encode()
    assert decoded.auth_application_id == 4
    assert (decoded.cc_request_type, decoded.cc_request_number) == (2, 5)
    assert decoded.cc_session_failover == 1
    assert decoded.credit_control_failure_handling == 2
    granted, refused = decoded.multiple_services_credit_control
    assert granted.rating_group == 10
    assert granted.result_code == ResultCode.SUCCESS
    assert granted.granted_service_unit.cc_total_octets == 50_000_000
    assert granted.validity_time == 900
    assert granted.volume_quota_threshold == 5_000_000
    assert granted.quota_holding_time == 120
    fui = granted.final_unit_indication
    assert fui.final_unit_action == FinalUnitAction.REDIRECT
    assert fui.redirect_server.redirect_address_type == 2
    assert fui.redirect_server.redirect_server_address == TOP_UP
    tariff_change = values(raw, MSCC, GSU, (int(CcAvp.TARIFF_TIME_CHANGE), 0))
    assert [t.timestamp() for t in tariff_change] == [1_750_003_600]
    assert refused.rating_group == 20
    assert refused.service_identifier == [3]
    assert refused.result_code == ResultCode.CREDIT_LIMIT_REACHED
    assert refused.granted_service_unit is None


@pytest.mark.parametrize(
    ("granted", "avp", "expected"),
    [
        (GrantedUnits(time_s=300), CcAvp.CC_TIME, 300),
        (GrantedUnits(total_octets=2**40), CcAvp.CC_TOTAL_OCTETS, 2**40),
        (GrantedUnits(input_octets=7), CcAvp.CC_INPUT_OCTETS, 7),
        (GrantedUnits(output_octets=9), CcAvp.CC_OUTPUT_OCTETS, 9),
        (GrantedUnits(service_specific_units=1), CcAvp.CC_SERVICE_SPECIFIC_UNITS, 1),
    ],
)
def test_granted_units_in_the_unit_of_the_service(
    granted: GrantedUnits, avp: CcAvp, expected: int
) -> None:
    _decoded, raw = cca_for(
        ccr(1, 0, body=[mscc(1, requested=rsu())]),
        CreditControlAnswer(services=(ServiceAnswer(rating_group=1, granted=granted),)),
    )
    (gsu,) = values(raw, MSCC, GSU)
    assert [(a.code, a.value) for a in gsu] == [(int(avp), expected)]


def test_granted_money_is_unit_value_and_currency() -> None:
    decoded, _raw = cca_for(
        ccr(1, 0, body=[mscc(1, requested=rsu())]),
        CreditControlAnswer(
            services=(
                ServiceAnswer(rating_group=1, granted=GrantedUnits(money=Money(2_500_000, EUR))),
            )
        ),
    )
    money = decoded.multiple_services_credit_control[0].granted_service_unit.cc_money
    assert (money.unit_value.value_digits, money.unit_value.exponent) == (25, -1)
    assert money.currency_code == EUR


def test_time_and_unit_thresholds_are_3gpp_avps() -> None:
    _decoded, raw = cca_for(
        ccr(1, 0, context=SMS, body=[mscc(1, requested=rsu())]),
        CreditControlAnswer(
            services=(
                ServiceAnswer(
                    rating_group=1,
                    granted=GrantedUnits(time_s=600),
                    time_quota_threshold_s=60,
                    unit_quota_threshold=2,
                ),
            )
        ),
    )
    assert values(raw, MSCC, (int(GppAvp.TIME_QUOTA_THRESHOLD), G)) == [60]
    assert values(raw, MSCC, (int(GppAvp.UNIT_QUOTA_THRESHOLD), G)) == [2]


def test_final_unit_indication_terminate_and_restrict_access() -> None:
    decoded, _raw = cca_for(
        ccr(2, 1, body=[mscc(1, requested=rsu()), mscc(2, requested=rsu())]),
        CreditControlAnswer(
            services=(
                ServiceAnswer(
                    rating_group=1,
                    granted=GrantedUnits(total_octets=10),
                    final_unit_indication=FinalUnitIndication(action=FinalUnitAction.TERMINATE),
                ),
                ServiceAnswer(
                    rating_group=2,
                    granted=GrantedUnits(total_octets=10),
                    final_unit_indication=FinalUnitIndication(
                        action=FinalUnitAction.RESTRICT_ACCESS,
                        filter_ids=("walled-garden",),
                        restriction_filter_rules=("permit out ip from any to 192.0.2.1",),
                    ),
                ),
            )
        ),
    )
    terminate, restrict = (
        m.final_unit_indication for m in decoded.multiple_services_credit_control
    )
    assert terminate.final_unit_action == FinalUnitAction.TERMINATE
    assert terminate.redirect_server is None
    assert restrict.final_unit_action == FinalUnitAction.RESTRICT_ACCESS
    assert restrict.filter_id == ["walled-garden"]
    assert restrict.restriction_filter_rule == [b"permit out ip from any to 192.0.2.1"]


def test_single_service_form_puts_grant_validity_and_fui_at_top_level() -> None:
    request = ccr(1, 0, body=[rsu(*units(time_s=60))])
    answer = CreditControlAnswer(
        services=(
            ServiceAnswer(
                granted=GrantedUnits(time_s=60),
                validity_time_s=300,
                final_unit_indication=FinalUnitIndication(action=FinalUnitAction.TERMINATE),
            ),
        )
    )
    decoded, _raw = cca_for(request, answer)
    assert decoded.multiple_services_credit_control == []
    assert decoded.granted_service_unit.cc_time == 60
    assert decoded.validity_time == 300
    assert decoded.final_unit_indication.final_unit_action == FinalUnitAction.TERMINATE
    assert decoded.result_code == ResultCode.SUCCESS


def test_single_service_refusal_becomes_the_result_code() -> None:
    request = ccr(2, 1, body=[rsu(), usu(*units(time_s=60))])
    answer = CreditControlAnswer(
        services=(ServiceAnswer(result_code=ResultCode.CREDIT_LIMIT_REACHED),)
    )
    decoded, _raw = cca_for(request, answer)
    assert decoded.result_code == ResultCode.CREDIT_LIMIT_REACHED
    assert decoded.granted_service_unit is None


def test_event_answers_check_balance_cost_and_balance_indications() -> None:
    request = ccr(4, 0, context=SMS, body=[Avp.enum(CcAvp.REQUESTED_ACTION, 3)])
    answer = CreditControlAnswer(
        cc_session_failover=None,
        check_balance_result=CheckBalanceResult.NO_CREDIT,
        cost_information=CostInformation(
            money_micros=123_450_000, currency_code=currency_code("eur"), cost_unit="SMS"
        ),
        direct_debiting_failure_handling=DirectDebitingFailureHandling.CONTINUE,
        low_balance=True,
        remaining_balance=Money(1_000_000, EUR),
    )
    decoded, raw = cca_for(request, answer)
    assert decoded.cc_session_failover is None
    assert decoded.check_balance_result == CheckBalanceResult.NO_CREDIT
    cost = decoded.cost_information
    assert (cost.unit_value.value_digits, cost.unit_value.exponent) == (12_345, -2)
    assert (cost.currency_code, cost.cost_unit) == (EUR, "SMS")
    assert values(raw, (int(CcAvp.DIRECT_DEBITING_FAILURE_HANDLING), 0)) == [1]
    assert values(raw, (int(GppAvp.LOW_BALANCE_INDICATION), G)) == [1]
    (remaining,) = values(raw, (int(GppAvp.REMAINING_BALANCE), G))
    assert [a.code for a in remaining] == [CcAvp.UNIT_VALUE, CcAvp.CURRENCY_CODE]
    assert values(
        raw,
        (int(GppAvp.REMAINING_BALANCE), G),
        (int(CcAvp.UNIT_VALUE), 0),
        (int(CcAvp.VALUE_DIGITS), 0),
    ) == [1]


@pytest.mark.parametrize(
    ("micros", "digits", "exponent"),
    [
        (0, 0, 0),
        (1, 1, -6),
        (1_500_000, 15, -1),
        (10_000_000, 10, 0),
        (123_456_789, 123_456_789, -6),
    ],
)
def test_money_is_normalised_with_exponent_down_to_minus_six(
    micros: int, digits: int, exponent: int
) -> None:
    avp = unit_value(micros)
    value_digits, exponent_avp = avp.children()
    assert (value_digits.code, value_digits.as_i64()) == (CcAvp.VALUE_DIGITS, digits)
    assert (exponent_avp.code, exponent_avp.as_i32()) == (CcAvp.EXPONENT, exponent)
    assert digits * 10 ** (exponent + 6) == micros


def test_build_from_the_raw_request_message_echoes_type_and_number() -> None:
    request = ccr(3, 8, body=[mscc(5, used=[usu(*units(time_s=1))])])
    answer = CreditControlAnswer(services=(ServiceAnswer(rating_group=5),))
    built = build_cca(request, answer, origin_host=OUR_HOST, origin_realm=OUR_REALM)
    assert built.flags & FLAG_REQUEST == 0
    assert built.flags & FLAG_PROXIABLE
    decoded = PdMessage.from_bytes(built.encode())
    assert (decoded.cc_request_type, decoded.cc_request_number) == (3, 8)
    assert decoded.multiple_services_credit_control[0].rating_group == 5
    assert decoded.multiple_services_credit_control[0].granted_service_unit is None


def test_cca_avps_carry_the_m_and_v_bits_of_the_dictionary() -> None:
    answer = CreditControlAnswer(
        services=(
            ServiceAnswer(
                rating_group=1,
                granted=GrantedUnits(total_octets=1),
                volume_quota_threshold_octets=1,
                unit_quota_threshold=1,
            ),
        ),
        low_balance=False,
    )
    built = build_cca(parse_ccr(ccr(1, 0, body=[mscc(1, requested=rsu())])), answer,
                      origin_host=OUR_HOST, origin_realm=OUR_REALM)  # fmt: skip
    decoded = decode_message(built.encode())
    mscc_avp = decoded.find(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL)
    assert mscc_avp is not None and mscc_avp.is_mandatory
    threshold = mscc_avp.find(GppAvp.VOLUME_QUOTA_THRESHOLD, G)
    unit_threshold = mscc_avp.find(GppAvp.UNIT_QUOTA_THRESHOLD, G)
    assert threshold is not None and threshold.is_mandatory and threshold.flags & 0x80
    assert unit_threshold is not None and not unit_threshold.is_mandatory
    low = decoded.find(GppAvp.LOW_BALANCE_INDICATION, G)
    assert low is not None and low.as_i32() == 0


def test_answer_values_out_of_range_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="CC-Time"):
        GrantedUnits(time_s=2**32)
    with pytest.raises(ValueError, match="Validity-Time"):
        ServiceAnswer(validity_time_s=-1)
    with pytest.raises(ValueError, match="Redirect-Server"):
        FinalUnitIndication(action=FinalUnitAction.REDIRECT)
    with pytest.raises(ValueError, match="RESTRICT_ACCESS"):
        FinalUnitIndication(action=FinalUnitAction.RESTRICT_ACCESS)
    with pytest.raises(ValueError, match="currency"):
        CreditControlAnswer(remaining_balance=Money(1))
    with pytest.raises(ValueError, match="Result-Code"):
        CreditControlAnswer(result_code=2**32)
    with pytest.raises(ValueError, match="Result-Code"):
        CreditControlAnswer(result_code=-1)
    with pytest.raises(ValueError, match="ISO 4217"):
        currency_code("XYZ")  # not in ISO 4217


def test_single_service_request_cannot_get_two_service_answers() -> None:
    request = parse_ccr(ccr(1, 0, body=[rsu()]))
    answer = CreditControlAnswer(services=(ServiceAnswer(), ServiceAnswer()))
    with pytest.raises(ValueError, match="at most one service"):
        build_cca(request, answer, origin_host=OUR_HOST, origin_realm=OUR_REALM)


def test_raw_request_without_cc_request_type_is_refused() -> None:
    request = ccr(1, 0)
    request.avps = [a for a in request.avps if a.code != CcAvp.CC_REQUEST_TYPE]
    with pytest.raises(ValueError, match="answer_for_error"):
        build_cca(request, CreditControlAnswer(), origin_host=OUR_HOST, origin_realm=OUR_REALM)


def test_mscc_cache_gives_the_same_bytes_and_stays_bounded() -> None:
    """Cached MSCCs encode exactly as freshly built ones, for every kind of service answer."""
    request = ccr(2, 5, body=[mscc(10, requested=rsu()), mscc(20, requested=rsu())])
    services = (
        ServiceAnswer(
            rating_group=10,
            granted=GrantedUnits(total_octets=50_000_000),
            validity_time_s=900,
            volume_quota_threshold_octets=5_000_000,
            final_unit_indication=FinalUnitIndication(
                action=FinalUnitAction.RESTRICT_ACCESS,
                filter_ids=("walled-garden",),
                restriction_filter_rules=("permit out ip from any to 192.0.2.1",),
            ),
        ),
        ServiceAnswer(
            rating_group=20,
            granted=GrantedUnits(money=Money(1_500_000, 978)),
            final_unit_indication=FinalUnitIndication(
                action=FinalUnitAction.REDIRECT, redirect_server=RedirectServer(TOP_UP)
            ),
        ),
    )
    answer = CreditControlAnswer(services=services)
    cache = MsccAvpCache(entries_max=2)
    fresh = build_cca(request, answer, origin_host="ocs", origin_realm="r").encode()
    for _ in range(3):
        cached = build_cca(request, answer, origin_host="ocs", origin_realm="r", mscc_avps=cache)
        assert cached.encode() == fresh
    assert len(cache) == 2
    other = ServiceAnswer(rating_group=30, result_code=ResultCode.CREDIT_LIMIT_REACHED)
    cache.avp(other)
    assert len(cache) == 1  # full: emptied, then the new entry
    with pytest.raises(ValueError):
        MsccAvpCache(entries_max=0)
