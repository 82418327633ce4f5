"""CCR parsing: a decoded Credit-Control-Request → :class:`CreditControlRequest`, or the
:class:`~diameter_apps.errors.DiameterError` that names its Result-Code and Failed-AVP.

On the hot path: one pass over the top-level AVPs and one over each Grouped AVP, no dictionary
lookups by name, enum conversions through prebuilt tables. The base stack's checking decoder
has already checked sizes, UTF-8 and M bits; everything here is still re-checked through the
typed getters, so a message decoded without checks gets the same errors.

Errors (RFC 6733 §7.5, RFC 4006 §3.1):

- a required AVP missing → 5005, Failed-AVP holding an AVP of that code with a minimal value;
- an AVP that may occur once occurring twice → 5009 with the second occurrence;
- a value out of range (unknown CC-Request-Type, Auth-Application-Id other than 4, unknown
  Subscription-Id-Type, empty Subscription-Id-Data, bad location) → 5004 with that AVP;
- a fault inside a Grouped AVP is reported with the Grouped AVP(s) around the offender
  (RFC 6733 §7.5: "the Failed-AVP MAY contain the grouped AVP"), e.g. MSCC { USU { CC-Time } }.

The lenient profile tolerates, and lists in ``deviations``: duplicated Origin-Host/Origin-Realm
(the first is used: Kamailio), Accounting-Record-Type/-Number in a CCR (Kamailio), an
Auth-Application-Id only inside Vendor-Specific-Application-Id, a CCR-EVENT without
Requested-Action (DIRECT_DEBITING assumed), Requested-Action on a session request (ignored),
top-level RSU/USU beside MSCCs (ignored). The strict profile refuses each of them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import TypeVar

from diameter_apps.codec import Avp, Message
from diameter_apps.codes import (
    AVP_FLAG_MANDATORY,
    AVP_FLAG_VENDOR,
    VENDOR_3GPP,
    ApplicationId,
    AvpCode,
)
from diameter_apps.credit_control.codes import (
    CcAvp,
    CcRequestType,
    CcSessionFailover,
    GppAvp,
    MultipleServicesIndicator,
    RequestedAction,
    ServiceDomain,
    SubscriptionIdType,
    TariffChangeUsage,
)
from diameter_apps.credit_control.errors import AvpNotAllowed
from diameter_apps.credit_control.location import (
    LocationError,
    check_mcc_mnc,
    decode_user_location,
)
from diameter_apps.credit_control.request import (
    CreditControlRequest,
    ImsInformation,
    Money,
    PsInformation,
    ServiceRequest,
    ServiceUnits,
    SmsInformation,
    SubscriptionId,
    UsedUnits,
    UserEquipment,
)
from diameter_apps.errors import (
    AvpOccursTooManyTimes,
    DiameterError,
    InvalidAvpValue,
    MissingAvp,
)
from diameter_apps.validation import Profile

_E = TypeVar("_E", bound=IntEnum)

# Fixed-size values the hot loops unpack inline; a wrong size falls back to the Avp getter,
# which raises 5014 with the AVP as Failed-AVP.
_u32 = struct.Struct(">I").unpack
_u64 = struct.Struct(">Q").unpack

# Plain ints for the hot path: reading an IntEnum member costs ~0.3 µs, a global ~0.02 µs.
_ACCOUNTING_RECORD_NUMBER = int(CcAvp.ACCOUNTING_RECORD_NUMBER)
_ACCOUNTING_RECORD_TYPE = int(CcAvp.ACCOUNTING_RECORD_TYPE)
_ACCT_MULTI_SESSION_ID = int(CcAvp.ACCT_MULTI_SESSION_ID)
_CALLED_STATION_ID = int(CcAvp.CALLED_STATION_ID)
_CC_CORRELATION_ID = int(CcAvp.CC_CORRELATION_ID)
_CC_INPUT_OCTETS = int(CcAvp.CC_INPUT_OCTETS)
_CC_MONEY = int(CcAvp.CC_MONEY)
_CC_OUTPUT_OCTETS = int(CcAvp.CC_OUTPUT_OCTETS)
_CC_REQUEST_NUMBER = int(CcAvp.CC_REQUEST_NUMBER)
_CC_REQUEST_TYPE = int(CcAvp.CC_REQUEST_TYPE)
_CC_SERVICE_SPECIFIC_UNITS = int(CcAvp.CC_SERVICE_SPECIFIC_UNITS)
_CC_SESSION_FAILOVER = int(CcAvp.CC_SESSION_FAILOVER)
_CC_SUB_SESSION_ID = int(CcAvp.CC_SUB_SESSION_ID)
_CC_TIME = int(CcAvp.CC_TIME)
_CC_TOTAL_OCTETS = int(CcAvp.CC_TOTAL_OCTETS)
_CURRENCY_CODE = int(CcAvp.CURRENCY_CODE)
_EVENT_TIMESTAMP = int(CcAvp.EVENT_TIMESTAMP)
_EXPONENT = int(CcAvp.EXPONENT)
_FINAL_UNIT_INDICATION = int(CcAvp.FINAL_UNIT_INDICATION)
_GRANTED_SERVICE_UNIT = int(CcAvp.GRANTED_SERVICE_UNIT)
_MULTIPLE_SERVICES_CREDIT_CONTROL = int(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL)
_MULTIPLE_SERVICES_INDICATOR = int(CcAvp.MULTIPLE_SERVICES_INDICATOR)
_RATING_GROUP = int(CcAvp.RATING_GROUP)
_REQUESTED_ACTION = int(CcAvp.REQUESTED_ACTION)
_REQUESTED_SERVICE_UNIT = int(CcAvp.REQUESTED_SERVICE_UNIT)
_SERVICE_CONTEXT_ID = int(CcAvp.SERVICE_CONTEXT_ID)
_SERVICE_IDENTIFIER = int(CcAvp.SERVICE_IDENTIFIER)
_SUBSCRIPTION_ID = int(CcAvp.SUBSCRIPTION_ID)
_SUBSCRIPTION_ID_DATA = int(CcAvp.SUBSCRIPTION_ID_DATA)
_SUBSCRIPTION_ID_TYPE = int(CcAvp.SUBSCRIPTION_ID_TYPE)
_TARIFF_CHANGE_USAGE = int(CcAvp.TARIFF_CHANGE_USAGE)
_TARIFF_TIME_CHANGE = int(CcAvp.TARIFF_TIME_CHANGE)
_TERMINATION_CAUSE = int(CcAvp.TERMINATION_CAUSE)
_UNIT_VALUE = int(CcAvp.UNIT_VALUE)
_USED_SERVICE_UNIT = int(CcAvp.USED_SERVICE_UNIT)
_USER_EQUIPMENT_INFO = int(CcAvp.USER_EQUIPMENT_INFO)
_USER_EQUIPMENT_INFO_TYPE = int(CcAvp.USER_EQUIPMENT_INFO_TYPE)
_USER_EQUIPMENT_INFO_VALUE = int(CcAvp.USER_EQUIPMENT_INFO_VALUE)
_USER_NAME = int(CcAvp.USER_NAME)
_VALIDITY_TIME = int(CcAvp.VALIDITY_TIME)
_VALUE_DIGITS = int(CcAvp.VALUE_DIGITS)
_ADDRESS_DATA = int(GppAvp.ADDRESS_DATA)
_CALLED_PARTY_ADDRESS = int(GppAvp.CALLED_PARTY_ADDRESS)
_CALLING_PARTY_ADDRESS = int(GppAvp.CALLING_PARTY_ADDRESS)
_CHARGING_CHARACTERISTICS = int(GppAvp.CHARGING_CHARACTERISTICS)
_IMS_CHARGING_IDENTIFIER = int(GppAvp.IMS_CHARGING_IDENTIFIER)
_IMS_INFORMATION = int(GppAvp.IMS_INFORMATION)
_IMS_VISITED_NETWORK_IDENTIFIER = int(GppAvp.IMS_VISITED_NETWORK_IDENTIFIER)
_ACCESS_NETWORK_INFORMATION = int(GppAvp.ACCESS_NETWORK_INFORMATION)
SMS_RECIPIENTS_MAX = 16  # recipients of one SMS event (each is a ledger leg: debit_many's limit)
_ACCESS_NETWORK_INFO_MAX = 4  # P-Access-Network-Info headers kept (UE's and the network's)
_PS_INFORMATION = int(GppAvp.PS_INFORMATION)
_RAT_TYPE = int(GppAvp.RAT_TYPE)
_CHARGING_ID = int(GppAvp.CHARGING_ID)
_RECIPIENT_ADDRESS = int(GppAvp.RECIPIENT_ADDRESS)
_RECIPIENT_INFO = int(GppAvp.RECIPIENT_INFO)
_REPORTING_REASON = int(GppAvp.REPORTING_REASON)
_REQUESTED_PARTY_ADDRESS = int(GppAvp.REQUESTED_PARTY_ADDRESS)
_ROLE_OF_NODE = int(GppAvp.ROLE_OF_NODE)
_SERVICE_INFORMATION = int(GppAvp.SERVICE_INFORMATION)
_SGSN_MCC_MNC = int(GppAvp.SGSN_MCC_MNC)
_SMS_INFORMATION = int(GppAvp.SMS_INFORMATION)
_TRIGGER = int(GppAvp.TRIGGER)
_TRIGGER_TYPE = int(GppAvp.TRIGGER_TYPE)
_USER_LOCATION_INFO = int(GppAvp.USER_LOCATION_INFO)
_EVENT_REQUEST = CcRequestType.EVENT
_INITIAL_REQUEST = CcRequestType.INITIAL
_CREDIT_CONTROL = int(ApplicationId.CREDIT_CONTROL)

_SESSION_ID = int(AvpCode.SESSION_ID)
_ORIGIN_HOST = int(AvpCode.ORIGIN_HOST)
_ORIGIN_REALM = int(AvpCode.ORIGIN_REALM)
_DESTINATION_REALM = int(AvpCode.DESTINATION_REALM)
_DESTINATION_HOST = int(AvpCode.DESTINATION_HOST)
_AUTH_APPLICATION_ID = int(AvpCode.AUTH_APPLICATION_ID)
_VSAI = int(AvpCode.VENDOR_SPECIFIC_APPLICATION_ID)
_ORIGIN_STATE_ID = int(AvpCode.ORIGIN_STATE_ID)
_RESULT_CODE = int(AvpCode.RESULT_CODE)

BASE_REQUIRED_AVPS: tuple[int, ...] = (
    _SESSION_ID,
    _ORIGIN_HOST,
    _ORIGIN_REALM,
    _DESTINATION_REALM,
    _AUTH_APPLICATION_ID,
    _SERVICE_CONTEXT_ID,
    _CC_REQUEST_TYPE,
    _CC_REQUEST_NUMBER,
)
"""The fixed ``< >`` / ``{ }`` AVPs of the RFC 4006 §3.1 CCR ABNF, in ABNF order."""

REQUIRED_AVPS: Mapping[CcRequestType, tuple[int, ...]] = {
    CcRequestType.INITIAL: BASE_REQUIRED_AVPS,
    CcRequestType.UPDATE: BASE_REQUIRED_AVPS,
    CcRequestType.TERMINATION: BASE_REQUIRED_AVPS,
    CcRequestType.EVENT: (*BASE_REQUIRED_AVPS, _REQUESTED_ACTION),
}
"""Required AVPs per CC-Request-Type: RFC 4006 §3.1, plus Requested-Action for an EVENT
(§8.41; the lenient profile assumes DIRECT_DEBITING when it is missing)."""
_REQUIRED_SETS = {codes: frozenset(codes) for codes in REQUIRED_AVPS.values()}

SINGLE_INSTANCE_AVPS: frozenset[int] = frozenset(
    {
        *BASE_REQUIRED_AVPS,
        _DESTINATION_HOST,
        _ORIGIN_STATE_ID,
        _USER_NAME,
        _CC_SUB_SESSION_ID,
        _ACCT_MULTI_SESSION_ID,
        _EVENT_TIMESTAMP,
        _SERVICE_IDENTIFIER,
        _TERMINATION_CAUSE,
        _REQUESTED_SERVICE_UNIT,
        _REQUESTED_ACTION,
        _MULTIPLE_SERVICES_INDICATOR,
        _CC_CORRELATION_ID,
        _USER_EQUIPMENT_INFO,
        _CC_SESSION_FAILOVER,
        _RATING_GROUP,
    }
)
"""Top-level vendor-0 AVPs of a CCR that may occur at most once (``[ ]`` in the ABNF)."""

_TOLERATED_DUPLICATES = frozenset({_ORIGIN_HOST, _ORIGIN_REALM})
_ACCOUNTING_AVPS = frozenset({_ACCOUNTING_RECORD_TYPE, _ACCOUNTING_RECORD_NUMBER})
_NO_UNITS = ServiceUnits()
"""The units of an empty RSU (shared: the Struct is frozen)."""

_MINIMAL_VALUES: Mapping[int, bytes] = {
    _AUTH_APPLICATION_ID: bytes(4),
    _CC_REQUEST_TYPE: bytes(4),
    _CC_REQUEST_NUMBER: bytes(4),
    _REQUESTED_ACTION: bytes(4),
    _SUBSCRIPTION_ID_TYPE: bytes(4),
    _USER_EQUIPMENT_INFO_TYPE: bytes(4),
    _VALUE_DIGITS: bytes(8),
    _UNIT_VALUE: b"",
}
"""RFC 6733 §7.5: a missing AVP is reported "with a minimal value": zeros of the type's size
for the fixed-size types, empty for strings and Grouped."""

_MICROS_MAX = 2**63 - 1
"""Money is int64 micro-units everywhere downstream (DESIGN §2.10)."""
_EXPONENT_LIMIT = 18
"""|Exponent| of a CC-Money Unit-Value we accept: beyond it the amount is nonsense (and
``10 ** exponent`` would be a cheap way to burn CPU)."""

SERVICE_DOMAINS: Mapping[str, ServiceDomain] = {str(int(d)): d for d in ServiceDomain}


def _table(enum: type[_E]) -> dict[int, _E]:
    return {int(member): member for member in enum}


_REQUEST_TYPES = _table(CcRequestType)
_SUBSCRIPTION_TYPES = _table(SubscriptionIdType)
_REQUESTED_ACTIONS = _table(RequestedAction)
_MSI = _table(MultipleServicesIndicator)
_FAILOVER = _table(CcSessionFailover)
_TARIFF_CHANGE_USAGES = _table(TariffChangeUsage)


def service_domain(service_context_id: str) -> ServiceDomain | None:
    """The domain of a Service-Context-Id, by the number before ``@`` (3GPP TS 32.299 §7.1.12:
    ``[[[[ext.]MNC.]MCC.]Release.]service-context@domain``), e.g.
    ``ext.01.001.8.32260@3gpp.org`` → IMS. None when unknown."""
    local = service_context_id.partition("@")[0]
    return SERVICE_DOMAINS.get(local.rpartition(".")[2])


# --- error helpers ---------------------------------------------------------------------------


def _missing(code: int, vendor: int = 0, where: str = "CCR") -> MissingAvp:
    flags = AVP_FLAG_MANDATORY | (AVP_FLAG_VENDOR if vendor else 0)
    avp = Avp(code, flags, vendor, _MINIMAL_VALUES.get(code, b""))
    return MissingAvp(f"{where} lacks required AVP {code}", failed_avps=(avp,))


def _duplicate(avp: Avp, where: str) -> AvpOccursTooManyTimes:
    return AvpOccursTooManyTimes(f"AVP {avp.code} may occur once in {where}", failed_avps=(avp,))


def _invalid(avp: Avp, why: str) -> InvalidAvpValue:
    return InvalidAvpValue(why, failed_avps=(avp,))


def _enum(table: Mapping[int, _E], avp: Avp, name: str) -> _E:
    value = avp.as_i32()
    member = table.get(value)
    if member is None:
        raise _invalid(avp, f"{name} {value} is not a known value")
    return member


def _wrap(parent: Avp, child: Avp) -> Avp:
    """``parent`` holding only ``child``: the Failed-AVP form of a fault inside a Grouped AVP."""
    wrapped = Avp(parent.code, parent.flags, parent.vendor, child.encode(), parent.depth)
    wrapped._children = [child]
    return wrapped


def _nest(error: DiameterError, parent: Avp) -> DiameterError:
    error.failed_avps = tuple(
        failed if failed is parent else _wrap(parent, failed) for failed in error.failed_avps
    )
    return error


# --- units -----------------------------------------------------------------------------------


def _money(avp: Avp) -> Money:
    """CC-Money { Unit-Value { Value-Digits [Exponent] } [Currency-Code] } → micro-units."""
    try:
        unit_value: Avp | None = None
        currency: int | None = None
        for child in avp.children():
            if child.vendor:
                continue
            if child.code == _UNIT_VALUE:
                if unit_value is not None:
                    raise _duplicate(child, "CC-Money")
                unit_value = child
            elif child.code == _CURRENCY_CODE:
                if currency is not None:
                    raise _duplicate(child, "CC-Money")
                currency = child.as_u32()
        if unit_value is None:
            raise _missing(_UNIT_VALUE, where="CC-Money")
        micros = _unit_value_micros(unit_value)
    except DiameterError as error:
        raise _nest(error, avp) from None
    return Money(micros, currency)


def _unit_value_micros(avp: Avp) -> int:
    try:
        digits_avp: Avp | None = None
        exponent_avp: Avp | None = None
        for child in avp.children():
            if child.vendor:
                continue
            if child.code == _VALUE_DIGITS:
                if digits_avp is not None:
                    raise _duplicate(child, "Unit-Value")
                digits_avp = child
            elif child.code == _EXPONENT:
                if exponent_avp is not None:
                    raise _duplicate(child, "Unit-Value")
                exponent_avp = child
        if digits_avp is None:
            raise _missing(_VALUE_DIGITS, where="Unit-Value")
        digits = digits_avp.as_i64()
        if digits < 0:
            raise _invalid(digits_avp, "a negative amount of money")
        exponent = 0 if exponent_avp is None else exponent_avp.as_i32()
        if exponent_avp is not None and not -_EXPONENT_LIMIT <= exponent <= _EXPONENT_LIMIT:
            raise _invalid(exponent_avp, f"Exponent {exponent} is out of range")
        shift = exponent + 6
        if shift >= 0:
            micros: int = digits * 10**shift
            if micros > _MICROS_MAX:
                raise _invalid(digits_avp, "an amount beyond 2**63 micro-units")
            return micros
        scale: int = 10 ** (-shift)
        if digits % scale:
            assert exponent_avp is not None
            raise _invalid(exponent_avp, "an amount finer than a micro-unit")
        return digits // scale
    except DiameterError as error:
        raise _nest(error, avp) from None


def _units(avp: Avp, where: str) -> tuple[ServiceUnits, TariffChangeUsage | None, int | None]:
    """The units of an RSU/USU, plus (USU only) Tariff-Change-Usage and 3GPP Reporting-Reason.

    Each unit AVP may occur once (5009): checked by finding its variable already set, which
    is cheaper than a set of seen codes.
    """
    time_s = total = up = down = specific = None
    money: Money | None = None
    tariff_change: TariffChangeUsage | None = None
    reason: int | None = None
    children = avp.children()
    if not children:
        return _NO_UNITS, None, None
    try:
        for child in children:
            code = child.code
            if child.vendor:
                if code == _REPORTING_REASON and child.vendor == VENDOR_3GPP:
                    if reason is not None:
                        raise _duplicate(child, where)
                    reason = child.as_i32()
                continue
            if code == _CC_TOTAL_OCTETS:
                if total is not None:
                    raise _duplicate(child, where)
                data = child.data
                total = _u64(data)[0] if len(data) == 8 else child.as_u64()
            elif code == _CC_INPUT_OCTETS:
                if up is not None:
                    raise _duplicate(child, where)
                data = child.data
                up = _u64(data)[0] if len(data) == 8 else child.as_u64()
            elif code == _CC_OUTPUT_OCTETS:
                if down is not None:
                    raise _duplicate(child, where)
                data = child.data
                down = _u64(data)[0] if len(data) == 8 else child.as_u64()
            elif code == _CC_TIME:
                if time_s is not None:
                    raise _duplicate(child, where)
                data = child.data
                time_s = _u32(data)[0] if len(data) == 4 else child.as_u32()
            elif code == _CC_SERVICE_SPECIFIC_UNITS:
                if specific is not None:
                    raise _duplicate(child, where)
                specific = child.as_u64()
            elif code == _CC_MONEY:
                if money is not None:
                    raise _duplicate(child, where)
                money = _money(child)
            elif code == _TARIFF_CHANGE_USAGE:
                if tariff_change is not None:
                    raise _duplicate(child, where)
                tariff_change = _enum(_TARIFF_CHANGE_USAGES, child, "Tariff-Change-Usage")
    except DiameterError as error:
        raise _nest(error, avp) from None
    units = ServiceUnits(time_s, total, up, down, specific, money)
    return units, tariff_change, reason


def _used(avp: Avp) -> UsedUnits:
    units, tariff_change, reason = _units(avp, "Used-Service-Unit")
    return UsedUnits(units, tariff_change, reason)


def _mscc(avp: Avp) -> ServiceRequest:
    rating_group: int | None = None
    service_id: int | None = None
    requested: ServiceUnits | None = None
    used: list[UsedUnits] = []
    reason: int | None = None
    triggers: tuple[int, ...] | None = None
    try:
        for child in avp.children():
            code = child.code
            if child.vendor:
                if child.vendor != VENDOR_3GPP:
                    continue
                if code == _REPORTING_REASON:
                    if reason is not None:
                        raise _duplicate(child, "Multiple-Services-Credit-Control")
                    reason = child.as_i32()
                elif code == _TRIGGER:
                    if triggers is not None:
                        raise _duplicate(child, "Multiple-Services-Credit-Control")
                    triggers = tuple(
                        [t.as_i32() for t in child.children() if t.code == _TRIGGER_TYPE]
                    )
                continue
            if code == _USED_SERVICE_UNIT:
                used.append(_used(child))
            elif code == _RATING_GROUP:
                if rating_group is not None:
                    raise _duplicate(child, "Multiple-Services-Credit-Control")
                data = child.data
                rating_group = _u32(data)[0] if len(data) == 4 else child.as_u32()
            elif code == _REQUESTED_SERVICE_UNIT:
                if requested is not None:
                    raise _duplicate(child, "Multiple-Services-Credit-Control")
                requested = _units(child, "Requested-Service-Unit")[0]
            elif code == _SERVICE_IDENTIFIER and service_id is None:
                # ``*[ Service-Identifier ]`` (RFC 4006 §8.16): the first one names the service.
                service_id = child.as_u32()
    except DiameterError as error:
        raise _nest(error, avp) from None
    return ServiceRequest(
        rating_group, service_id, requested, tuple(used), reason, triggers or (), True
    )


# --- identities and 3GPP information ---------------------------------------------------------


def _subscription_id(avp: Avp) -> SubscriptionId:
    type_avp: Avp | None = None
    data_avp: Avp | None = None
    try:
        for child in avp.children():
            if child.vendor:
                continue
            if child.code == _SUBSCRIPTION_ID_TYPE:
                if type_avp is not None:
                    raise _duplicate(child, "Subscription-Id")
                type_avp = child
            elif child.code == _SUBSCRIPTION_ID_DATA:
                if data_avp is not None:
                    raise _duplicate(child, "Subscription-Id")
                data_avp = child
        if type_avp is None:
            raise _missing(_SUBSCRIPTION_ID_TYPE, where="Subscription-Id")
        if data_avp is None:
            raise _missing(_SUBSCRIPTION_ID_DATA, where="Subscription-Id")
        type_value = type_avp.as_i32()
        data = data_avp.as_str()
    except DiameterError as error:
        raise _nest(error, avp) from None
    sid_type = _SUBSCRIPTION_TYPES.get(type_value)
    if sid_type is None:
        raise _invalid(avp, f"Subscription-Id-Type {type_value} is not a known type")
    if not data.strip():
        raise _invalid(avp, "Subscription-Id-Data is empty")
    return SubscriptionId(sid_type, data)


def _user_equipment(avp: Avp) -> UserEquipment:
    try:
        type_avp = avp.find(_USER_EQUIPMENT_INFO_TYPE)
        if type_avp is None:
            raise _missing(_USER_EQUIPMENT_INFO_TYPE, where="User-Equipment-Info")
        value_avp = avp.find(_USER_EQUIPMENT_INFO_VALUE)
        if value_avp is None:
            raise _missing(_USER_EQUIPMENT_INFO_VALUE, where="User-Equipment-Info")
        return UserEquipment(type_avp.as_i32(), value_avp.as_bytes())
    except DiameterError as error:
        raise _nest(error, avp) from None


def _ps_information(avp: Avp) -> PsInformation:
    mcc_mnc = location = apn = rat = characteristics = charging_id = None
    try:
        for child in avp.children():
            code = child.code
            if child.vendor == VENDOR_3GPP:
                if code == _SGSN_MCC_MNC and mcc_mnc is None:
                    try:
                        mcc_mnc = check_mcc_mnc(child.as_str())
                    except LocationError as error:
                        raise _invalid(child, str(error)) from None
                elif code == _USER_LOCATION_INFO and location is None:
                    try:
                        location = decode_user_location(child.data)
                    except LocationError as error:
                        raise _invalid(child, str(error)) from None
                elif code == _RAT_TYPE and rat is None:
                    if len(child.data) != 1:
                        raise _invalid(child, "3GPP-RAT-Type is one octet")
                    rat = child.data[0]
                elif code == _CHARGING_CHARACTERISTICS and characteristics is None:
                    characteristics = child.as_str()
                elif code == _CHARGING_ID and charging_id is None:
                    # OctetString of the bearer's 32-bit id (TS 29.061): shown as the number
                    # the PGW's offline CDRs print; another length as hex.
                    raw = child.as_bytes()
                    charging_id = str(int.from_bytes(raw, "big")) if len(raw) == 4 else raw.hex()
            elif child.vendor == 0 and code == _CALLED_STATION_ID and apn is None:
                apn = child.as_str()
    except DiameterError as error:
        raise _nest(error, avp) from None
    return PsInformation(mcc_mnc, location, apn, rat, characteristics, charging_id)


def _ims_information(avp: Avp) -> ImsInformation:
    role = calling = called = requested = icid = visited = None
    access: list[str] = []
    try:
        for child in avp.children():
            if child.vendor != VENDOR_3GPP:
                continue
            code = child.code
            if code == _ROLE_OF_NODE and role is None:
                role = child.as_i32()
            elif code == _CALLING_PARTY_ADDRESS and calling is None:
                calling = child.as_str()
            elif code == _CALLED_PARTY_ADDRESS and called is None:
                called = child.as_str()
            elif code == _REQUESTED_PARTY_ADDRESS and requested is None:
                requested = child.as_str()
            elif code == _IMS_CHARGING_IDENTIFIER and icid is None:
                icid = child.as_str()
            elif code == _IMS_VISITED_NETWORK_IDENTIFIER and visited is None:
                # OctetString: read leniently, a stray byte must not cost the whole request.
                visited = child.data.decode("utf-8", "replace")
            elif code == _ACCESS_NETWORK_INFORMATION and len(access) < _ACCESS_NETWORK_INFO_MAX:
                access.append(child.data.decode("utf-8", "replace"))
    except DiameterError as error:
        raise _nest(error, avp) from None
    return ImsInformation(
        role_of_node=role,
        calling_party_address=calling,
        called_party_address=called,
        requested_party_address=requested,
        ims_charging_identifier=icid,
        visited_network_identifier=visited,
        access_network_info=tuple(access),
    )


def _first_address(recipient_addresses: Iterable[Avp]) -> str | None:
    for address in recipient_addresses:
        data = address.find(_ADDRESS_DATA, VENDOR_3GPP)
        if data is not None:
            return data.as_str()
    return None


def _sms_information(avp: Avp) -> SmsInformation:
    """Recipient-Info { Recipient-Address { Address-Data } } per recipient (TS 32.299 Rel-8+),
    or Recipient-Address directly in SMS-Information (earlier drafts some SMSCs still send).
    More than ``SMS_RECIPIENTS_MAX`` recipients is 5008 on the first one beyond."""
    try:
        recipients: list[str] = []
        for child in avp.children():
            if child.vendor != VENDOR_3GPP:
                continue
            if child.code == _RECIPIENT_INFO:
                recipient = _first_address(child.find_all(_RECIPIENT_ADDRESS, VENDOR_3GPP))
            elif child.code == _RECIPIENT_ADDRESS:
                recipient = _first_address((child,))
            else:
                continue
            if recipient is None:
                continue
            if len(recipients) == SMS_RECIPIENTS_MAX:
                raise AvpOccursTooManyTimes(
                    f"more than {SMS_RECIPIENTS_MAX} SMS recipients", failed_avps=(child,)
                )
            recipients.append(recipient)
    except DiameterError as error:
        raise _nest(error, avp) from None
    return SmsInformation(recipient_addresses=tuple(recipients))


def _service_information(
    avp: Avp,
) -> tuple[PsInformation | None, ImsInformation | None, SmsInformation | None]:
    ps = ims = sms = None
    try:
        for child in avp.children():
            if child.vendor != VENDOR_3GPP:
                continue
            if child.code == _PS_INFORMATION and ps is None:
                ps = _ps_information(child)
            elif child.code == _IMS_INFORMATION and ims is None:
                ims = _ims_information(child)
            elif child.code == _SMS_INFORMATION and sms is None:
                sms = _sms_information(child)
    except DiameterError as error:
        raise _nest(error, avp) from None
    return ps, ims, sms


# --- the request -----------------------------------------------------------------------------


def parse_ccr(message: Message, profile: Profile = Profile.LENIENT) -> CreditControlRequest:
    """Parse and check a decoded CCR; raises a DiameterError (``request`` set) on any fault."""
    try:
        return _parse(message, profile is Profile.STRICT)
    except DiameterError as error:
        if error.request is None:
            error.request = message
        raise


def _parse(message: Message, strict: bool) -> CreditControlRequest:
    once: dict[int, Avp] = {}
    subscriptions: list[Avp] = []
    msccs: list[Avp] = []
    used_top: list[Avp] = []
    service_information: Avp | None = None
    vsai: Avp | None = None
    deviations: list[str] = []
    accounting_seen = False
    for avp in message.avps:
        code = avp.code
        if avp.vendor:
            if code == _SERVICE_INFORMATION and avp.vendor == VENDOR_3GPP:
                if service_information is not None:
                    raise _duplicate(avp, "CCR")
                service_information = avp
            continue
        if code in SINGLE_INSTANCE_AVPS:
            if code in once:
                if strict or code not in _TOLERATED_DUPLICATES:
                    raise _duplicate(avp, "CCR")
                deviations.append(f"AVP {code} occurs more than once; the first is used")
                continue
            once[code] = avp
        elif code == _MULTIPLE_SERVICES_CREDIT_CONTROL:
            msccs.append(avp)
        elif code == _SUBSCRIPTION_ID:
            subscriptions.append(avp)
        elif code == _USED_SERVICE_UNIT:
            used_top.append(avp)
        elif code in _ACCOUNTING_AVPS:
            if strict:
                raise AvpNotAllowed("accounting AVPs do not belong in a CCR", failed_avps=(avp,))
            if not accounting_seen:
                accounting_seen = True
                deviations.append("Accounting-Record-* AVPs in a CCR are ignored")
        elif code == _VSAI and vsai is None:
            vsai = avp

    # Required AVPs: CC-Request-Type first decides the table, then ABNF order.
    type_avp = once.get(_CC_REQUEST_TYPE)
    request_type = None if type_avp is None else _enum(_REQUEST_TYPES, type_avp, "CC-Request-Type")
    required = REQUIRED_AVPS[request_type or _INITIAL_REQUEST]
    # Fast path (one C-level set comparison) for the usual request that has them all.
    for code in () if once.keys() >= _REQUIRED_SETS[required] else required:
        if code in once:
            continue
        if code == _AUTH_APPLICATION_ID and not strict and _vsai_is_credit_control(vsai):
            deviations.append("Auth-Application-Id only in Vendor-Specific-Application-Id")
            continue
        if code == _REQUESTED_ACTION and not strict:
            deviations.append("CCR-EVENT without Requested-Action: DIRECT_DEBITING assumed")
            continue
        raise _missing(code)
    assert request_type is not None  # CC-Request-Type is in every row of REQUIRED_AVPS

    auth_avp = once.get(_AUTH_APPLICATION_ID)
    auth_application_id = _CREDIT_CONTROL
    if auth_avp is not None:
        auth_application_id = auth_avp.as_u32()
        if auth_application_id != _CREDIT_CONTROL:
            raise _invalid(
                auth_avp, f"Auth-Application-Id {auth_application_id} is not credit control (4)"
            )

    requested_action: RequestedAction | None = None
    action_avp = once.get(_REQUESTED_ACTION)
    if request_type is _EVENT_REQUEST:
        requested_action = (
            RequestedAction.DIRECT_DEBITING
            if action_avp is None
            else _enum(_REQUESTED_ACTIONS, action_avp, "Requested-Action")
        )
    elif action_avp is not None:
        if strict:
            raise AvpNotAllowed(
                "Requested-Action belongs in a CCR-EVENT only", failed_avps=(action_avp,)
            )
        deviations.append("Requested-Action in a session request is ignored")

    service_context_id = once[_SERVICE_CONTEXT_ID].as_str()

    # Services: each MSCC, or the top-level RSU/USU/Rating-Group/Service-Identifier.
    rsu_top = once.get(_REQUESTED_SERVICE_UNIT)
    rg_top = once.get(_RATING_GROUP)
    si_top = once.get(_SERVICE_IDENTIFIER)
    services: tuple[ServiceRequest, ...]
    if msccs:
        services = tuple([_mscc(avp) for avp in msccs])
        if rsu_top is not None or used_top:
            if strict:
                extra = rsu_top if rsu_top is not None else used_top[0]
                raise AvpNotAllowed(
                    "top-level RSU/USU beside Multiple-Services-Credit-Control",
                    failed_avps=(extra,),
                )
            deviations.append("top-level RSU/USU beside MSCC is ignored")
    elif rsu_top is not None or used_top or rg_top is not None or si_top is not None:
        services = (
            ServiceRequest(
                rating_group=None if rg_top is None else rg_top.as_u32(),
                service_identifier=None if si_top is None else si_top.as_u32(),
                requested=(
                    None if rsu_top is None else _units(rsu_top, "Requested-Service-Unit")[0]
                ),
                used=tuple([_used(avp) for avp in used_top]),
                from_mscc=False,
            ),
        )
    else:
        services = ()

    ps = ims = sms = None
    if service_information is not None:
        ps, ims, sms = _service_information(service_information)

    get = once.get
    host = get(_DESTINATION_HOST)
    user = get(_USER_NAME)
    timestamp = get(_EVENT_TIMESTAMP)
    msi = get(_MULTIPLE_SERVICES_INDICATOR)
    cause = get(_TERMINATION_CAUSE)
    equipment = get(_USER_EQUIPMENT_INFO)
    failover = get(_CC_SESSION_FAILOVER)
    state_id = get(_ORIGIN_STATE_ID)
    # Positional, in field order (see request.py): keywords cost 3x more in msgspec.
    return CreditControlRequest(
        message,
        once[_SESSION_ID].as_str(),
        once[_ORIGIN_HOST].as_str(),
        once[_ORIGIN_REALM].as_str(),
        once[_DESTINATION_REALM].as_str(),
        None if host is None else host.as_str(),
        auth_application_id,
        service_context_id,
        service_domain(service_context_id),
        request_type,
        once[_CC_REQUEST_NUMBER].as_u32(),
        tuple([_subscription_id(avp) for avp in subscriptions]),
        None if user is None else user.as_str(),
        None if timestamp is None else timestamp.as_time(),
        requested_action,
        None if msi is None else _enum(_MSI, msi, "Multiple-Services-Indicator"),
        None if cause is None else cause.as_i32(),
        None if equipment is None else _user_equipment(equipment),
        None if failover is None else _enum(_FAILOVER, failover, "CC-Session-Failover"),
        None if state_id is None else state_id.as_u32(),
        services,
        bool(msccs),
        ps,
        ims,
        sms,
        tuple(deviations),
    )


def _vsai_is_credit_control(vsai: Avp | None) -> bool:
    if vsai is None:
        return False
    auth = vsai.find(_AUTH_APPLICATION_ID)
    return auth is not None and auth.as_u32() == _CREDIT_CONTROL
