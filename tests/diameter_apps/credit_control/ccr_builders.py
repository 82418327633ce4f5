"""Builders for the CCRs gateways send (PGW/SMF Gy, IMS Ro, SMSC), as encoded on the wire."""

from __future__ import annotations

from collections.abc import Sequence

from diameter_apps.codec import Avp, Message, decode_message
from diameter_apps.codes import VENDOR_3GPP, AvpCode, CommandCode
from diameter_apps.credit_control.codes import CcAvp, GppAvp

G = VENDOR_3GPP
PEER_HOST = "pgw1.mno.example"
PEER_REALM = "mno.example"
OUR_REALM = "mvno.example"
OUR_HOST = "ocs.mvno.example"
SESSION = "pgw1.mno.example;1700000000;42"
MSISDN = "4915112345678"
IMSI = "262019876543210"
GY = "32251@3gpp.org"
RO_VOICE = "ext.01.001.8.32260@3gpp.org"
SMS = "32274@3gpp.org"


def subscription(sid_type: int, data: str) -> Avp:
    return Avp.grouped(
        CcAvp.SUBSCRIPTION_ID,
        [
            Avp.enum(CcAvp.SUBSCRIPTION_ID_TYPE, sid_type),
            Avp.utf8(CcAvp.SUBSCRIPTION_ID_DATA, data),
        ],
    )


def default_subscriptions() -> list[Avp]:
    return [subscription(0, MSISDN), subscription(1, IMSI)]


def units(
    *,
    time_s: int | None = None,
    total: int | None = None,
    up: int | None = None,
    down: int | None = None,
    specific: int | None = None,
) -> list[Avp]:
    out: list[Avp] = []
    if time_s is not None:
        out.append(Avp.u32(CcAvp.CC_TIME, time_s))
    if total is not None:
        out.append(Avp.u64(CcAvp.CC_TOTAL_OCTETS, total))
    if up is not None:
        out.append(Avp.u64(CcAvp.CC_INPUT_OCTETS, up))
    if down is not None:
        out.append(Avp.u64(CcAvp.CC_OUTPUT_OCTETS, down))
    if specific is not None:
        out.append(Avp.u64(CcAvp.CC_SERVICE_SPECIFIC_UNITS, specific))
    return out


def money(digits: int, exponent: int | None, currency: int | None = 978) -> Avp:
    unit_value = [Avp.i64(CcAvp.VALUE_DIGITS, digits)]
    if exponent is not None:
        unit_value.append(Avp.i32(CcAvp.EXPONENT, exponent))
    children = [Avp.grouped(CcAvp.UNIT_VALUE, unit_value)]
    if currency is not None:
        children.append(Avp.u32(CcAvp.CURRENCY_CODE, currency))
    return Avp.grouped(CcAvp.CC_MONEY, children)


def rsu(*unit_avps: Avp) -> Avp:
    return Avp.grouped(CcAvp.REQUESTED_SERVICE_UNIT, unit_avps)


def usu(*unit_avps: Avp, tariff_change: int | None = None, reason: int | None = None) -> Avp:
    children = list(unit_avps)
    if tariff_change is not None:
        children.append(Avp.enum(CcAvp.TARIFF_CHANGE_USAGE, tariff_change))
    if reason is not None:
        children.append(Avp.enum(GppAvp.REPORTING_REASON, reason, G))
    return Avp.grouped(CcAvp.USED_SERVICE_UNIT, children)


def mscc(
    rating_group: int | None = None,
    *,
    service_id: int | None = None,
    requested: Avp | None = None,
    used: Sequence[Avp] = (),
    reason: int | None = None,
    triggers: Sequence[int] | None = None,
    extra: Sequence[Avp] = (),
) -> Avp:
    children: list[Avp] = []
    if requested is not None:
        children.append(requested)
    children.extend(used)
    if service_id is not None:
        children.append(Avp.u32(CcAvp.SERVICE_IDENTIFIER, service_id))
    if rating_group is not None:
        children.append(Avp.u32(CcAvp.RATING_GROUP, rating_group))
    if reason is not None:
        children.append(Avp.enum(GppAvp.REPORTING_REASON, reason, G))
    if triggers is not None:
        children.append(
            Avp.grouped(
                GppAvp.TRIGGER,
                [Avp.enum(GppAvp.TRIGGER_TYPE, t, G) for t in triggers],
                G,
                m=False,
            )
        )
    children.extend(extra)
    return Avp.grouped(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL, children)


def service_information(*children: Avp) -> Avp:
    return Avp.grouped(GppAvp.SERVICE_INFORMATION, children, G)


def ps_information(
    *,
    mcc_mnc: str | None = "26201",
    location: bytes | None = None,
    apn: str | None = "internet.mvno",
    rat: int | None = 6,
    characteristics: str | None = "0800",
) -> Avp:
    children: list[Avp] = []
    if characteristics is not None:
        children.append(Avp.utf8(GppAvp.CHARGING_CHARACTERISTICS, characteristics, G))
    if mcc_mnc is not None:
        children.append(Avp.utf8(GppAvp.SGSN_MCC_MNC, mcc_mnc, G))
    if rat is not None:
        children.append(Avp.octets(GppAvp.RAT_TYPE, bytes([rat]), G))
    if location is not None:
        children.append(Avp.octets(GppAvp.USER_LOCATION_INFO, location, G))
    if apn is not None:
        children.append(Avp.utf8(CcAvp.CALLED_STATION_ID, apn))
    return Avp.grouped(GppAvp.PS_INFORMATION, children, G)


def ims_information(
    *,
    role: int = 0,
    calling: str = "sip:+4915112345678@ims.mno.example",
    called: str = "tel:+33612345678",
    requested: str | None = None,
    icid: str = "icid-0001",
) -> Avp:
    children = [
        Avp.enum(GppAvp.ROLE_OF_NODE, role, G),
        Avp.utf8(GppAvp.CALLING_PARTY_ADDRESS, calling, G),
        Avp.utf8(GppAvp.CALLED_PARTY_ADDRESS, called, G),
        Avp.utf8(GppAvp.IMS_CHARGING_IDENTIFIER, icid, G),
    ]
    if requested is not None:
        children.append(Avp.utf8(GppAvp.REQUESTED_PARTY_ADDRESS, requested, G))
    return Avp.grouped(GppAvp.IMS_INFORMATION, children, G)


def sms_information(*recipients: str) -> Avp:
    """SMS-Information with one Recipient-Info per recipient (default: one, +33612345678)."""
    infos = []
    for recipient in recipients or ("+33612345678",):
        address = Avp.grouped(
            GppAvp.RECIPIENT_ADDRESS,
            [Avp.enum(899, 1, G), Avp.utf8(GppAvp.ADDRESS_DATA, recipient, G)],
            G,
            m=False,
        )
        infos.append(Avp.grouped(GppAvp.RECIPIENT_INFO, [address], G, m=False))
    return Avp.grouped(GppAvp.SMS_INFORMATION, infos, G, m=False)


def ccr_avps(
    request_type: int = 1,
    number: int = 0,
    *,
    session: str = SESSION,
    context: str = GY,
    subscriptions: Sequence[Avp] | None = None,
    body: Sequence[Avp] = (),
) -> list[Avp]:
    """The AVPs of a CCR in the order a PGW sends them (Session-Id first)."""
    return [
        Avp.utf8(AvpCode.SESSION_ID, session),
        Avp.utf8(AvpCode.ORIGIN_HOST, PEER_HOST),
        Avp.utf8(AvpCode.ORIGIN_REALM, PEER_REALM),
        Avp.utf8(AvpCode.DESTINATION_REALM, OUR_REALM),
        Avp.u32(AvpCode.AUTH_APPLICATION_ID, 4),
        Avp.utf8(CcAvp.SERVICE_CONTEXT_ID, context),
        Avp.enum(CcAvp.CC_REQUEST_TYPE, request_type),
        Avp.u32(CcAvp.CC_REQUEST_NUMBER, number),
        Avp.time(CcAvp.EVENT_TIMESTAMP, 1_750_000_000),
        *(default_subscriptions() if subscriptions is None else subscriptions),
        *body,
    ]


def message(avps: Sequence[Avp], *, hop_by_hop: int = 7, flags_extra: int = 0) -> Message:
    """A CCR as the peer would deliver it: encoded, then decoded (children lazy)."""
    built = Message.request(
        CommandCode.CREDIT_CONTROL, 4, avps, hop_by_hop=hop_by_hop, end_to_end=hop_by_hop + 100
    )
    built.flags |= flags_extra
    return decode_message(built.encode())


def ccr(
    request_type: int = 1,
    number: int = 0,
    *,
    session: str = SESSION,
    context: str = GY,
    subscriptions: Sequence[Avp] | None = None,
    body: Sequence[Avp] = (),
) -> Message:
    return message(
        ccr_avps(
            request_type,
            number,
            session=session,
            context=context,
            subscriptions=subscriptions,
            body=body,
        )
    )


def without(avps: Sequence[Avp], code: int, vendor: int = 0) -> list[Avp]:
    return [a for a in avps if (a.code, a.vendor) != (code, vendor)]


def replaced(avps: Sequence[Avp], new: Avp) -> list[Avp]:
    return [new if (a.code, a.vendor) == (new.code, new.vendor) else a for a in avps]


def location_tai_ecgi(mcc_mnc: str = "20801", tac: int = 0x1234, eci: int = 0x0ABCDEF) -> bytes:
    """A 3GPP-User-Location-Info of type TAI+ECGI (130), as a PGW in France would send it."""
    from diameter_apps.credit_control.location import encode_plmn

    plmn = encode_plmn(mcc_mnc)
    return bytes([130]) + plmn + tac.to_bytes(2, "big") + plmn + eci.to_bytes(4, "big")
