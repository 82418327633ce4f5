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

from collections.abc import Mapping

from diameter_apps.codec import Avp, Message
from diameter_apps.codes import (
    ApplicationId,
    AvpCode,
)
from diameter_apps.credit_control.codes import (
    CcAvp,
    CcRequestType,
    CcSessionFailover,
    MultipleServicesIndicator,
    RequestedAction,
    ServiceDomain,
)
from diameter_apps.credit_control.errors import AvpNotAllowed
from diameter_apps.credit_control.parse_faults import (
    enum_member,
    enum_table,
    invalid_value,
    missing_avp,
)
from diameter_apps.credit_control.parse_information import (
    parse_service_information,
    parse_subscription_id,
    parse_user_equipment,
)
from diameter_apps.credit_control.parse_layout import (
    SERVICE_INFORMATION,
    VSAI,
    LayoutMemo,
    classify,
)
from diameter_apps.credit_control.parse_units import (
    parse_mscc,
    parse_units,
    parse_used,
)
from diameter_apps.credit_control.request import (
    CreditControlRequest,
    ServiceRequest,
    SubscriptionId,
)
from diameter_apps.errors import DiameterError
from diameter_apps.validation import Profile

# Plain ints for the hot path: reading an IntEnum member costs ~0.3 µs, a global ~0.02 µs.
_ACCT_MULTI_SESSION_ID = int(CcAvp.ACCT_MULTI_SESSION_ID)
_CC_CORRELATION_ID = int(CcAvp.CC_CORRELATION_ID)
_CC_REQUEST_NUMBER = int(CcAvp.CC_REQUEST_NUMBER)
_CC_REQUEST_TYPE = int(CcAvp.CC_REQUEST_TYPE)
_CC_SESSION_FAILOVER = int(CcAvp.CC_SESSION_FAILOVER)
_CC_SUB_SESSION_ID = int(CcAvp.CC_SUB_SESSION_ID)
_EVENT_TIMESTAMP = int(CcAvp.EVENT_TIMESTAMP)
_MULTIPLE_SERVICES_INDICATOR = int(CcAvp.MULTIPLE_SERVICES_INDICATOR)
_RATING_GROUP = int(CcAvp.RATING_GROUP)
_REQUESTED_ACTION = int(CcAvp.REQUESTED_ACTION)
_REQUESTED_SERVICE_UNIT = int(CcAvp.REQUESTED_SERVICE_UNIT)
_SERVICE_CONTEXT_ID = int(CcAvp.SERVICE_CONTEXT_ID)
_SERVICE_IDENTIFIER = int(CcAvp.SERVICE_IDENTIFIER)
_TERMINATION_CAUSE = int(CcAvp.TERMINATION_CAUSE)
_USER_EQUIPMENT_INFO = int(CcAvp.USER_EQUIPMENT_INFO)
_USER_NAME = int(CcAvp.USER_NAME)
_EVENT_REQUEST = CcRequestType.EVENT
_INITIAL_REQUEST = CcRequestType.INITIAL
_CREDIT_CONTROL = int(ApplicationId.CREDIT_CONTROL)

_SESSION_ID = int(AvpCode.SESSION_ID)
_ORIGIN_HOST = int(AvpCode.ORIGIN_HOST)
_ORIGIN_REALM = int(AvpCode.ORIGIN_REALM)
_DESTINATION_REALM = int(AvpCode.DESTINATION_REALM)
_DESTINATION_HOST = int(AvpCode.DESTINATION_HOST)
_AUTH_APPLICATION_ID = int(AvpCode.AUTH_APPLICATION_ID)
_ORIGIN_STATE_ID = int(AvpCode.ORIGIN_STATE_ID)

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
# By plain int: an IntEnum key hashes through a Python-level __hash__.
_REQUIRED_BY_TYPE = {int(kind): codes for kind, codes in REQUIRED_AVPS.items()}

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

# The top-level AVPs _parse reads, in the order it unpacks them (see parse_layout.Layout).
_FIELDS = (
    _SESSION_ID,
    _ORIGIN_HOST,
    _ORIGIN_REALM,
    _DESTINATION_REALM,
    _DESTINATION_HOST,
    _AUTH_APPLICATION_ID,
    _SERVICE_CONTEXT_ID,
    _CC_REQUEST_TYPE,
    _CC_REQUEST_NUMBER,
    _REQUESTED_ACTION,
    _REQUESTED_SERVICE_UNIT,
    _RATING_GROUP,
    _SERVICE_IDENTIFIER,
    _USER_NAME,
    _EVENT_TIMESTAMP,
    _MULTIPLE_SERVICES_INDICATOR,
    _TERMINATION_CAUSE,
    _USER_EQUIPMENT_INFO,
    _CC_SESSION_FAILOVER,
    _ORIGIN_STATE_ID,
    SERVICE_INFORMATION,
    VSAI,
)


SERVICE_DOMAINS: Mapping[str, ServiceDomain] = {str(int(d)): d for d in ServiceDomain}

_REQUEST_TYPES = enum_table(CcRequestType)
_REQUESTED_ACTIONS = enum_table(RequestedAction)
_MULTIPLE_SERVICES_INDICATORS = enum_table(MultipleServicesIndicator)
_SESSION_FAILOVERS = enum_table(CcSessionFailover)


def service_domain(service_context_id: str) -> ServiceDomain | None:
    """The domain of a Service-Context-Id, by the number before ``@`` (3GPP TS 32.299 §7.1.12:
    ``[[[[ext.]MNC.]MCC.]Release.]service-context@domain``), e.g.
    ``ext.01.001.8.32260@3gpp.org`` → IMS. None when unknown."""
    local = service_context_id.partition("@")[0]
    return SERVICE_DOMAINS.get(local.rpartition(".")[2])


# --- the request -----------------------------------------------------------------------------


class SubscriptionMemo:
    """Parsed Subscription-Id AVPs by their payload bytes. Every request of a session repeats
    the same ones, so a CCR-U takes them from here instead of decoding and checking them again.
    Only what parsed cleanly is kept (an AVP's parse depends on its payload alone); at most
    ``entries_max`` sets, then it starts afresh. Owned by the caller: ``parse_ccr`` keeps none.

    It also carries ``layouts``, the top-level layout of each request shape met (see
    :mod:`~diameter_apps.credit_control.parse_layout`): the other memo of a parse."""

    __slots__ = ("_entries", "entries_max", "layouts")

    def __init__(self, entries_max: int = 16_384) -> None:
        self.entries_max = entries_max
        self._entries: dict[tuple[bytes, ...], tuple[SubscriptionId, ...]] = {}
        self.layouts = LayoutMemo()

    def __len__(self) -> int:
        return len(self._entries)

    def parse(self, avps: list[Avp]) -> tuple[SubscriptionId, ...]:
        key = tuple([avp.data for avp in avps])
        parsed = self._entries.get(key)
        if parsed is None:
            parsed = tuple([parse_subscription_id(avp) for avp in avps])
            if len(self._entries) >= self.entries_max:
                self._entries.clear()
            self._entries[key] = parsed
        return parsed


def parse_ccr(
    message: Message,
    profile: Profile = Profile.LENIENT,
    subscriptions: SubscriptionMemo | None = None,
) -> CreditControlRequest:
    """Parse and check a decoded CCR; raises a DiameterError (``request`` set) on any fault.
    ``subscriptions``: the caller's memo of parsed Subscription-Ids, if it keeps one."""
    try:
        return _parse(message, profile is Profile.STRICT, subscriptions)
    except DiameterError as error:
        if error.request is None:
            error.request = message
        raise


def _parse(message: Message, strict: bool, memo: SubscriptionMemo | None) -> CreditControlRequest:
    avps = message.avps
    layout = (
        classify(avps, _FIELDS, SINGLE_INSTANCE_AVPS, strict)
        if memo is None
        else memo.layouts.layout(message, _FIELDS, SINGLE_INSTANCE_AVPS, strict)
    )
    (
        session_avp,
        origin_host_avp,
        origin_realm_avp,
        destination_realm_avp,
        host,
        auth_avp,
        service_context_avp,
        type_avp,
        number_avp,
        action_avp,
        rsu_top,
        rg_top,
        si_top,
        user,
        timestamp,
        msi,
        cause,
        equipment,
        failover,
        state_id,
        service_information,
        vsai,
    ) = layout.fields([*avps, None])
    msccs = layout.msccs(avps)
    subscriptions = layout.subscriptions(avps)
    used_top = layout.used(avps)
    deviations = list(layout.deviations)
    present = layout.present

    # Required AVPs: CC-Request-Type first decides the table, then ABNF order.
    request_type = (
        None if type_avp is None else enum_member(_REQUEST_TYPES, type_avp, "CC-Request-Type")
    )
    required = _REQUIRED_BY_TYPE[int(request_type or _INITIAL_REQUEST)]
    # Fast path (one C-level set comparison) for the usual request that has them all.
    for code in () if present >= _REQUIRED_SETS[required] else required:
        if code in present:
            continue
        if code == _AUTH_APPLICATION_ID and not strict and _vsai_is_credit_control(vsai):
            deviations.append("Auth-Application-Id only in Vendor-Specific-Application-Id")
            continue
        if code == _REQUESTED_ACTION and not strict:
            deviations.append("CCR-EVENT without Requested-Action: DIRECT_DEBITING assumed")
            continue
        raise missing_avp(code)
    assert request_type is not None  # CC-Request-Type is in every row of REQUIRED_AVPS

    auth_application_id = _CREDIT_CONTROL
    if auth_avp is not None:
        auth_application_id = auth_avp.as_u32()
        if auth_application_id != _CREDIT_CONTROL:
            raise invalid_value(
                auth_avp, f"Auth-Application-Id {auth_application_id} is not credit control (4)"
            )

    requested_action: RequestedAction | None = None
    if request_type is _EVENT_REQUEST:
        requested_action = (
            RequestedAction.DIRECT_DEBITING
            if action_avp is None
            else enum_member(_REQUESTED_ACTIONS, action_avp, "Requested-Action")
        )
    elif action_avp is not None:
        if strict:
            raise AvpNotAllowed(
                "Requested-Action belongs in a CCR-EVENT only", failed_avps=(action_avp,)
            )
        deviations.append("Requested-Action in a session request is ignored")

    assert service_context_avp is not None  # required above, as are the other identities
    service_context_id = service_context_avp.as_str()

    # Services: each MSCC, or the top-level RSU/USU/Rating-Group/Service-Identifier.
    services: tuple[ServiceRequest, ...]
    if msccs:
        # A remembered shape's MSCCs from the frame; else (or if the AVPs were replaced since
        # decoding: no frame then) the general parse, which raises the faults.
        read = layout.services
        frame = None if read is None else message.received_frame()
        if read is not None and frame is not None:
            services = read(frame)
        else:
            services = tuple([parse_mscc(avp) for avp in msccs])
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
                    None if rsu_top is None else parse_units(rsu_top, "Requested-Service-Unit")[0]
                ),
                used=tuple([parse_used(avp) for avp in used_top]),
                from_mscc=False,
            ),
        )
    else:
        services = ()

    ps = ims = sms = None
    if service_information is not None:
        ps, ims, sms = parse_service_information(service_information)

    assert session_avp is not None and origin_host_avp is not None
    assert origin_realm_avp is not None and destination_realm_avp is not None
    assert number_avp is not None
    # Positional, in field order (see request.py): keywords cost 3x more in msgspec.
    return CreditControlRequest(
        message,
        session_avp.as_str(),
        origin_host_avp.as_str(),
        origin_realm_avp.as_str(),
        destination_realm_avp.as_str(),
        None if host is None else host.as_str(),
        auth_application_id,
        service_context_id,
        service_domain(service_context_id),
        request_type,
        number_avp.as_u32(),
        (
            memo.parse(subscriptions)
            if memo is not None
            else tuple([parse_subscription_id(avp) for avp in subscriptions])
        ),
        None if user is None else user.as_str(),
        None if timestamp is None else timestamp.as_time(),
        requested_action,
        None
        if msi is None
        else enum_member(_MULTIPLE_SERVICES_INDICATORS, msi, "Multiple-Services-Indicator"),
        None if cause is None else cause.as_i32(),
        None if equipment is None else parse_user_equipment(equipment),
        None
        if failover is None
        else enum_member(_SESSION_FAILOVERS, failover, "CC-Session-Failover"),
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
