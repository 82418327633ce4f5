"""The typed, validated view of a Credit-Control-Request that :func:`parse_ccr` returns.

Everything is a frozen msgspec Struct: cheap to build on the hot path, immutable once parsed.
Units follow DESIGN §2: seconds, octets, service-specific units, money in micro-units.
"""

from __future__ import annotations

import msgspec

from diameter_apps.codec import Message
from diameter_apps.credit_control.codes import (
    CcRequestType,
    CcSessionFailover,
    MultipleServicesIndicator,
    RequestedAction,
    ServiceDomain,
    SubscriptionIdType,
    TariffChangeUsage,
)
from diameter_apps.credit_control.ims_location import ims_visited_plmn
from diameter_apps.credit_control.location import UserLocation

# The hot-path structs below are not kw_only: parse_ccr builds them positionally (3x cheaper
# than keywords in msgspec). Everyone else should still use keywords.


class Money(msgspec.Struct, frozen=True):
    """An amount in micro-units (10⁻⁶) of ``currency_code`` (ISO 4217 numeric, None if absent)."""

    micros: int
    currency_code: int | None = None


class ServiceUnits(msgspec.Struct, frozen=True):
    """The unit AVPs of a Requested-/Used-Service-Unit: None where the AVP was absent.

    An RSU with every field None is an *empty* RSU: the client leaves the amount to the server
    (RFC 4006 §5.1.2, DESIGN C3).
    """

    time_s: int | None = None
    total_octets: int | None = None
    input_octets: int | None = None
    output_octets: int | None = None
    service_specific_units: int | None = None
    money: Money | None = None

    @property
    def is_empty(self) -> bool:
        return (
            self.time_s is None
            and self.total_octets is None
            and self.input_octets is None
            and self.output_octets is None
            and self.service_specific_units is None
            and self.money is None
        )

    @property
    def octets(self) -> int | None:
        """Total volume: CC-Total-Octets, else input + output when either is present."""
        if self.total_octets is not None:
            return self.total_octets
        if self.input_octets is None and self.output_octets is None:
            return None
        return (self.input_octets or 0) + (self.output_octets or 0)


class UsedUnits(msgspec.Struct, frozen=True):
    """One Used-Service-Unit: the units, and (3GPP) why and on which side of a tariff change."""

    units: ServiceUnits
    tariff_change_usage: TariffChangeUsage | None = None
    reporting_reason: int | None = None
    """A :class:`ReportingReason` value; kept as the raw int when this release does not know it."""


class ServiceRequest(msgspec.Struct, frozen=True):
    """One Multiple-Services-Credit-Control of the request, or the single-service request.

    ``requested`` is None when no RSU was sent (a report-only MSCC), an empty
    :class:`ServiceUnits` for an empty RSU. ``from_mscc`` is False for the top-level
    RSU/USU/Rating-Group/Service-Identifier of a request without MSCC: answer those with the
    single-service CCA form (GSU at top level), which :func:`build_cca` picks by itself.
    """

    rating_group: int | None = None
    service_identifier: int | None = None
    requested: ServiceUnits | None = None
    used: tuple[UsedUnits, ...] = ()
    reporting_reason: int | None = None
    """The MSCC-level 3GPP Reporting-Reason (applies to every USU without its own)."""
    trigger_types: tuple[int, ...] = ()
    """3GPP Trigger / Trigger-Type values of the MSCC (informative)."""
    from_mscc: bool = True

    @property
    def wants_grant(self) -> bool:
        """Whether to grant: an RSU (empty or not) asks for quota; USU alone only reports."""
        return self.requested is not None

    @property
    def service_key(self) -> tuple[int | None, int | None]:
        """(Rating-Group, Service-Identifier): what the answer's MSCC must echo."""
        return (self.rating_group, self.service_identifier)


class SubscriptionId(msgspec.Struct, frozen=True):
    type: SubscriptionIdType
    data: str


class UserEquipment(msgspec.Struct, frozen=True):
    """User-Equipment-Info: type (a :class:`UserEquipmentInfoType` value) and raw value."""

    type: int
    value: bytes


class PsInformation(msgspec.Struct, frozen=True):
    """The PS-Information rating keys (TS 32.251 / 29.061)."""

    sgsn_mcc_mnc: str | None = None
    """The serving network's PLMN ("MCCMNC"), from 3GPP-SGSN-MCC-MNC."""
    user_location: UserLocation | None = None
    called_station_id: str | None = None
    """The APN."""
    rat_type: int | None = None
    """3GPP-RAT-Type (TS 29.061: 1 UTRAN, 2 GERAN, 6 EUTRAN, 10 NR, ...)."""
    charging_characteristics: str | None = None
    charging_id: str | None = None
    """3GPP-Charging-Id (TS 29.061): the bearer's id (decimal), to match the PGW's CDRs."""

    @property
    def visited_mcc_mnc(self) -> str | None:
        """The PLMN the subscriber is in: the user location's, else the SGSN/SGW's."""
        if self.user_location is not None:
            return self.user_location.mcc_mnc
        return self.sgsn_mcc_mnc


class ImsInformation(msgspec.Struct, frozen=True, kw_only=True):
    role_of_node: int | None = None
    """A :class:`RoleOfNode` value (0 originating, 1 terminating, ...)."""
    calling_party_address: str | None = None
    called_party_address: str | None = None
    requested_party_address: str | None = None
    ims_charging_identifier: str | None = None
    visited_network_identifier: str | None = None
    """IMS-Visited-Network-Identifier (P-Visited-Network-ID), as sent."""
    access_network_info: tuple[str, ...] = ()
    """Every Access-Network-Information (P-Access-Network-Info header values), as sent."""

    @property
    def visited_mcc_mnc(self) -> str | None:
        """The PLMN the subscriber is in, read from the two above (None when neither says)."""
        if not self.access_network_info and not self.visited_network_identifier:
            return None
        return ims_visited_plmn(self.access_network_info, self.visited_network_identifier)


class SmsInformation(msgspec.Struct, frozen=True, kw_only=True):
    recipient_addresses: tuple[str, ...] = ()
    """Address-Data of each Recipient-Info (its first Recipient-Address with one), in order;
    often ``tel:``/E.164. At most ``SMS_RECIPIENTS_MAX``."""

    @property
    def recipient_address(self) -> str | None:
        """The first recipient (what a session request is rated by)."""
        return self.recipient_addresses[0] if self.recipient_addresses else None


class CreditControlRequest(msgspec.Struct, frozen=True):
    """A CCR, parsed and checked. ``message`` is the decoded request (for :func:`build_cca`).

    ``services`` holds one :class:`ServiceRequest` per MSCC, or exactly one with
    ``from_mscc=False`` for a single-service request that carried an RSU, USU, Rating-Group or
    Service-Identifier at top level (none when it carried nothing to rate, e.g. a bare CCR-T).
    ``deviations`` lists what the lenient profile tolerated (log them; nothing else to do).
    """

    message: Message
    session_id: str
    origin_host: str
    origin_realm: str
    destination_realm: str
    destination_host: str | None
    auth_application_id: int
    service_context_id: str
    domain: ServiceDomain | None
    """From the Service-Context-Id suffix; None when unknown (rating answers 5031 / 4011)."""
    request_type: CcRequestType
    request_number: int
    subscription_ids: tuple[SubscriptionId, ...] = ()
    user_name: str | None = None
    event_timestamp_s: int | None = None
    requested_action: RequestedAction | None = None
    """Set for EVENT requests only (DIRECT_DEBITING when a lenient peer omitted it)."""
    multiple_services_indicator: MultipleServicesIndicator | None = None
    termination_cause: int | None = None
    user_equipment: UserEquipment | None = None
    cc_session_failover: CcSessionFailover | None = None
    origin_state_id: int | None = None
    services: tuple[ServiceRequest, ...] = ()
    has_mscc: bool = False
    ps: PsInformation | None = None
    ims: ImsInformation | None = None
    sms: SmsInformation | None = None
    deviations: tuple[str, ...] = ()

    def subscription(self, *types: SubscriptionIdType) -> SubscriptionId | None:
        """The first Subscription-Id of the given types in preference order (any when none)."""
        if not types:
            return self.subscription_ids[0] if self.subscription_ids else None
        for wanted in types:
            for sid in self.subscription_ids:
                if sid.type == wanted:
                    return sid
        return None

    @property
    def is_retransmission(self) -> bool:
        """The T flag: a hint only; duplicates are detected by (Session-Id, CC-Request-Number)."""
        return self.message.is_retransmit
