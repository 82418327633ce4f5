"""Credit-Control-Requests built with python-diameter (an independent encoder), for tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from diameter.message import Message
from diameter.message.avp.grouped import (
    ImsInformation,
    MultipleServicesCreditControl,
    PsInformation,
    RecipientAddress,
    RecipientInfo,
    RequestedServiceUnit,
    ServiceInformation,
    SmsInformation,
    SubscriptionId,
    UsedServiceUnit,
)
from diameter.message.commands import CreditControlRequest

GY_CONTEXT = "32251@3gpp.org"
MMTEL_CONTEXT = "32275@3gpp.org"
SMS_CONTEXT = "32274@3gpp.org"
INITIAL, UPDATE, TERMINATION, EVENT = 1, 2, 3, 4
DIRECT_DEBITING, REFUND_ACCOUNT, CHECK_BALANCE, PRICE_ENQUIRY = 0, 1, 2, 3

_ids = itertools.count(1)


@dataclass
class Mscc:
    rating_group: int | None
    requested: dict[str, int] | None = field(default_factory=dict)  # None: no RSU; {} empty RSU
    used: Sequence[dict[str, int]] = ()
    service_identifier: int | None = None

    def build(self) -> MultipleServicesCreditControl:
        mscc = MultipleServicesCreditControl()
        if self.rating_group is not None:
            mscc.rating_group = self.rating_group
        if self.service_identifier is not None:
            mscc.service_identifier = [self.service_identifier]
        if self.requested is not None:
            mscc.requested_service_unit = RequestedServiceUnit(**self.requested)
        mscc.used_service_unit = [UsedServiceUnit(**u) for u in self.used]
        return mscc


def ccr(
    session_id: str,
    request_type: int,
    number: int,
    *,
    msisdn: str | None = None,
    imsi: str | None = None,
    context: str = GY_CONTEXT,
    msccs: Sequence[Mscc] = (),
    visited_plmn: str | None = None,
    called: str | None = None,
    sms_recipient: str | None = None,
    sms_recipients: Sequence[str] = (),
    role_of_node: int = 0,
    ims_visited_network: str | None = None,
    access_network_info: Sequence[str] = (),
    requested_action: int | None = None,
    realm: str = "test.local",
    origin_host: str = "pgw.test.local",
) -> CreditControlRequest:
    msg = CreditControlRequest()
    msg.header.is_proxyable = True
    msg.header.application_id = 4
    msg.session_id = session_id
    msg.origin_host = origin_host.encode()
    msg.origin_realm = b"test.local"
    msg.destination_realm = realm.encode()
    msg.auth_application_id = 4
    msg.service_context_id = context
    msg.cc_request_type = request_type
    msg.cc_request_number = number
    ids = []
    if msisdn is not None:
        ids.append(SubscriptionId(subscription_id_type=0, subscription_id_data=msisdn))
    if imsi is not None:
        ids.append(SubscriptionId(subscription_id_type=1, subscription_id_data=imsi))
    msg.subscription_id = ids
    if requested_action is not None:
        msg.requested_action = requested_action
    if msccs:
        msg.multiple_services_indicator = 1
        msg.multiple_services_credit_control = [m.build() for m in msccs]
    info = ServiceInformation()
    used_info = False
    if visited_plmn is not None:
        info.ps_information = PsInformation(tgpp_sgsn_mcc_mnc=visited_plmn)
        used_info = True
    if called is not None:
        ims = ImsInformation(role_of_node=role_of_node, called_party_address=called)
        if ims_visited_network is not None:
            ims.ims_visited_network_identifier = ims_visited_network
        ims.access_network_information = list(access_network_info)
        info.ims_information = ims
        used_info = True
    recipients = [*([sms_recipient] if sms_recipient is not None else []), *sms_recipients]
    if recipients:
        # One Recipient-Info per recipient (TS 32.299 §7.2.151), each with its Recipient-Address.
        info.sms_information = SmsInformation(
            recipient_info=[
                RecipientInfo(recipient_address=[RecipientAddress(address_type=1, address_data=r)])
                for r in recipients
            ]
        )
        used_info = True
    if used_info:
        msg.service_information = info
    msg.header.hop_by_hop_identifier = next(_ids)
    msg.header.end_to_end_identifier = next(_ids)
    return msg


def result_code(message: Message) -> int | None:
    for avp in message.avps:
        if avp.code == 268:
            return int(avp.value)
    return None


def msccs_of(message: Message) -> dict[int | None, dict[str, object]]:
    """Per Rating-Group: result code and granted units, read with python-diameter."""
    out: dict[int | None, dict[str, object]] = {}
    for mscc in getattr(message, "multiple_services_credit_control", None) or []:
        gsu = mscc.granted_service_unit
        out[mscc.rating_group] = {
            "result_code": mscc.result_code,
            "octets": gsu.cc_total_octets if gsu else None,
            "time": gsu.cc_time if gsu else None,
            "units": gsu.cc_service_specific_units if gsu else None,
            "validity": mscc.validity_time,
            "fui": mscc.final_unit_indication,
        }
    return out


def plain(request: Message, drop: Sequence[int] = ()) -> Message:
    """The same request as a plain python-diameter Message (AVPs in ``drop`` left out), whose
    AVP list can be appended to."""
    decoded = Message.from_bytes(request.as_bytes(), plain_msg=True)
    return Message(decoded.header, [a for a in decoded.avps if a.code not in drop])


def tariff_time_changes(answer: bytes) -> dict[int | None, int | None]:
    """Per Rating-Group: the Tariff-Time-Change (Unix seconds) of its Granted-Service-Unit,
    read from the answer's bytes with our decoder (python-diameter has no attribute for it)."""
    from diameter_apps.codec import decode_message

    out: dict[int | None, int | None] = {}
    for avp in decode_message(answer).avps:
        if avp.code != 456:  # Multiple-Services-Credit-Control
            continue
        children = avp.children()
        group = next((c.as_u32() for c in children if c.code == 432), None)
        ttc = None
        for child in children:
            if child.code == 431:  # Granted-Service-Unit
                ttc = next((g.as_time() for g in child.children() if g.code == 451), None)
        out[group] = ttc
    return out
