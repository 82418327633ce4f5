"""The narrow interface between the SIP front end and charging: ``CreditAuthorizer``.

The SIP layer knows nothing of tenants, balances or rates; it hands the authorizer what the
INVITE says and turns the decision into a SIP answer. The implementation (ledger + rating,
written with ``balance/`` and ``tariffs/``) resolves the tenant, rates the destination and
reserves, idempotently per (tenant, Call-ID, From-tag), so a retransmission that reaches
another process, or arrives after a restart, never reserves twice.
"""

from __future__ import annotations

import enum
from typing import Protocol

import msgspec


class AuthOutcome(enum.Enum):
    AUTHORIZED = "authorized"
    INSUFFICIENT_CREDIT = "insufficient_credit"
    UNKNOWN_SUBSCRIBER = "unknown_subscriber"
    BLOCKED = "blocked"  # account or tenant blocked
    NOT_RATED = "not_rated"  # no tariff for the destination
    UNAVAILABLE = "unavailable"  # the ledger cannot answer now


class CallerSource(enum.Enum):
    """Which header the caller number came from (most trusted first)."""

    P_CHARGE_INFO = "p-charge-info"
    P_ASSERTED_IDENTITY = "p-asserted-identity"
    FROM = "from"


class CallAuthRequest(msgspec.Struct, frozen=True):
    """One call set-up to authorize. Numbers are E.164 digits without '+' (a national number
    without country code stays as dialled digits; the tenant's rules complete it)."""

    source_host: str  # the proxy's address the INVITE came from
    source_port: int
    transport: str  # "udp" or "tcp"
    caller: str
    caller_source: CallerSource
    callee: str
    call_id: str
    from_tag: str  # '' when an RFC 2543 peer sent none
    request_uri: str


class CallAuthDecision(msgspec.Struct, frozen=True):
    """What the charging side decided.

    AUTHORIZED needs ``max_duration_s > 0`` and a ``reservation_id``; ``route_uri`` is the
    URI the proxy should send the call to (the Request-URI is echoed when None).
    ``result_code`` overrides the Diameter-style code of the outcome (see ``ocs.sip.redirect``).
    """

    outcome: AuthOutcome
    max_duration_s: int = 0
    reservation_id: str | None = None
    route_uri: str | None = None
    tenant: str | None = None
    result_code: int | None = None
    retry_after_s: int | None = None


class CreditAuthorizer(Protocol):
    async def authorize(self, request: CallAuthRequest) -> CallAuthDecision:
        """Decide and, when authorized, reserve. Must be idempotent per (tenant, Call-ID,
        From-tag). Raising is treated as UNAVAILABLE (503)."""
        ...

    async def healthy(self) -> bool:
        """Whether the ledger answers now; drives OPTIONS 200 vs 503 for proxy health checks."""
        ...
