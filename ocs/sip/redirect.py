"""The redirect server's decisions, sans-IO: which SIP answer each situation gets.

One table (``OUTCOME_ANSWERS``) maps authorizer outcomes to SIP statuses and Diameter-style
``X-OCS-Result`` codes, so operators can read one place to learn what a proxy will see:

=====================  ======  ============================  =============
outcome                status  reason                        X-OCS-Result
=====================  ======  ============================  =============
AUTHORIZED             302     Moved Temporarily             2001
INSUFFICIENT_CREDIT    402     Payment Required              4012
UNKNOWN_SUBSCRIBER     404     Not Found                     5030
BLOCKED                403     Forbidden                     4010
NOT_RATED              404     Destination Not Rated         5031
UNAVAILABLE            503     Service Unavailable           5012
=====================  ======  ============================  =============

Not rated is a 404 (the destination does not exist in the rate card), distinct from an unknown
caller by its reason phrase and X-OCS-Result; 403 stays reserved for "you may not", i.e. a
blocked account/tenant or a source not on the allowed list.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence

import msgspec

from ocs.sip.authorizer import (
    AuthOutcome,
    CallAuthDecision,
    CallAuthRequest,
    CallerSource,
)
from ocs.sip.head import header_values
from ocs.sip.message import SipRequest
from ocs.sip.uri import e164_digits, parse_name_addr, parse_uri, split_top_level

ALLOWED_METHODS: tuple[str, ...] = ("INVITE", "ACK", "CANCEL", "OPTIONS")
ALLOW_HEADER = ", ".join(ALLOWED_METHODS)


class ResultCode(enum.IntEnum):
    """Diameter Result-Codes (RFC 6733, RFC 4006) reused as X-OCS-Result values."""

    SUCCESS = 2001
    COMMAND_UNSUPPORTED = 3001
    TOO_BUSY = 3004
    UNKNOWN_PEER = 3010
    END_USER_SERVICE_DENIED = 4010
    CREDIT_LIMIT_REACHED = 4012
    UNKNOWN_SESSION_ID = 5002
    INVALID_AVP_VALUE = 5004
    UNABLE_TO_COMPLY = 5012
    USER_UNKNOWN = 5030
    RATING_FAILED = 5031


class Answer(msgspec.Struct, frozen=True):
    """A final answer before it is addressed: status line and the headers particular to it."""

    status: int
    reason: str
    result_code: int
    extra_headers: tuple[tuple[str, str], ...] = ()

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (*self.extra_headers, ("X-OCS-Result", str(self.result_code)))


OUTCOME_ANSWERS: dict[AuthOutcome, tuple[int, str, ResultCode]] = {
    AuthOutcome.AUTHORIZED: (302, "Moved Temporarily", ResultCode.SUCCESS),
    AuthOutcome.INSUFFICIENT_CREDIT: (402, "Payment Required", ResultCode.CREDIT_LIMIT_REACHED),
    AuthOutcome.UNKNOWN_SUBSCRIBER: (404, "Not Found", ResultCode.USER_UNKNOWN),
    AuthOutcome.BLOCKED: (403, "Forbidden", ResultCode.END_USER_SERVICE_DENIED),
    AuthOutcome.NOT_RATED: (404, "Destination Not Rated", ResultCode.RATING_FAILED),
    AuthOutcome.UNAVAILABLE: (503, "Service Unavailable", ResultCode.UNABLE_TO_COMPLY),
}


class RedirectPolicy(msgspec.Struct, frozen=True):
    """Operator choices; built from ``SipConfig`` by the server."""

    # IP addresses or CIDR networks; empty allows every source.
    allowed_sources: tuple[str, ...] = ()
    # Unlisted sources: True → 403 Source Not Allowed, False → dropped without an answer.
    reject_unknown_sources: bool = True
    retry_after_s: int = 5
    international_prefix: str = "00"


class SourceFilter:
    """The allowed-source list, parsed once (a bad entry fails at start-up, not per packet)."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in allowed)

    def allows(self, host: str) -> bool:
        if not self._networks:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self._networks)


def method_not_allowed() -> Answer:
    return Answer(
        405, "Method Not Allowed", ResultCode.COMMAND_UNSUPPORTED, (("Allow", ALLOW_HEADER),)
    )


def no_such_transaction() -> Answer:
    """481: a CANCEL matching nothing, or an in-dialog request (we keep no dialogs)."""
    return Answer(481, "Call/Transaction Does Not Exist", ResultCode.UNKNOWN_SESSION_ID)


def source_not_allowed() -> Answer:
    return Answer(403, "Source Not Allowed", ResultCode.UNKNOWN_PEER)


def overloaded(retry_after_s: int) -> Answer:
    return Answer(
        503, "Service Unavailable", ResultCode.TOO_BUSY, (("Retry-After", str(retry_after_s)),)
    )


def malformed(status: int, reason: str) -> Answer:
    """A parse error's answer (400, 416, 505, 513); the reason phrase names the problem."""
    return Answer(status, _phrase(reason), ResultCode.INVALID_AVP_VALUE)


def options_answer(healthy: bool, retry_after_s: int) -> Answer:
    if healthy:
        return Answer(200, "OK", ResultCode.SUCCESS, (("Allow", ALLOW_HEADER),))
    return Answer(
        503,
        "Service Unavailable",
        ResultCode.UNABLE_TO_COMPLY,
        (("Retry-After", str(retry_after_s)),),
    )


def authorizer_failed(retry_after_s: int) -> Answer:
    """The authorizer raised or timed out: the ledger is, as far as the proxy can tell, down."""
    return decision_answer(CallAuthDecision(AuthOutcome.UNAVAILABLE), "", retry_after_s)


def _phrase(text: str) -> str:
    """A reason phrase must be one line of printable text; ASCII only, because it may quote
    the offending input and some proxies choke on anything else."""
    cleaned = "".join(c if c.isprintable() and c.isascii() else "?" for c in text)
    return cleaned[:120] or "Bad Request"


def call_auth_request(
    request: SipRequest,
    source: tuple[str, int],
    transport: str,
    international_prefix: str,
) -> CallAuthRequest | Answer:
    """What to ask the authorizer, or the answer to give without asking (numbers that are not
    telephone numbers cannot belong to a subscriber or be rated)."""
    caller = _caller(request, international_prefix)
    if caller is None:
        return Answer(404, "Caller Is Not A Telephone Number", ResultCode.USER_UNKNOWN)
    callee = e164_digits(request.request_uri.user, international_prefix)
    if callee is None:
        return Answer(404, "Destination Not Rated", ResultCode.RATING_FAILED)
    number, caller_source = caller
    return CallAuthRequest(
        source_host=source[0],
        source_port=source[1],
        transport=transport,
        caller=number,
        caller_source=caller_source,
        callee=callee,
        call_id=request.call_id,
        from_tag=request.from_tag or "",
        request_uri=request.uri,
    )


def _caller(request: SipRequest, international_prefix: str) -> tuple[str, CallerSource] | None:
    """P-Charge-Info (who pays, set by the proxy), then P-Asserted-Identity (tel: entries
    first), then From: the first that holds a telephone number."""
    candidates: list[tuple[str, CallerSource]] = []
    candidates.extend(
        (value, CallerSource.P_CHARGE_INFO)
        for value in header_values(request.headers, "P-Charge-Info")
    )
    identities: list[str] = []
    for value in header_values(request.headers, "P-Asserted-Identity"):
        identities.extend(_split_addresses(value))
    identities.sort(key=lambda value: 0 if "tel:" in value.lower() else 1)
    candidates.extend((value, CallerSource.P_ASSERTED_IDENTITY) for value in identities)
    for value, source in candidates:
        number = _number_in(value, international_prefix)
        if number is not None:
            return number, source
    number = e164_digits(request.from_addr.parsed_uri.user, international_prefix)
    return None if number is None else (number, CallerSource.FROM)


def _split_addresses(value: str) -> list[str]:
    try:
        return split_top_level(value)
    except ValueError:
        return []


def _number_in(address: str, international_prefix: str) -> str | None:
    try:
        uri = parse_name_addr(address).parsed_uri
    except ValueError:
        return None
    return e164_digits(uri.user, international_prefix)


def decision_answer(decision: CallAuthDecision, request_uri: str, retry_after_s: int) -> Answer:
    """The SIP answer for the authorizer's decision (see the table in the module docstring)."""
    status, reason, default_code = OUTCOME_ANSWERS[decision.outcome]
    code = decision.result_code or int(default_code)
    if decision.outcome is AuthOutcome.AUTHORIZED:
        return _redirect(decision, request_uri, code)
    if decision.outcome is AuthOutcome.UNAVAILABLE:
        retry = decision.retry_after_s or retry_after_s
        return Answer(status, reason, code, (("Retry-After", str(retry)),))
    return Answer(status, reason, code)


def _redirect(decision: CallAuthDecision, request_uri: str, code: int) -> Answer:
    problem = invalid_authorization(decision)
    if problem is not None:
        return Answer(500, "Invalid Authorizer Decision", ResultCode.UNABLE_TO_COMPLY)
    seconds = decision.max_duration_s
    target = decision.route_uri or request_uri
    return Answer(
        302,
        "Moved Temporarily",
        code,
        (
            ("Contact", f"<{target}>;maxdur={seconds}"),
            ("X-Max-Duration", str(seconds)),
            ("X-OCS-Reservation", decision.reservation_id or ""),
        ),
    )


def invalid_authorization(decision: CallAuthDecision) -> str | None:
    """Why an AUTHORIZED decision cannot be put on the wire (None when it can): values go into
    headers verbatim, so anything that could split or break a header is refused."""
    if decision.max_duration_s <= 0:
        return "max_duration_s must be positive"
    reservation = decision.reservation_id
    if not reservation or not _is_header_token(reservation):
        return "reservation_id must be a non-empty token"
    if decision.route_uri is not None:
        route = decision.route_uri
        if not _is_header_token(route) or any(c in route for c in "<>,"):
            return "route_uri must be a bare URI"
        try:
            parse_uri(route)
        except ValueError as exc:
            return f"route_uri: {exc}"
    return None


def _is_header_token(text: str) -> bool:
    return len(text) <= 256 and text.isprintable() and not any(c.isspace() for c in text)
