"""SIP credit-check redirect server (DESIGN.md §6).

Sans-IO core: ``message`` (parser/serializer), ``framing`` (TCP), ``transaction`` (RFC 3261
server transactions), ``redirect`` (answers), ``endpoint`` (all of it for one transport).
asyncio adapter: ``transport.SipServer``. Charging plugs in through ``CreditAuthorizer``.
"""

from typing import TYPE_CHECKING, Any

from ocs.sip.authorizer import (
    AuthOutcome,
    CallAuthDecision,
    CallAuthRequest,
    CallerSource,
    CreditAuthorizer,
)
from ocs.sip.metrics import SipMetrics

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    # SipServer is imported on first use so that importing the sans-IO modules never pulls in
    # asyncio or ocs.config (tests/sip/test_redirect.py checks this).
    if name == "SipServer":
        from ocs.sip.transport import SipServer

        return SipServer
    raise AttributeError(name)
