"""Golden CCRs, as a PGW/SMF, an IMS core and an SMSC send them, parsed field by field."""

from __future__ import annotations

import pytest

from diameter_apps.codec import Avp
from diameter_apps.codes import FLAG_RETRANSMIT, VENDOR_3GPP, AvpCode
from diameter_apps.credit_control import (
    CcRequestType,
    ImsInformation,
    Money,
    RequestedAction,
    ServiceDomain,
    ServiceRequest,
    ServiceUnits,
    SmsInformation,
    SubscriptionId,
    SubscriptionIdType,
    TariffChangeUsage,
    UsedUnits,
    UserLocation,
    parse_ccr,
    service_domain,
)
from diameter_apps.credit_control.codes import (
    CcAvp,
    GeographicLocationType,
    MultipleServicesIndicator,
    ReportingReason,
)
from diameter_apps.dictionary import default_dictionary
from diameter_apps.errors import DiameterError
from diameter_apps.limits import DEFAULT_LIMITS
from diameter_apps.validation import Profile, RequestChecker
from tests.diameter_apps.credit_control.ccr_builders import (
    GY,
    IMSI,
    MSISDN,
    OUR_REALM,
    PEER_HOST,
    PEER_REALM,
    RO_VOICE,
    SESSION,
    SMS,
    ccr,
    ccr_avps,
    ims_information,
    location_tai_ecgi,
    message,
    money,
    mscc,
    ps_information,
    rsu,
    service_information,
    sms_information,
    units,
    usu,
)

MSI = Avp.enum(CcAvp.MULTIPLE_SERVICES_INDICATOR, 1)


def test_gy_initial_with_two_mscc_and_ps_information() -> None:
    request = ccr(
        1,
        0,
        body=[
            MSI,
            mscc(10, requested=rsu()),
            mscc(20, service_id=2, requested=rsu(*units(total=5_000_000))),
            service_information(ps_information(location=location_tai_ecgi("20801"))),
        ],
    )
    parsed = parse_ccr(request)
    assert parsed.session_id == SESSION
    assert (parsed.origin_host, parsed.origin_realm) == (PEER_HOST, PEER_REALM)
    assert parsed.destination_realm == OUR_REALM
    assert parsed.destination_host is None
    assert parsed.auth_application_id == 4
    assert parsed.service_context_id == GY
    assert parsed.domain is ServiceDomain.PS
    assert parsed.request_type is CcRequestType.INITIAL
    assert parsed.request_number == 0
    assert parsed.event_timestamp_s == 1_750_000_000
    assert parsed.requested_action is None
    assert (
        parsed.multiple_services_indicator is MultipleServicesIndicator.MULTIPLE_SERVICES_SUPPORTED
    )
    assert parsed.subscription_ids == (
        SubscriptionId(SubscriptionIdType.E164, MSISDN),
        SubscriptionId(SubscriptionIdType.IMSI, IMSI),
    )
    assert parsed.subscription(SubscriptionIdType.IMSI) == SubscriptionId(
        SubscriptionIdType.IMSI, IMSI
    )
    assert parsed.has_mscc
    assert parsed.services == (
        ServiceRequest(rating_group=10, requested=ServiceUnits()),
        ServiceRequest(
            rating_group=20, service_identifier=2, requested=ServiceUnits(total_octets=5_000_000)
        ),
    )
    first = parsed.services[0]
    assert first.wants_grant and first.requested is not None and first.requested.is_empty
    assert parsed.ps is not None
    assert parsed.ps.sgsn_mcc_mnc == "26201"
    assert parsed.ps.user_location == UserLocation(
        kind=GeographicLocationType.TAI_ECGI, mcc_mnc="20801", area_code=0x1234, cell_id=0x0ABCDEF
    )
    assert parsed.ps.visited_mcc_mnc == "20801"
    assert parsed.ps.called_station_id == "internet.mvno"
    assert parsed.ps.rat_type == 6
    assert parsed.ps.charging_characteristics == "0800"
    assert parsed.ims is None and parsed.sms is None
    assert parsed.deviations == ()
    assert not parsed.is_retransmission


def test_gy_update_with_several_usu_and_tariff_change_usage() -> None:
    request = ccr(
        2,
        3,
        body=[
            mscc(
                10,
                requested=rsu(),
                used=[
                    usu(*units(total=700, up=200, down=500), tariff_change=0),
                    usu(*units(total=300, up=100, down=200), tariff_change=1, reason=2),
                ],
                reason=ReportingReason.QUOTA_EXHAUSTED,
                triggers=[1, 2],
            ),
            mscc(20, used=[usu(*units(time_s=60, total=9_000))], reason=ReportingReason.QHT),
        ],
    )
    parsed = parse_ccr(request)
    assert parsed.request_type is CcRequestType.UPDATE
    assert parsed.request_number == 3
    first, report_only = parsed.services
    assert first.used == (
        UsedUnits(
            units=ServiceUnits(total_octets=700, input_octets=200, output_octets=500),
            tariff_change_usage=TariffChangeUsage.UNIT_BEFORE_TARIFF_CHANGE,
        ),
        UsedUnits(
            units=ServiceUnits(total_octets=300, input_octets=100, output_octets=200),
            tariff_change_usage=TariffChangeUsage.UNIT_AFTER_TARIFF_CHANGE,
            reporting_reason=ReportingReason.FINAL,
        ),
    )
    assert first.reporting_reason == ReportingReason.QUOTA_EXHAUSTED
    assert first.trigger_types == (1, 2)
    assert first.wants_grant
    assert report_only == ServiceRequest(
        rating_group=20,
        used=(UsedUnits(units=ServiceUnits(time_s=60, total_octets=9_000)),),
        reporting_reason=ReportingReason.QHT,
    )
    assert not report_only.wants_grant


def test_gy_termination_reports_final_usage() -> None:
    request = ccr(
        3,
        4,
        body=[
            Avp.enum(CcAvp.TERMINATION_CAUSE, 1),
            mscc(10, used=[usu(*units(up=1, down=2))], reason=ReportingReason.FINAL),
        ],
    )
    parsed = parse_ccr(request)
    assert parsed.request_type is CcRequestType.TERMINATION
    assert parsed.termination_cause == 1
    (service,) = parsed.services
    assert service.used[0].units.octets == 3
    assert service.reporting_reason == ReportingReason.FINAL


def test_ro_voice_initial_with_ims_information() -> None:
    request = ccr(
        1,
        0,
        context=RO_VOICE,
        subscriptions=[],
        body=[
            Avp.grouped(
                CcAvp.SUBSCRIPTION_ID,
                [
                    Avp.enum(CcAvp.SUBSCRIPTION_ID_TYPE, 2),
                    Avp.utf8(CcAvp.SUBSCRIPTION_ID_DATA, "sip:+4915112345678@ims.mno.example"),
                ],
            ),
            mscc(100, service_id=1000, requested=rsu(*units(time_s=300))),
            service_information(ims_information(requested="tel:+33612345678")),
        ],
    )
    parsed = parse_ccr(request)
    assert parsed.domain is ServiceDomain.IMS
    assert parsed.subscription_ids == (
        SubscriptionId(SubscriptionIdType.SIP_URI, "sip:+4915112345678@ims.mno.example"),
    )
    assert parsed.ims == ImsInformation(
        role_of_node=0,
        calling_party_address="sip:+4915112345678@ims.mno.example",
        called_party_address="tel:+33612345678",
        requested_party_address="tel:+33612345678",
        ims_charging_identifier="icid-0001",
    )
    assert parsed.services[0].requested == ServiceUnits(time_s=300)


def test_sms_event_direct_debiting() -> None:
    request = ccr(
        4,
        0,
        context=SMS,
        body=[
            Avp.enum(CcAvp.REQUESTED_ACTION, 0),
            mscc(300, requested=rsu(*units(specific=1))),
            service_information(sms_information("+33612345678")),
        ],
    )
    parsed = parse_ccr(request)
    assert parsed.domain is ServiceDomain.SMS
    assert parsed.request_type is CcRequestType.EVENT
    assert parsed.requested_action is RequestedAction.DIRECT_DEBITING
    assert parsed.sms == SmsInformation(recipient_addresses=("+33612345678",))
    assert parsed.sms.recipient_address == "+33612345678"
    assert parsed.services[0].requested == ServiceUnits(service_specific_units=1)


def test_sms_to_several_recipients_keeps_each_in_order() -> None:
    numbers = [f"+4915100000{i:02d}" for i in range(16)]
    request = ccr(4, 0, context=SMS, body=[
        Avp.enum(CcAvp.REQUESTED_ACTION, 0),
        service_information(sms_information(*numbers)),
    ])  # fmt: skip
    parsed = parse_ccr(request)
    assert parsed.sms is not None and parsed.sms.recipient_addresses == tuple(numbers)
    too_many = ccr(4, 0, context=SMS, body=[
        Avp.enum(CcAvp.REQUESTED_ACTION, 0),
        service_information(sms_information(*numbers, "+4930123")),
    ])  # fmt: skip
    with pytest.raises(DiameterError) as caught:
        parse_ccr(too_many)
    assert caught.value.result_code == 5009


@pytest.mark.parametrize("action", list(RequestedAction))
def test_every_requested_action(action: RequestedAction) -> None:
    request = ccr(4, 0, context=SMS, body=[Avp.enum(CcAvp.REQUESTED_ACTION, action)])
    assert parse_ccr(request).requested_action is action


def test_single_service_request_is_one_service_not_from_mscc() -> None:
    request = ccr(
        2,
        1,
        body=[
            Avp.u32(CcAvp.SERVICE_IDENTIFIER, 7),
            rsu(*units(time_s=120)),
            usu(*units(time_s=100)),
            usu(money(2_500, -3)),
        ],
    )
    parsed = parse_ccr(request)
    assert not parsed.has_mscc
    assert parsed.services == (
        ServiceRequest(
            service_identifier=7,
            requested=ServiceUnits(time_s=120),
            used=(
                UsedUnits(units=ServiceUnits(time_s=100)),
                UsedUnits(units=ServiceUnits(money=Money(2_500_000, 978))),
            ),
            from_mscc=False,
        ),
    )


def test_request_without_any_service_has_no_services() -> None:
    assert parse_ccr(ccr(3, 9)).services == ()


@pytest.mark.parametrize(
    ("digits", "exponent", "micros"),
    [(1, None, 1_000_000), (15, -1, 1_500_000), (1, -6, 1), (100, -8, 1), (3, 2, 300_000_000)],
)
def test_cc_money_becomes_micro_units(digits: int, exponent: int | None, micros: int) -> None:
    parsed = parse_ccr(ccr(1, 0, body=[mscc(1, requested=rsu(money(digits, exponent)))]))
    assert parsed.services[0].requested == ServiceUnits(money=Money(micros, 978))


@pytest.mark.parametrize(
    ("context", "domain"),
    [
        ("32251@3gpp.org", ServiceDomain.PS),
        ("8.32251@3gpp.org", ServiceDomain.PS),
        ("ext.01.001.8.32260@3gpp.org", ServiceDomain.IMS),
        ("32270@3gpp.org", ServiceDomain.MMS),
        ("32274@3gpp.org", ServiceDomain.SMS),
        ("10.32275@3gpp.org", ServiceDomain.MMTEL),
        ("32299@3gpp.org", None),
        ("voice@operator.example", None),
        ("", None),
    ],
)
def test_service_context_domain_by_suffix(context: str, domain: ServiceDomain | None) -> None:
    assert service_domain(context) is domain
    assert parse_ccr(ccr(1, 0, context=context)).domain is domain


def test_retransmission_flag_is_exposed() -> None:
    request = message(ccr_avps(2, 1), flags_extra=FLAG_RETRANSMIT)
    assert parse_ccr(request).is_retransmission


def test_lenient_profile_tolerates_kamailio_and_reports_it() -> None:
    avps = ccr_avps(1, 0)
    avps.insert(2, Avp.utf8(AvpCode.ORIGIN_HOST, "second.example"))
    avps.append(Avp.enum(CcAvp.ACCOUNTING_RECORD_TYPE, 2))
    avps.append(Avp.u32(CcAvp.ACCOUNTING_RECORD_NUMBER, 0))
    parsed = parse_ccr(message(avps), Profile.LENIENT)
    assert parsed.origin_host == PEER_HOST
    assert len(parsed.deviations) == 2
    assert "more than once" in parsed.deviations[0]
    assert "Accounting-Record" in parsed.deviations[1]


def test_lenient_profile_takes_auth_application_id_from_vendor_specific_application_id() -> None:
    avps = [a for a in ccr_avps(1, 0) if a.code != AvpCode.AUTH_APPLICATION_ID]
    avps.append(
        Avp.grouped(
            AvpCode.VENDOR_SPECIFIC_APPLICATION_ID,
            [Avp.u32(AvpCode.VENDOR_ID, VENDOR_3GPP), Avp.u32(AvpCode.AUTH_APPLICATION_ID, 4)],
        )
    )
    parsed = parse_ccr(message(avps))
    assert parsed.auth_application_id == 4
    assert parsed.deviations == ("Auth-Application-Id only in Vendor-Specific-Application-Id",)


def test_lenient_event_without_requested_action_is_direct_debiting() -> None:
    parsed = parse_ccr(ccr(4, 0, context=SMS))
    assert parsed.requested_action is RequestedAction.DIRECT_DEBITING
    assert parsed.deviations == ("CCR-EVENT without Requested-Action: DIRECT_DEBITING assumed",)


def test_unknown_avps_without_m_bit_are_ignored() -> None:
    extra = [Avp.utf8(99_999, "x", m=False), Avp.utf8(1, "x", vendor=12_345, m=False)]
    parsed = parse_ccr(ccr(1, 0, body=[*extra, mscc(1, requested=rsu(), extra=extra)]))
    assert parsed.services == (ServiceRequest(rating_group=1, requested=ServiceUnits()),)


def test_checked_decode_then_parse_agree_with_lazy_decode() -> None:
    """The peer hands over messages from the checking decoder (children decoded eagerly)."""
    request = ccr(
        2,
        3,
        body=[
            mscc(10, requested=rsu(), used=[usu(*units(total=1))]),
            service_information(ps_information()),
        ],
    )
    checker = RequestChecker(default_dictionary(), Profile.STRICT, DEFAULT_LIMITS)
    checked, deviations = checker.decode(request.encode())
    assert deviations == []
    lazy = parse_ccr(request, Profile.STRICT)
    eager = parse_ccr(checked, Profile.STRICT)
    assert (lazy.services, lazy.ps, lazy.subscription_ids) == (
        eager.services,
        eager.ps,
        eager.subscription_ids,
    )


def test_optional_session_avps() -> None:
    from diameter_apps.credit_control import CcSessionFailover, UserEquipment

    request = ccr(
        1,
        0,
        body=[
            Avp.utf8(AvpCode.DESTINATION_HOST, "ocs1.mvno.example"),
            Avp.utf8(CcAvp.USER_NAME, "alice"),
            Avp.u32(AvpCode.ORIGIN_STATE_ID, 1_700_000_000),
            Avp.enum(CcAvp.CC_SESSION_FAILOVER, 1),
            Avp.grouped(
                CcAvp.USER_EQUIPMENT_INFO,
                [
                    Avp.enum(CcAvp.USER_EQUIPMENT_INFO_TYPE, 0),
                    Avp.octets(CcAvp.USER_EQUIPMENT_INFO_VALUE, b"3548230012345601"),
                ],
            ),
        ],
    )
    parsed = parse_ccr(request)
    assert parsed.destination_host == "ocs1.mvno.example"
    assert parsed.user_name == "alice"
    assert parsed.origin_state_id == 1_700_000_000
    assert parsed.cc_session_failover is CcSessionFailover.FAILOVER_SUPPORTED
    assert parsed.user_equipment == UserEquipment(0, b"3548230012345601")


def test_subscription_preference_order() -> None:
    parsed = parse_ccr(ccr(1, 0))
    assert parsed.subscription() == SubscriptionId(SubscriptionIdType.E164, MSISDN)
    assert parsed.subscription(SubscriptionIdType.SIP_URI, SubscriptionIdType.IMSI) == (
        SubscriptionId(SubscriptionIdType.IMSI, IMSI)
    )
    assert parsed.subscription(SubscriptionIdType.NAI) is None
    assert parse_ccr(ccr(1, 0, subscriptions=[])).subscription() is None
