"""CCA building: what the charging service decided (:class:`CreditControlAnswer`) → a Message.

The answer skeleton (Session-Id first, Result-Code, Origin-Host/Realm, Proxy-Info echo, the
header echo rules) comes from :func:`diameter_apps.answers.answer_to`; this module adds the
credit-control AVPs (RFC 4006 §3.2 CCA ABNF, 3GPP TS 32.299 §6.4.3):

    Auth-Application-Id, CC-Request-Type, CC-Request-Number (echoed: DESIGN C1),
    [CC-Session-Failover], [Granted-Service-Unit] (single-service form),
    *[Multiple-Services-Credit-Control], [Cost-Information], [Final-Unit-Indication]
    (single-service form), [Check-Balance-Result], [Credit-Control-Failure-Handling],
    [Direct-Debiting-Failure-Handling], [Validity-Time] (single-service form),
    [Low-Balance-Indication], [Remaining-Balance]

Money is in micro-units and goes on the wire as Unit-Value { Value-Digits, Exponent } with
Exponent between -6 and 0 (trailing zeros folded into the exponent: 1 500 000 µ → 15 × 10⁻¹).
Errors are not answered here: raise a DiameterError and use ``answers.answer_for_error``.
"""

from __future__ import annotations

import functools

import msgspec

from diameter_apps.answers import answer_to
from diameter_apps.codec import Avp, Message
from diameter_apps.codes import VENDOR_3GPP, ApplicationId, AvpCode, ResultCode
from diameter_apps.credit_control.codes import (
    CcAvp,
    CcRequestType,
    CcSessionFailover,
    CheckBalanceResult,
    CreditControlFailureHandling,
    DirectDebitingFailureHandling,
    FinalUnitAction,
    GppAvp,
    LowBalanceIndication,
    RedirectAddressType,
)
from diameter_apps.credit_control.request import CreditControlRequest, Money

_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
_I64_MAX = 0x7FFF_FFFF_FFFF_FFFF


def _check_range(name: str, value: int | None, top: int) -> None:
    if value is not None and not 0 <= value <= top:
        raise ValueError(f"{name} {value} is outside 0..{top}")


class GrantedUnits(msgspec.Struct, frozen=True, kw_only=True):
    """The Granted-Service-Unit, in the unit(s) the service is rated in (DESIGN C3)."""

    time_s: int | None = None
    total_octets: int | None = None
    input_octets: int | None = None
    output_octets: int | None = None
    service_specific_units: int | None = None
    money: Money | None = None

    def __post_init__(self) -> None:
        # Built for every grant: one inline pass over the values, the names only on a fault.
        time_s, top = self.time_s, _U64_MAX
        if time_s is not None and not 0 <= time_s <= _U32_MAX:
            self._range_error()
        for value in (
            self.total_octets,
            self.input_octets,
            self.output_octets,
            self.service_specific_units,
        ):
            if value is not None and not 0 <= value <= top:
                self._range_error()
        money = self.money
        if money is not None and not 0 <= money.micros <= _I64_MAX:
            self._range_error()

    def _range_error(self) -> None:
        _check_range("CC-Time", self.time_s, _U32_MAX)
        for name, value in (
            ("CC-Total-Octets", self.total_octets),
            ("CC-Input-Octets", self.input_octets),
            ("CC-Output-Octets", self.output_octets),
            ("CC-Service-Specific-Units", self.service_specific_units),
        ):
            _check_range(name, value, _U64_MAX)
        if self.money is not None:
            _check_range("CC-Money", self.money.micros, _I64_MAX)


class RedirectServer(msgspec.Struct, frozen=True):
    """Where REDIRECT sends the subscriber (typically the tenant's top-up page)."""

    address: str
    address_type: RedirectAddressType = RedirectAddressType.URL


class FinalUnitIndication(msgspec.Struct, frozen=True, kw_only=True):
    """What the gateway does once the last grant is used up (RFC 4006 §5.6, DESIGN C5)."""

    action: FinalUnitAction
    redirect_server: RedirectServer | None = None
    filter_ids: tuple[str, ...] = ()
    restriction_filter_rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.action is FinalUnitAction.REDIRECT and self.redirect_server is None:
            raise ValueError("a REDIRECT final unit action needs a Redirect-Server")
        if (
            self.action is FinalUnitAction.RESTRICT_ACCESS
            and not self.filter_ids
            and not self.restriction_filter_rules
        ):
            raise ValueError("RESTRICT_ACCESS needs a Filter-Id or a Restriction-Filter-Rule")


class ServiceAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to one MSCC (or, single-service form, to the request's one service).

    ``rating_group`` / ``service_identifier`` must echo the request's MSCC. ``granted`` None
    means no grant (a report-only MSCC, or a refusal: set ``result_code`` then, e.g. 4012).
    ``tariff_time_change_s`` (Unix seconds) tells the client to split its usage report there;
    set it when a tariff boundary falls inside the grant's validity.
    """

    result_code: int = ResultCode.SUCCESS
    rating_group: int | None = None
    service_identifier: int | None = None
    granted: GrantedUnits | None = None
    validity_time_s: int | None = None
    time_quota_threshold_s: int | None = None
    volume_quota_threshold_octets: int | None = None
    unit_quota_threshold: int | None = None
    quota_holding_time_s: int | None = None
    final_unit_indication: FinalUnitIndication | None = None
    tariff_time_change_s: int | None = None

    def __post_init__(self) -> None:
        # Built for every MSCC of every answer: one inline pass over the values, the names
        # only when one is out of range.
        top = _U32_MAX
        for value in (
            self.validity_time_s,
            self.time_quota_threshold_s,
            self.volume_quota_threshold_octets,
            self.unit_quota_threshold,
            self.quota_holding_time_s,
            self.rating_group,
            self.service_identifier,
            self.result_code,
        ):
            if value is not None and not 0 <= value <= top:
                self._range_error()

    def _range_error(self) -> None:
        for name, value in (
            ("Validity-Time", self.validity_time_s),
            ("Time-Quota-Threshold", self.time_quota_threshold_s),
            ("Volume-Quota-Threshold", self.volume_quota_threshold_octets),
            ("Unit-Quota-Threshold", self.unit_quota_threshold),
            ("Quota-Holding-Time", self.quota_holding_time_s),
            ("Rating-Group", self.rating_group),
            ("Service-Identifier", self.service_identifier),
            ("Result-Code", self.result_code),
        ):
            _check_range(name, value, _U32_MAX)


class CostInformation(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a PRICE_ENQUIRY (and optionally the cost of a session), RFC 4006 §8.7."""

    money_micros: int
    currency_code: int
    """ISO 4217 numeric (978 EUR): see :func:`currency_code`."""
    cost_unit: str | None = None


class CreditControlAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the charging service decided for one CCR; :func:`build_cca` encodes it.

    ``services`` answer the request's services one for one (same order is customary but not
    required). ``cc_session_failover`` defaults to FAILOVER_SUPPORTED: session state lives in
    Redis, so any OCS process can continue the session (DESIGN C7).
    """

    result_code: int = ResultCode.SUCCESS
    services: tuple[ServiceAnswer, ...] = ()
    cc_session_failover: CcSessionFailover | None = CcSessionFailover.FAILOVER_SUPPORTED
    credit_control_failure_handling: CreditControlFailureHandling | None = None
    direct_debiting_failure_handling: DirectDebitingFailureHandling | None = None
    check_balance_result: CheckBalanceResult | None = None
    cost_information: CostInformation | None = None
    low_balance: bool | None = None
    """3GPP Low-Balance-Indication: YES when True, NOT_APPLICABLE when False, absent if None."""
    remaining_balance: Money | None = None
    """3GPP Remaining-Balance; its ``currency_code`` is required on the wire."""

    def __post_init__(self) -> None:
        # Built (and re-checked by msgspec.structs.replace) for every answer: inline.
        if not 0 <= self.result_code <= _U32_MAX:
            _check_range("Result-Code", self.result_code, _U32_MAX)
        if self.remaining_balance is not None and self.remaining_balance.currency_code is None:
            raise ValueError("Remaining-Balance needs a currency code")


# --- encoding --------------------------------------------------------------------------------


def unit_value(micros: int) -> Avp:
    """Unit-Value { Value-Digits, Exponent } for an amount in micro-units, normalised."""
    digits = micros
    exponent = -6
    if digits == 0:
        exponent = 0
    while exponent < 0 and digits % 10 == 0:
        digits //= 10
        exponent += 1
    return Avp.grouped(
        CcAvp.UNIT_VALUE,
        [Avp.i64(CcAvp.VALUE_DIGITS, digits), Avp.i32(CcAvp.EXPONENT, exponent)],
    )


def _money_children(money: Money) -> list[Avp]:
    children = [unit_value(money.micros)]
    if money.currency_code is not None:
        children.append(Avp.u32(CcAvp.CURRENCY_CODE, money.currency_code))
    return children


def _units_avp(code: int, units: GrantedUnits, tariff_time_change_s: int | None) -> Avp:
    children: list[Avp] = []
    if tariff_time_change_s is not None:
        children.append(Avp.time(CcAvp.TARIFF_TIME_CHANGE, tariff_time_change_s))
    if units.time_s is not None:
        children.append(Avp.u32(CcAvp.CC_TIME, units.time_s))
    if units.money is not None:
        children.append(Avp.grouped(CcAvp.CC_MONEY, _money_children(units.money)))
    if units.total_octets is not None:
        children.append(Avp.u64(CcAvp.CC_TOTAL_OCTETS, units.total_octets))
    if units.input_octets is not None:
        children.append(Avp.u64(CcAvp.CC_INPUT_OCTETS, units.input_octets))
    if units.output_octets is not None:
        children.append(Avp.u64(CcAvp.CC_OUTPUT_OCTETS, units.output_octets))
    if units.service_specific_units is not None:
        children.append(Avp.u64(CcAvp.CC_SERVICE_SPECIFIC_UNITS, units.service_specific_units))
    return Avp.grouped(code, children)


def final_unit_indication_avp(fui: FinalUnitIndication) -> Avp:
    children = [Avp.i32(CcAvp.FINAL_UNIT_ACTION, fui.action)]
    children.extend(
        Avp.octets(CcAvp.RESTRICTION_FILTER_RULE, rule.encode())
        for rule in fui.restriction_filter_rules
    )
    children.extend(Avp.utf8(CcAvp.FILTER_ID, name) for name in fui.filter_ids)
    if fui.redirect_server is not None:
        children.append(
            Avp.grouped(
                CcAvp.REDIRECT_SERVER,
                [
                    Avp.i32(CcAvp.REDIRECT_ADDRESS_TYPE, fui.redirect_server.address_type),
                    Avp.utf8(CcAvp.REDIRECT_SERVER_ADDRESS, fui.redirect_server.address),
                ],
            )
        )
    return Avp.grouped(CcAvp.FINAL_UNIT_INDICATION, children)


def _mscc_avp(service: ServiceAnswer) -> Avp:
    children: list[Avp] = []
    if service.granted is not None:
        children.append(
            _units_avp(CcAvp.GRANTED_SERVICE_UNIT, service.granted, service.tariff_time_change_s)
        )
    if service.service_identifier is not None:
        children.append(Avp.u32(CcAvp.SERVICE_IDENTIFIER, service.service_identifier))
    if service.rating_group is not None:
        children.append(Avp.u32(CcAvp.RATING_GROUP, service.rating_group))
    if service.validity_time_s is not None:
        children.append(Avp.u32(CcAvp.VALIDITY_TIME, service.validity_time_s))
    children.append(Avp.u32(AvpCode.RESULT_CODE, service.result_code))
    if service.final_unit_indication is not None:
        children.append(final_unit_indication_avp(service.final_unit_indication))
    if service.time_quota_threshold_s is not None:
        children.append(
            Avp.u32(GppAvp.TIME_QUOTA_THRESHOLD, service.time_quota_threshold_s, VENDOR_3GPP)
        )
    if service.volume_quota_threshold_octets is not None:
        children.append(
            Avp.u32(
                GppAvp.VOLUME_QUOTA_THRESHOLD, service.volume_quota_threshold_octets, VENDOR_3GPP
            )
        )
    if service.unit_quota_threshold is not None:
        children.append(
            Avp.u32(GppAvp.UNIT_QUOTA_THRESHOLD, service.unit_quota_threshold, VENDOR_3GPP, m=False)
        )
    if service.quota_holding_time_s is not None:
        children.append(
            Avp.u32(GppAvp.QUOTA_HOLDING_TIME, service.quota_holding_time_s, VENDOR_3GPP)
        )
    return Avp.grouped(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL, children)


class MsccAvpCache:
    """Encoded MSCC AVPs by the :class:`ServiceAnswer` they encode.

    In steady state most answers grant the same quota with the same validity and thresholds,
    so the same few MSCCs are built again and again; an AVP is a value (its wire form is kept),
    so one built MSCC can go into any number of answers. Bounded: emptied when full.
    """

    def __init__(self, entries_max: int = 4096) -> None:
        if entries_max <= 0:
            raise ValueError("entries_max must be positive")
        self.entries_max = entries_max
        self._avps: dict[ServiceAnswer, Avp] = {}

    def __len__(self) -> int:
        return len(self._avps)

    def avp(self, service: ServiceAnswer) -> Avp:
        found = self._avps.get(service)
        if found is None:
            if len(self._avps) >= self.entries_max:
                self._avps.clear()
            found = self._avps[service] = _mscc_avp(service)
        return found


_CC_REQUEST_TYPE = int(CcAvp.CC_REQUEST_TYPE)
_CC_REQUEST_NUMBER = int(CcAvp.CC_REQUEST_NUMBER)
_CC_SESSION_FAILOVER = int(CcAvp.CC_SESSION_FAILOVER)
_CREDIT_CONTROL_FAILURE_HANDLING = int(CcAvp.CREDIT_CONTROL_FAILURE_HANDLING)
_DIRECT_DEBITING_FAILURE_HANDLING = int(CcAvp.DIRECT_DEBITING_FAILURE_HANDLING)
_CHECK_BALANCE_RESULT = int(CcAvp.CHECK_BALANCE_RESULT)
_SUCCESS = int(ResultCode.SUCCESS)

# The AVPs that take one of a few values in every answer, built once: an AVP is a value (see
# Avp), so answers share them, as answers.answer_to shares Origin-Host and Result-Code.
_AUTH_APPLICATION_CREDIT_CONTROL = Avp.u32(
    int(AvpCode.AUTH_APPLICATION_ID), int(ApplicationId.CREDIT_CONTROL)
)
_ENUMERATED: dict[tuple[int, int], Avp] = {
    (code, int(value)): Avp.i32(code, int(value))
    for code, values in (
        (_CC_REQUEST_TYPE, CcRequestType),
        (_CC_SESSION_FAILOVER, CcSessionFailover),
        (_CREDIT_CONTROL_FAILURE_HANDLING, CreditControlFailureHandling),
        (_DIRECT_DEBITING_FAILURE_HANDLING, DirectDebitingFailureHandling),
        (_CHECK_BALANCE_RESULT, CheckBalanceResult),
    )
    for value in values
}


def _enumerated(code: int, value: int) -> Avp:
    """The Enumerated AVP ``code`` = ``value`` (a shared one for the usual values)."""
    avp = _ENUMERATED.get((code, value))
    return avp if avp is not None else Avp.i32(code, value)


def _request_identity(request: CreditControlRequest | Message) -> tuple[Message, Avp, Avp, bool]:
    """(message, CC-Request-Type AVP, CC-Request-Number AVP, request had MSCC)."""
    if isinstance(request, CreditControlRequest):
        return (
            request.message,
            _enumerated(_CC_REQUEST_TYPE, request.request_type),
            Avp.u32(_CC_REQUEST_NUMBER, request.request_number),
            request.has_mscc,
        )
    request_type = request.find(CcAvp.CC_REQUEST_TYPE)
    request_number = request.find(CcAvp.CC_REQUEST_NUMBER)
    if request_type is None or request_number is None:
        raise ValueError(
            "a CCA needs the request's CC-Request-Type and CC-Request-Number: "
            "answer a CCR without them with answers.answer_for_error"
        )
    has_mscc = request.find(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL) is not None
    return request, request_type, request_number, has_mscc


def build_cca(
    request: CreditControlRequest | Message,
    answer: CreditControlAnswer,
    *,
    origin_host: str,
    origin_realm: str,
    mscc_avps: MsccAvpCache | None = None,
) -> Message:
    """The CCA for ``request`` carrying ``answer`` (MSCCs from ``mscc_avps`` when given).

    When the request had MSCCs, each :class:`ServiceAnswer` becomes an MSCC with its own
    Result-Code. Otherwise the single-service form is used: the (at most one) service's GSU,
    Validity-Time and Final-Unit-Indication go at top level, and a non-2001 service
    Result-Code becomes the answer's Result-Code when ``answer.result_code`` is 2001.
    """
    message, request_type, request_number, has_mscc = _request_identity(request)
    result_code = answer.result_code
    avps = [_AUTH_APPLICATION_CREDIT_CONTROL, request_type, request_number]
    if answer.cc_session_failover is not None:
        avps.append(_enumerated(_CC_SESSION_FAILOVER, answer.cc_session_failover))
    single: ServiceAnswer | None = None
    if has_mscc:
        build = _mscc_avp if mscc_avps is None else mscc_avps.avp
        avps.extend([build(service) for service in answer.services])
    elif answer.services:
        if len(answer.services) > 1:
            raise ValueError("a request without MSCC is answered with at most one service")
        single = answer.services[0]
        if result_code == _SUCCESS:
            result_code = single.result_code
        if single.granted is not None:
            avps.append(
                _units_avp(CcAvp.GRANTED_SERVICE_UNIT, single.granted, single.tariff_time_change_s)
            )
    if answer.cost_information is not None:
        cost = answer.cost_information
        cost_children = [
            unit_value(cost.money_micros),
            Avp.u32(CcAvp.CURRENCY_CODE, cost.currency_code),
        ]
        if cost.cost_unit is not None:
            cost_children.append(Avp.utf8(CcAvp.COST_UNIT, cost.cost_unit))
        avps.append(Avp.grouped(CcAvp.COST_INFORMATION, cost_children))
    if single is not None and single.final_unit_indication is not None:
        avps.append(final_unit_indication_avp(single.final_unit_indication))
    if answer.check_balance_result is not None:
        avps.append(_enumerated(_CHECK_BALANCE_RESULT, answer.check_balance_result))
    if answer.credit_control_failure_handling is not None:
        avps.append(
            _enumerated(_CREDIT_CONTROL_FAILURE_HANDLING, answer.credit_control_failure_handling)
        )
    if answer.direct_debiting_failure_handling is not None:
        avps.append(
            _enumerated(_DIRECT_DEBITING_FAILURE_HANDLING, answer.direct_debiting_failure_handling)
        )
    if single is not None and single.validity_time_s is not None:
        avps.append(Avp.u32(CcAvp.VALIDITY_TIME, single.validity_time_s))
    if answer.low_balance is not None:
        indication = (
            LowBalanceIndication.YES
            if answer.low_balance
            else (LowBalanceIndication.NOT_APPLICABLE)
        )
        avps.append(Avp.i32(GppAvp.LOW_BALANCE_INDICATION, indication, VENDOR_3GPP, m=False))
    if answer.remaining_balance is not None:
        avps.append(
            Avp.grouped(
                GppAvp.REMAINING_BALANCE,
                _money_children(answer.remaining_balance),
                VENDOR_3GPP,
                m=False,
            )
        )
    return answer_to(
        message,
        origin_host=origin_host,
        origin_realm=origin_realm,
        result_code=result_code,
        avps=avps,
        error_bit=3000 <= result_code < 4000,
    )


@functools.lru_cache(maxsize=512)
def currency_code(alpha: str) -> int:
    """ISO 4217 numeric code of an alphabetic one ("EUR" → 978), for Currency-Code AVPs.

    From pycountry's ISO 4217 table, the same one the catalog loader checks a tenant's
    currency against, so every currency a catalog accepts has its code here.
    """
    # Imported on first use: pycountry pulls in importlib.metadata and with it ``socket``, which
    # merely importing this sans-IO package must not load (tests/diameter_apps/test_sans_io.py).
    import pycountry

    found = pycountry.currencies.get(alpha_3=alpha) if len(alpha) == 3 else None
    if found is None or found.alpha_3 != alpha.upper():
        raise ValueError(f"{alpha!r} is not an ISO 4217 currency code")
    return int(found.numeric)
