"""SIP credit-check redirect server (DESIGN.md §6).

Sans-IO core: ``message`` (parser/serializer), ``framing`` (TCP), ``transaction`` (RFC 3261
server transactions), ``redirect`` (answers), ``endpoint`` (all of it for one transport).
asyncio adapter: ``transport.SipServer``. Charging plugs in through ``CreditAuthorizer``.
"""

from ocs.sip.authorizer import (
    AuthOutcome,
    CallAuthDecision,
    CallAuthRequest,
    CallerSource,
    CreditAuthorizer,
)
from ocs.sip.metrics import SipMetrics
from ocs.sip.transport import SipServer

__all__ = [
    "AuthOutcome",
    "CallAuthDecision",
    "CallAuthRequest",
    "CallerSource",
    "CreditAuthorizer",
    "SipMetrics",
    "SipServer",
]
