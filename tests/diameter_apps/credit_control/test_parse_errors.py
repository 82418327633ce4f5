"""Every malformed CCR with its exact Result-Code and Failed-AVP (RFC 6733 §7.5, RFC 4006)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from diameter_apps.answers import answer_for_error
from diameter_apps.codec import Avp, Message, decode_message
from diameter_apps.codes import AVP_FLAG_MANDATORY, VENDOR_3GPP, AvpCode, ResultCode
from diameter_apps.credit_control import parse_ccr
from diameter_apps.credit_control.codes import CcAvp, GppAvp
from diameter_apps.errors import DiameterError
from diameter_apps.validation import Profile
from tests.diameter_apps.credit_control.ccr_builders import (
    OUR_HOST,
    OUR_REALM,
    SMS,
    ccr_avps,
    message,
    money,
    mscc,
    ps_information,
    replaced,
    rsu,
    service_information,
    subscription,
    units,
    usu,
    without,
)

M = AVP_FLAG_MANDATORY
G = VENDOR_3GPP
STRICT = Profile.STRICT
LENIENT = Profile.LENIENT


def minimal(code: int, size: int = 0) -> Avp:
    """The Failed-AVP of a missing AVP: its code, the M bit, a zero value of the type's size."""
    return Avp(code, M, 0, bytes(size))


def nested(*chain: Avp) -> Avp:
    """``chain[0]`` { ``chain[1]`` { ... } }: the Failed-AVP form of a fault inside Groupeds."""
    inner = chain[-1]
    for parent in reversed(chain[:-1]):
        inner = Avp.grouped(parent.code, [inner], parent.vendor, m=parent.is_mandatory)
    return inner


def shell(code: int, vendor: int = 0) -> Avp:
    """A Grouped parent (only its code, vendor and M bit matter to :func:`nested`)."""
    return Avp.grouped(code, [], vendor)


def with_body(*body: Avp, request_type: int = 2) -> list[Avp]:
    return ccr_avps(request_type, 1, body=body)


TWO_RSU = mscc(1, requested=rsu(), extra=[rsu()])
BAD_TIME = Avp(CcAvp.CC_TIME, M, 0, b"\x00\x00\x01")
SECOND_HOST = Avp.utf8(AvpCode.ORIGIN_HOST, "again.example")

Case = tuple[str, Callable[[], list[Avp]], Profile, ResultCode, Avp]
CASES: list[Case] = [
    (
        "missing CC-Request-Type",
        lambda: without(ccr_avps(1, 0), CcAvp.CC_REQUEST_TYPE),
        LENIENT,
        ResultCode.MISSING_AVP,
        minimal(CcAvp.CC_REQUEST_TYPE, 4),
    ),
    (
        "missing Session-Id",
        lambda: without(ccr_avps(1, 0), AvpCode.SESSION_ID),
        LENIENT,
        ResultCode.MISSING_AVP,
        minimal(AvpCode.SESSION_ID),
    ),
    (
        "missing Origin-Realm",
        lambda: without(ccr_avps(2, 1), AvpCode.ORIGIN_REALM),
        LENIENT,
        ResultCode.MISSING_AVP,
        minimal(AvpCode.ORIGIN_REALM),
    ),
    (
        "missing Destination-Realm",
        lambda: without(ccr_avps(3, 1), AvpCode.DESTINATION_REALM),
        LENIENT,
        ResultCode.MISSING_AVP,
        minimal(AvpCode.DESTINATION_REALM),
    ),
    (
        "missing Auth-Application-Id (strict)",
        lambda: without(ccr_avps(1, 0), AvpCode.AUTH_APPLICATION_ID),
        STRICT,
        ResultCode.MISSING_AVP,
        minimal(AvpCode.AUTH_APPLICATION_ID, 4),
    ),
    (
        "missing Auth-Application-Id, no Vendor-Specific-Application-Id either (lenient)",
        lambda: without(ccr_avps(1, 0), AvpCode.AUTH_APPLICATION_ID),
        LENIENT,
        ResultCode.MISSING_AVP,
        minimal(AvpCode.AUTH_APPLICATION_ID, 4),
    ),
    (
        "missing Service-Context-Id",
        lambda: without(ccr_avps(1, 0), CcAvp.SERVICE_CONTEXT_ID),
        LENIENT,
        ResultCode.MISSING_AVP,
        minimal(CcAvp.SERVICE_CONTEXT_ID),
    ),
    (
        "missing CC-Request-Number",
        lambda: without(ccr_avps(2, 1), CcAvp.CC_REQUEST_NUMBER),
        LENIENT,
        ResultCode.MISSING_AVP,
        minimal(CcAvp.CC_REQUEST_NUMBER, 4),
    ),
    (
        "CCR-EVENT without Requested-Action (strict)",
        lambda: ccr_avps(4, 0, context=SMS),
        STRICT,
        ResultCode.MISSING_AVP,
        minimal(CcAvp.REQUESTED_ACTION, 4),
    ),
    (
        "unknown CC-Request-Type",
        lambda: replaced(ccr_avps(1, 0), Avp.enum(CcAvp.CC_REQUEST_TYPE, 5)),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        Avp.enum(CcAvp.CC_REQUEST_TYPE, 5),
    ),
    (
        "Auth-Application-Id is not 4",
        lambda: replaced(ccr_avps(1, 0), Avp.u32(AvpCode.AUTH_APPLICATION_ID, 16_777_238)),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        Avp.u32(AvpCode.AUTH_APPLICATION_ID, 16_777_238),
    ),
    (
        "unknown Requested-Action",
        lambda: ccr_avps(4, 0, body=[Avp.enum(CcAvp.REQUESTED_ACTION, 9)]),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        Avp.enum(CcAvp.REQUESTED_ACTION, 9),
    ),
    (
        "unknown Multiple-Services-Indicator",
        lambda: with_body(Avp.enum(CcAvp.MULTIPLE_SERVICES_INDICATOR, 2)),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        Avp.enum(CcAvp.MULTIPLE_SERVICES_INDICATOR, 2),
    ),
    (
        "Service-Context-Id is not UTF-8",
        lambda: replaced(ccr_avps(1, 0), Avp.octets(CcAvp.SERVICE_CONTEXT_ID, b"\xff\xfe")),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        Avp.octets(CcAvp.SERVICE_CONTEXT_ID, b"\xff\xfe"),
    ),
    (
        "CC-Request-Number twice",
        lambda: with_body(Avp.u32(CcAvp.CC_REQUEST_NUMBER, 2)),
        LENIENT,
        ResultCode.AVP_OCCURS_TOO_MANY_TIMES,
        Avp.u32(CcAvp.CC_REQUEST_NUMBER, 2),
    ),
    (
        "Session-Id twice",
        lambda: with_body(Avp.utf8(AvpCode.SESSION_ID, "other")),
        LENIENT,
        ResultCode.AVP_OCCURS_TOO_MANY_TIMES,
        Avp.utf8(AvpCode.SESSION_ID, "other"),
    ),
    (
        "Origin-Host twice (strict)",
        lambda: with_body(SECOND_HOST),
        STRICT,
        ResultCode.AVP_OCCURS_TOO_MANY_TIMES,
        SECOND_HOST,
    ),
    (
        "Service-Information twice",
        lambda: with_body(service_information(), service_information()),
        LENIENT,
        ResultCode.AVP_OCCURS_TOO_MANY_TIMES,
        service_information(),
    ),
    (
        "unknown Subscription-Id-Type",
        lambda: ccr_avps(1, 0, subscriptions=[subscription(9, "123")]),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        subscription(9, "123"),
    ),
    (
        "empty Subscription-Id-Data",
        lambda: ccr_avps(1, 0, subscriptions=[subscription(0, "")]),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        subscription(0, ""),
    ),
    (
        "Subscription-Id without Subscription-Id-Data",
        lambda: ccr_avps(
            1,
            0,
            subscriptions=[
                Avp.grouped(CcAvp.SUBSCRIPTION_ID, [Avp.enum(CcAvp.SUBSCRIPTION_ID_TYPE, 0)])
            ],
        ),
        LENIENT,
        ResultCode.MISSING_AVP,
        nested(shell(CcAvp.SUBSCRIPTION_ID), minimal(CcAvp.SUBSCRIPTION_ID_DATA)),
    ),
    (
        "Subscription-Id with two types",
        lambda: ccr_avps(
            1,
            0,
            subscriptions=[
                Avp.grouped(
                    CcAvp.SUBSCRIPTION_ID,
                    [
                        Avp.enum(CcAvp.SUBSCRIPTION_ID_TYPE, 0),
                        Avp.enum(CcAvp.SUBSCRIPTION_ID_TYPE, 1),
                        Avp.utf8(CcAvp.SUBSCRIPTION_ID_DATA, "1"),
                    ],
                )
            ],
        ),
        LENIENT,
        ResultCode.AVP_OCCURS_TOO_MANY_TIMES,
        nested(shell(CcAvp.SUBSCRIPTION_ID), Avp.enum(CcAvp.SUBSCRIPTION_ID_TYPE, 1)),
    ),
    (
        "MSCC with two Requested-Service-Units",
        lambda: with_body(TWO_RSU),
        LENIENT,
        ResultCode.AVP_OCCURS_TOO_MANY_TIMES,
        nested(shell(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL), rsu()),
    ),
    (
        "MSCC with two Rating-Groups",
        lambda: with_body(mscc(1, extra=[Avp.u32(CcAvp.RATING_GROUP, 2)])),
        LENIENT,
        ResultCode.AVP_OCCURS_TOO_MANY_TIMES,
        nested(shell(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL), Avp.u32(CcAvp.RATING_GROUP, 2)),
    ),
    (
        "USU with CC-Time twice",
        lambda: with_body(mscc(1, used=[usu(*units(time_s=1), *units(time_s=2))])),
        LENIENT,
        ResultCode.AVP_OCCURS_TOO_MANY_TIMES,
        nested(
            shell(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL),
            shell(CcAvp.USED_SERVICE_UNIT),
            Avp.u32(CcAvp.CC_TIME, 2),
        ),
    ),
    (
        "USU with unknown Tariff-Change-Usage",
        lambda: with_body(mscc(1, used=[usu(*units(time_s=1), tariff_change=7)])),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        nested(
            shell(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL),
            shell(CcAvp.USED_SERVICE_UNIT),
            Avp.enum(CcAvp.TARIFF_CHANGE_USAGE, 7),
        ),
    ),
    (
        "RSU CC-Time of three octets",
        lambda: with_body(mscc(1, requested=rsu(BAD_TIME))),
        LENIENT,
        ResultCode.INVALID_AVP_LENGTH,
        nested(
            shell(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL),
            shell(CcAvp.REQUESTED_SERVICE_UNIT),
            BAD_TIME,
        ),
    ),
    (
        "negative CC-Money",
        lambda: with_body(mscc(1, requested=rsu(money(-5, -2)))),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        nested(
            shell(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL),
            shell(CcAvp.REQUESTED_SERVICE_UNIT),
            shell(CcAvp.CC_MONEY),
            shell(CcAvp.UNIT_VALUE),
            Avp.i64(CcAvp.VALUE_DIGITS, -5),
        ),
    ),
    (
        "CC-Money finer than a micro-unit",
        lambda: with_body(mscc(1, requested=rsu(money(123, -8)))),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        nested(
            shell(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL),
            shell(CcAvp.REQUESTED_SERVICE_UNIT),
            shell(CcAvp.CC_MONEY),
            shell(CcAvp.UNIT_VALUE),
            Avp.i32(CcAvp.EXPONENT, -8),
        ),
    ),
    (
        "CC-Money exponent out of range",
        lambda: with_body(mscc(1, requested=rsu(money(1, 1_000_000)))),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        nested(
            shell(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL),
            shell(CcAvp.REQUESTED_SERVICE_UNIT),
            shell(CcAvp.CC_MONEY),
            shell(CcAvp.UNIT_VALUE),
            Avp.i32(CcAvp.EXPONENT, 1_000_000),
        ),
    ),
    (
        "CC-Money beyond int64 micro-units",
        lambda: with_body(mscc(1, requested=rsu(money(10**13, 1)))),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        nested(
            shell(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL),
            shell(CcAvp.REQUESTED_SERVICE_UNIT),
            shell(CcAvp.CC_MONEY),
            shell(CcAvp.UNIT_VALUE),
            Avp.i64(CcAvp.VALUE_DIGITS, 10**13),
        ),
    ),
    (
        "CC-Money without Unit-Value",
        lambda: with_body(
            mscc(
                1,
                requested=rsu(Avp.grouped(CcAvp.CC_MONEY, [Avp.u32(CcAvp.CURRENCY_CODE, 978)])),
            )
        ),
        LENIENT,
        ResultCode.MISSING_AVP,
        nested(
            shell(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL),
            shell(CcAvp.REQUESTED_SERVICE_UNIT),
            shell(CcAvp.CC_MONEY),
            minimal(CcAvp.UNIT_VALUE),
        ),
    ),
    (
        "User-Equipment-Info without its type",
        lambda: with_body(
            Avp.grouped(
                CcAvp.USER_EQUIPMENT_INFO, [Avp.octets(CcAvp.USER_EQUIPMENT_INFO_VALUE, b"1")]
            )
        ),
        LENIENT,
        ResultCode.MISSING_AVP,
        nested(shell(CcAvp.USER_EQUIPMENT_INFO), minimal(CcAvp.USER_EQUIPMENT_INFO_TYPE, 4)),
    ),
    (
        "3GPP-User-Location-Info of an unknown type",
        lambda: with_body(service_information(ps_information(location=b"\x07\x62\xf2\x10"))),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        nested(
            shell(GppAvp.SERVICE_INFORMATION, G),
            shell(GppAvp.PS_INFORMATION, G),
            Avp.octets(GppAvp.USER_LOCATION_INFO, b"\x07\x62\xf2\x10", G),
        ),
    ),
    (
        "3GPP-SGSN-MCC-MNC not digits",
        lambda: with_body(service_information(ps_information(mcc_mnc="26A01"))),
        LENIENT,
        ResultCode.INVALID_AVP_VALUE,
        nested(
            shell(GppAvp.SERVICE_INFORMATION, G),
            shell(GppAvp.PS_INFORMATION, G),
            Avp.utf8(GppAvp.SGSN_MCC_MNC, "26A01", G),
        ),
    ),
    (
        "Accounting-Record-Type in a CCR (strict)",
        lambda: with_body(Avp.enum(CcAvp.ACCOUNTING_RECORD_TYPE, 2)),
        STRICT,
        ResultCode.AVP_NOT_ALLOWED,
        Avp.enum(CcAvp.ACCOUNTING_RECORD_TYPE, 2),
    ),
    (
        "Requested-Action in a CCR-UPDATE (strict)",
        lambda: with_body(Avp.enum(CcAvp.REQUESTED_ACTION, 0)),
        STRICT,
        ResultCode.AVP_NOT_ALLOWED,
        Avp.enum(CcAvp.REQUESTED_ACTION, 0),
    ),
    (
        "top-level RSU beside MSCC (strict)",
        lambda: with_body(mscc(1, requested=rsu()), rsu(*units(time_s=1))),
        STRICT,
        ResultCode.AVP_NOT_ALLOWED,
        rsu(*units(time_s=1)),
    ),
]


@pytest.mark.parametrize(
    ("build", "profile", "result_code", "failed_avp"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_malformed_ccr_gets_its_result_code_and_failed_avp(
    build: Callable[[], list[Avp]], profile: Profile, result_code: ResultCode, failed_avp: Avp
) -> None:
    request = message(build())
    with pytest.raises(DiameterError) as caught:
        parse_ccr(request, profile)
    error = caught.value
    assert error.result_code == result_code, error.error_message
    assert [a.encode() for a in error.failed_avps] == [failed_avp.encode()]
    assert error.request is request
    assert error.error_message


def test_error_answer_carries_failed_avp_and_echoes_the_request() -> None:
    request = message(ccr_avps(1, 0, subscriptions=[subscription(9, "123")]))
    with pytest.raises(DiameterError) as caught:
        parse_ccr(request)
    answer = answer_for_error(request, caught.value, origin_host=OUR_HOST, origin_realm=OUR_REALM)
    decoded = decode_message(answer.encode())
    assert decoded.result_code == ResultCode.INVALID_AVP_VALUE
    assert decoded.session_id == request.session_id
    assert not decoded.is_error
    failed = decoded.find(AvpCode.FAILED_AVP)
    assert failed is not None
    assert [a.encode() for a in failed.children()] == [subscription(9, "123").encode()]


def test_missing_avps_are_reported_in_abnf_order() -> None:
    avps = without(without(ccr_avps(1, 0), CcAvp.CC_REQUEST_NUMBER), AvpCode.ORIGIN_HOST)
    with pytest.raises(DiameterError) as caught:
        parse_ccr(message(avps))
    assert caught.value.failed_avps[0].code == AvpCode.ORIGIN_HOST


def test_undecodable_grouped_content_is_an_error_with_the_grouped_around_it() -> None:
    broken = Avp(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL, M, 0, b"\x00\x00\x01\xb0\x40\x00\x00")
    request: Message = message(ccr_avps(2, 1, body=[broken]))
    with pytest.raises(DiameterError) as caught:
        parse_ccr(request)
    assert caught.value.result_code == ResultCode.INVALID_AVP_LENGTH
    assert caught.value.failed_avps[0].code == CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL
