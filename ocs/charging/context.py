"""The record context of a charge: what parsing and rating already know about who, where and
under which rate card, handed to the ledger so the usage record carries it (balance/records.py
``RecordContext``, copied onto the record by the script without being read).

Built once per session (a session's CCR-Us share it: the subscriber, the visited network, the
APN and the charging id do not change within a session) and kept encoded, so a CCR-U costs a
dict lookup, not an encoding. Pure functions: no I/O.
"""

from __future__ import annotations

from balance.ledger import encode_context
from balance.records import RecordContext
from diameter_apps.credit_control import CreditControlRequest, SubscriptionIdType
from diameter_apps.credit_control.codes import ServiceDomain
from tariffs.model import Tenant
from tariffs.numbers import normalise_e164
from tariffs.subscribers import SubscriberRef

_SOURCES = {
    ServiceDomain.PS: "gy",
    ServiceDomain.IMS: "ro",
    ServiceDomain.MMTEL: "ro",
    ServiceDomain.SMS: "sms",
    ServiceDomain.MMS: "ro",
}


def source_of(ccr: CreditControlRequest) -> str:
    """gy (PS data), ro (IMS / MMTel voice, MMS), sms; "" for an unknown Service-Context-Id."""
    return _SOURCES.get(ccr.domain, "") if ccr.domain is not None else ""


def e164(number: str | None, tenant: Tenant) -> str:
    """``number`` as E.164 digits in the tenant's numbering plan, "" if it is not a number."""
    if not number:
        return ""
    digits = normalise_e164(
        number,
        tenant.country_code,
        international_prefix=tenant.international_prefix,
        national_prefix=tenant.national_prefix,
    )
    return digits or ""


def ccr_context(
    ccr: CreditControlRequest,
    ref: SubscriberRef,
    tenant: Tenant,
    *,
    rate_card_version: str,
    started_at_s: float,
) -> RecordContext:
    """The context of a Diameter charge from the parsed request and its first rating."""
    imsi = ref.imsi or ""
    if not imsi:
        sid = ccr.subscription(SubscriptionIdType.IMSI)
        imsi = sid.data if sid is not None and sid.type is SubscriptionIdType.IMSI else ""
    visited = apn = charging_id = called = calling = ""
    role = -1
    ps = ccr.ps
    if ps is not None:
        visited = ps.visited_mcc_mnc or ""
        apn = ps.called_station_id or ""
        charging_id = ps.charging_id or ""
    ims = ccr.ims
    if ims is not None:
        called = e164(ims.called_party_address or ims.requested_party_address, tenant)
        calling = e164(ims.calling_party_address, tenant)
        charging_id = ims.ims_charging_identifier or charging_id
        if ims.role_of_node is not None:
            role = ims.role_of_node
    if ccr.sms is not None and not called:
        called = e164(ccr.sms.recipient_address, tenant)
    if not calling and role == 0:
        calling = ref.subscriber_id  # the subscriber originates
    return RecordContext(
        source=source_of(ccr),
        msisdn=ref.subscriber_id,
        imsi=imsi,
        started_at_s=float(started_at_s),
        called=called,
        calling=calling,
        visited_plmn=visited,
        apn=apn,
        charging_id=charging_id,
        role_of_node=role,
        rate_card_version=rate_card_version,
        currency=tenant.currency,
        plan=ref.plan,
    )


def encoded_ccr_context(
    ccr: CreditControlRequest,
    ref: SubscriberRef,
    tenant: Tenant,
    *,
    rate_card_version: str,
    started_at_s: float,
) -> bytes:
    return encode_context(
        ccr_context(
            ccr, ref, tenant, rate_card_version=rate_card_version, started_at_s=started_at_s
        )
    )


def sip_context(
    tenant: Tenant,
    *,
    subscriber: str,
    caller: str,
    callee: str,
    started_at_s: float,
    call_key: str,
    rate_card_version: str,
) -> bytes:
    """The context of a SIP call's ledger steps (the caller pays; the call key identifies it)."""
    return encode_context(
        RecordContext(
            source="sip",
            msisdn=subscriber,
            started_at_s=float(started_at_s),
            called=e164(callee, tenant),
            calling=e164(caller, tenant) or subscriber,
            charging_id=call_key,
            role_of_node=0,
            rate_card_version=rate_card_version,
            currency=tenant.currency,
        )
    )
