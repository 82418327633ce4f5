"""Diameter credit control (RFC 4006 / RFC 8506, 3GPP Gy/Ro TS 32.299), sans-IO.

What the charging service (``ocs``) calls, per CCR the peer delivers as ``RequestReceived``::

    from diameter_apps.credit_control import (
        parse_ccr, build_cca, CreditControlAnswer, ServiceAnswer, GrantedUnits, admit, ...)

    try:
        ccr = parse_ccr(event.message, profile)        # CreditControlRequest, or DiameterError
    except DiameterError as error:
        return answer_for_error(event.message, error, origin_host=..., origin_realm=...)
    # ccr.deviations: log them.  ccr.domain: ServiceDomain.PS / IMS / SMS / MMTEL / MMS / None
    refusal = admit(state_from_ledger, ccr.request_type)   # 5002 for U/T of an unknown session
    ...rate ccr.services (one ServiceRequest per MSCC, or the single-service request),
       ccr.subscription_ids, ccr.ps / ccr.ims / ccr.sms, ccr.requested_action...
    cca = build_cca(ccr, CreditControlAnswer(services=(ServiceAnswer(...), ...)),
                    origin_host=..., origin_realm=...)
    peer.send_answer(event, cca, now)

Modules, each owning one thing:

- :mod:`.codes`: IntEnums of every credit-control value (CC-Request-Type, Subscription-Id-Type,
  Requested-Action, Final-Unit-Action, ..., AVP codes ``CcAvp`` / ``GppAvp``, ``ServiceDomain``);
- :mod:`.request`: the parsed request (``CreditControlRequest``, ``ServiceRequest``,
  ``ServiceUnits``, ``UsedUnits``, ``Money``, ``SubscriptionId``, ``PsInformation``, ...);
- :mod:`.parse`: ``parse_ccr(message, profile) -> CreditControlRequest``, the required-AVP table
  ``REQUIRED_AVPS``, ``service_domain(service_context_id)``; the Grouped parts are read by
  :mod:`.parse_units` (money, units, MSCC) and :mod:`.parse_information` (Subscription-Id,
  User-Equipment-Info, Service-Information), the Failed-AVP errors built by
  :mod:`.parse_faults`;
- :mod:`.location`: 3GPP-User-Location-Info / MCC-MNC decoding (``UserLocation``);
- :mod:`.answer`: ``build_cca(request, answer, *, origin_host, origin_realm) -> Message`` and the
  answer structs (``CreditControlAnswer``, ``ServiceAnswer``, ``GrantedUnits``,
  ``FinalUnitIndication``, ``RedirectServer``, ``CostInformation``), ``currency_code("EUR")``;
- :mod:`.session`: the RFC 4006 §7 server state machine as a pure table (``admit``,
  ``transition``, ``next_state``, ``request_event``);
- :mod:`.server_requests`: ``build_rar`` / ``build_asr`` and ``parse_server_answer`` (RAA/ASA);
- :mod:`.fingerprint`: ``ccr_digest(message)``, to tell a retransmission from a reused
  CC-Request-Number (``legacy_ccr_digest``: the earlier releases' digest).

Nothing here does I/O, reads a clock or keeps state between calls.
"""

from diameter_apps.credit_control.answer import (
    CostInformation,
    CreditControlAnswer,
    FinalUnitIndication,
    GrantedUnits,
    MsccAvpCache,
    RedirectServer,
    ServiceAnswer,
    build_cca,
    currency_code,
)
from diameter_apps.credit_control.codes import (
    CcRequestType,
    CcSessionFailover,
    CheckBalanceResult,
    CreditControlFailureHandling,
    DirectDebitingFailureHandling,
    FinalUnitAction,
    RedirectAddressType,
    ReportingReason,
    RequestedAction,
    ServiceDomain,
    SubscriptionIdType,
    TariffChangeUsage,
)
from diameter_apps.credit_control.fingerprint import ccr_digest, legacy_ccr_digest
from diameter_apps.credit_control.location import UserLocation
from diameter_apps.credit_control.parse import (
    REQUIRED_AVPS,
    SubscriptionMemo,
    parse_ccr,
    service_domain,
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
from diameter_apps.credit_control.server_requests import (
    ServerAnswer,
    SessionPeer,
    build_asr,
    build_rar,
    parse_server_answer,
)
from diameter_apps.credit_control.session import (
    SessionAction,
    SessionEvent,
    SessionState,
    Transition,
    admit,
    next_state,
    request_event,
    transition,
)

__all__ = [
    "REQUIRED_AVPS",
    "CcRequestType",
    "CcSessionFailover",
    "CheckBalanceResult",
    "CostInformation",
    "CreditControlAnswer",
    "CreditControlFailureHandling",
    "CreditControlRequest",
    "DirectDebitingFailureHandling",
    "FinalUnitAction",
    "FinalUnitIndication",
    "GrantedUnits",
    "ImsInformation",
    "Money",
    "MsccAvpCache",
    "PsInformation",
    "RedirectAddressType",
    "RedirectServer",
    "ReportingReason",
    "RequestedAction",
    "ServerAnswer",
    "ServiceAnswer",
    "ServiceDomain",
    "ServiceRequest",
    "ServiceUnits",
    "SessionAction",
    "SessionEvent",
    "SessionPeer",
    "SessionState",
    "SmsInformation",
    "SubscriptionId",
    "SubscriptionIdType",
    "SubscriptionMemo",
    "TariffChangeUsage",
    "Transition",
    "UsedUnits",
    "UserEquipment",
    "UserLocation",
    "admit",
    "build_asr",
    "build_cca",
    "build_rar",
    "ccr_digest",
    "currency_code",
    "legacy_ccr_digest",
    "next_state",
    "parse_ccr",
    "parse_server_answer",
    "request_event",
    "service_domain",
    "transition",
]
