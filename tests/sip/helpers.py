"""Shared pieces of the SIP tests: request builders and an in-memory test authorizer.

``TableAuthorizer`` is a test double for the SIP-side tests only: it answers from a table
keyed by caller number. The ledger-backed authorizer comes with the charging integration.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ocs.sip.authorizer import AuthOutcome, CallAuthDecision, CallAuthRequest


def request_bytes(
    method: str = "INVITE",
    *,
    uri: str = "sip:+4930123456@ocs.test",
    branch: str = "z9hG4bK-test-1",
    via_host: str = "127.0.0.1",
    via_port: int = 5070,
    transport: str = "UDP",
    from_uri: str = "sip:+491711234567@proxy.test",
    from_tag: str | None = "caller-tag",
    call_id: str = "call-1@proxy.test",
    cseq: int = 1,
    cseq_method: str | None = None,
    extra: list[str] | None = None,
    rport: bool = False,
    body: bytes = b"",
) -> bytes:
    """A well-formed request; tests break it in the way they need."""
    via = f"SIP/2.0/{transport} {via_host}:{via_port};branch={branch}"
    if rport:
        via += ";rport"
    tag = f";tag={from_tag}" if from_tag is not None else ""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        f"From: <{from_uri}>{tag}",
        f"To: <{uri}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        *(extra or []),
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


@dataclass
class TableAuthorizer:
    """Answers by caller number; counts calls per (Call-ID, From-tag)."""

    decisions: dict[str, CallAuthDecision] = field(default_factory=dict)
    default: CallAuthDecision = field(
        default_factory=lambda: CallAuthDecision(AuthOutcome.UNKNOWN_SUBSCRIBER, tenant="t1")
    )
    delay_s: float = 0.0
    is_healthy: bool = True
    calls: list[CallAuthRequest] = field(default_factory=list)

    async def authorize(self, request: CallAuthRequest) -> CallAuthDecision:
        self.calls.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self.decisions.get(request.caller, self.default)

    async def healthy(self) -> bool:
        return self.is_healthy

    def calls_for(self, call_id: str) -> int:
        return sum(1 for call in self.calls if call.call_id == call_id)


def authorized(seconds: int, reservation: str, route: str | None = None) -> CallAuthDecision:
    return CallAuthDecision(
        AuthOutcome.AUTHORIZED,
        max_duration_s=seconds,
        reservation_id=reservation,
        route_uri=route,
        tenant="t1",
    )
