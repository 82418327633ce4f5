"""CCR parsing of identities and 3GPP information: Subscription-Id, User-Equipment-Info and
Service-Information (PS, IMS and SMS, 3GPP TS 32.299 §7.2)."""

from __future__ import annotations

from collections.abc import Iterable

from diameter_apps.codec import Avp
from diameter_apps.codes import VENDOR_3GPP
from diameter_apps.credit_control.codes import (
    CcAvp,
    GppAvp,
    SubscriptionIdType,
)
from diameter_apps.credit_control.location import (
    LocationError,
    check_mcc_mnc,
    decode_user_location,
)
from diameter_apps.credit_control.parse_faults import (
    duplicate_avp,
    enum_table,
    invalid_value,
    missing_avp,
    nest_fault,
)
from diameter_apps.credit_control.request import (
    ImsInformation,
    PsInformation,
    SmsInformation,
    SubscriptionId,
    UserEquipment,
)
from diameter_apps.errors import (
    AvpOccursTooManyTimes,
    DiameterError,
)

# Plain ints for the hot path: reading an IntEnum member costs ~0.3 µs, a global ~0.02 µs.
_CALLED_STATION_ID = int(CcAvp.CALLED_STATION_ID)
_SUBSCRIPTION_ID_DATA = int(CcAvp.SUBSCRIPTION_ID_DATA)
_SUBSCRIPTION_ID_TYPE = int(CcAvp.SUBSCRIPTION_ID_TYPE)
_USER_EQUIPMENT_INFO_TYPE = int(CcAvp.USER_EQUIPMENT_INFO_TYPE)
_USER_EQUIPMENT_INFO_VALUE = int(CcAvp.USER_EQUIPMENT_INFO_VALUE)
_ADDRESS_DATA = int(GppAvp.ADDRESS_DATA)
_CALLED_PARTY_ADDRESS = int(GppAvp.CALLED_PARTY_ADDRESS)
_CALLING_PARTY_ADDRESS = int(GppAvp.CALLING_PARTY_ADDRESS)
_CHARGING_CHARACTERISTICS = int(GppAvp.CHARGING_CHARACTERISTICS)
_IMS_CHARGING_IDENTIFIER = int(GppAvp.IMS_CHARGING_IDENTIFIER)
_IMS_INFORMATION = int(GppAvp.IMS_INFORMATION)
_IMS_VISITED_NETWORK_IDENTIFIER = int(GppAvp.IMS_VISITED_NETWORK_IDENTIFIER)
_ACCESS_NETWORK_INFORMATION = int(GppAvp.ACCESS_NETWORK_INFORMATION)
_ACCESS_NETWORK_INFO_MAX = 4  # P-Access-Network-Info headers kept (UE's and the network's)
_PS_INFORMATION = int(GppAvp.PS_INFORMATION)
_RAT_TYPE = int(GppAvp.RAT_TYPE)
_CHARGING_ID = int(GppAvp.CHARGING_ID)
_RECIPIENT_ADDRESS = int(GppAvp.RECIPIENT_ADDRESS)
_RECIPIENT_INFO = int(GppAvp.RECIPIENT_INFO)
_REQUESTED_PARTY_ADDRESS = int(GppAvp.REQUESTED_PARTY_ADDRESS)
_ROLE_OF_NODE = int(GppAvp.ROLE_OF_NODE)
_SGSN_MCC_MNC = int(GppAvp.SGSN_MCC_MNC)
_SMS_INFORMATION = int(GppAvp.SMS_INFORMATION)
_USER_LOCATION_INFO = int(GppAvp.USER_LOCATION_INFO)

SMS_RECIPIENTS_MAX = 16  # recipients of one SMS event (each is a ledger leg: debit_many's limit)
_ACCESS_NETWORK_INFO_MAX = 4  # P-Access-Network-Info headers kept (UE's and the network's)

_SUBSCRIPTION_TYPES = enum_table(SubscriptionIdType)


def parse_subscription_id(avp: Avp) -> SubscriptionId:
    type_avp: Avp | None = None
    data_avp: Avp | None = None
    try:
        for child in avp.children():
            if child.vendor:
                continue
            if child.code == _SUBSCRIPTION_ID_TYPE:
                if type_avp is not None:
                    raise duplicate_avp(child, "Subscription-Id")
                type_avp = child
            elif child.code == _SUBSCRIPTION_ID_DATA:
                if data_avp is not None:
                    raise duplicate_avp(child, "Subscription-Id")
                data_avp = child
        if type_avp is None:
            raise missing_avp(_SUBSCRIPTION_ID_TYPE, where="Subscription-Id")
        if data_avp is None:
            raise missing_avp(_SUBSCRIPTION_ID_DATA, where="Subscription-Id")
        type_value = type_avp.as_i32()
        data = data_avp.as_str()
    except DiameterError as error:
        raise nest_fault(error, avp) from None
    sid_type = _SUBSCRIPTION_TYPES.get(type_value)
    if sid_type is None:
        raise invalid_value(avp, f"Subscription-Id-Type {type_value} is not a known type")
    if not data.strip():
        raise invalid_value(avp, "Subscription-Id-Data is empty")
    return SubscriptionId(sid_type, data)


def parse_user_equipment(avp: Avp) -> UserEquipment:
    try:
        type_avp = avp.find(_USER_EQUIPMENT_INFO_TYPE)
        if type_avp is None:
            raise missing_avp(_USER_EQUIPMENT_INFO_TYPE, where="User-Equipment-Info")
        value_avp = avp.find(_USER_EQUIPMENT_INFO_VALUE)
        if value_avp is None:
            raise missing_avp(_USER_EQUIPMENT_INFO_VALUE, where="User-Equipment-Info")
        return UserEquipment(type_avp.as_i32(), value_avp.as_bytes())
    except DiameterError as error:
        raise nest_fault(error, avp) from None


def parse_ps_information(avp: Avp) -> PsInformation:
    mcc_mnc = location = apn = rat = characteristics = charging_id = None
    try:
        for child in avp.children():
            code = child.code
            if child.vendor == VENDOR_3GPP:
                if code == _SGSN_MCC_MNC and mcc_mnc is None:
                    try:
                        mcc_mnc = check_mcc_mnc(child.as_str())
                    except LocationError as error:
                        raise invalid_value(child, str(error)) from None
                elif code == _USER_LOCATION_INFO and location is None:
                    try:
                        location = decode_user_location(child.data)
                    except LocationError as error:
                        raise invalid_value(child, str(error)) from None
                elif code == _RAT_TYPE and rat is None:
                    if len(child.data) != 1:
                        raise invalid_value(child, "3GPP-RAT-Type is one octet")
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
        raise nest_fault(error, avp) from None
    return PsInformation(mcc_mnc, location, apn, rat, characteristics, charging_id)


def parse_ims_information(avp: Avp) -> ImsInformation:
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
        raise nest_fault(error, avp) from None
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


def parse_sms_information(avp: Avp) -> SmsInformation:
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
        raise nest_fault(error, avp) from None
    return SmsInformation(recipient_addresses=tuple(recipients))


def parse_service_information(
    avp: Avp,
) -> tuple[PsInformation | None, ImsInformation | None, SmsInformation | None]:
    ps = ims = sms = None
    try:
        for child in avp.children():
            if child.vendor != VENDOR_3GPP:
                continue
            if child.code == _PS_INFORMATION and ps is None:
                ps = parse_ps_information(child)
            elif child.code == _IMS_INFORMATION and ims is None:
                ims = parse_ims_information(child)
            elif child.code == _SMS_INFORMATION and sms is None:
                sms = parse_sms_information(child)
    except DiameterError as error:
        raise nest_fault(error, avp) from None
    return ps, ims, sms
