"""Group members draw from their group's shared bucket while they use the service.

A session request of a group member is charged as anyone's first (one ``ccr.lua`` call). When
that call could not grant what an MSCC asked for and the MSCC may be paid by the pool's bucket
kind, the server, before answering:

1. draws the grant size from the pool (``balance.shared.draw_shared``: the group's slot, then
   a bucket on the member's account; capped by the pool and the member's cap), op id = the
   CCR's own op id (``Session-Id:CC-Request-Number``);
2. charges the short MSCCs again on the member's account: the same items without their used
   units (already committed by the first call), op id ``<CCR op id>:share``; the old hold is
   released and the grant reserved from the member's buckets, now holding the drawn units.

Every call is idempotent on an op id derived from the CCR's, so a retransmitted CCR replays
each step and draws once. A subscriber who is in no group pays one dict lookup
(``GroupMembers.get``) and not one Redis call more. Which subscribers are members is kept in
memory like their plans: the tenant's member index (``balance.keys.membership_key``) is read
at start and on every resync, and a ``group`` notice re-reads the tenant's index.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import msgspec
import structlog

from balance.errors import Outcome, UnknownAccount
from balance.ledger import Ledger
from balance.records import CcrResult, RatingGroupRequest
from balance.shared import Membership, draw_shared
from diameter_apps.credit_control import CcRequestType, CreditControlRequest

Log = structlog.typing.FilteringBoundLogger

# A fill or a membership change: servers re-read the tenant's member index.
GROUP_NOTICE = "group"
# The op id suffix of the second charge (the first is the CCR's own op id).
RECHARGE_SUFFIX = ":share"
# Outcomes a draw can help: a blocked or unknown account stays refused.
_DRAWABLE = (Outcome.OK, Outcome.CREDIT_LIMIT_REACHED)


class GroupMembers:
    """(tenant, MSISDN) -> the member's group and pool kind, for every tenant served."""

    def __init__(self) -> None:
        self._members: dict[tuple[str, str], Membership] = {}

    def get(self, tenant: str, subscriber: str) -> Membership | None:
        return self._members.get((tenant, subscriber))

    def replace(self, tenant: str, members: dict[str, Membership]) -> None:
        """The tenant's whole index (start, resync, notice); other tenants' are kept."""
        kept = {key: m for key, m in self._members.items() if key[0] != tenant}
        kept.update(((tenant, msisdn), m) for msisdn, m in members.items())
        self._members = kept

    def __len__(self) -> int:
        return len(self._members)


class MemberRequest(msgspec.Struct, frozen=True):
    """What the second charge repeats of a member's session request."""

    tenant: str
    subscriber: str
    session_id: str
    op_id: str
    digest: str
    request_kind: CcRequestType
    request_number: int
    now: int
    context: bytes

    @classmethod
    def of(
        cls,
        ccr: CreditControlRequest,
        tenant: str,
        subscriber: str,
        digest: str,
        now: int,
        context: bytes,
    ) -> MemberRequest:
        return cls(
            tenant,
            subscriber,
            ccr.session_id,
            f"{ccr.session_id}:{ccr.request_number}",  # the first charge's op id
            digest,
            ccr.request_type,
            ccr.request_number,
            now,
            context,
        )


def short_items(
    membership: Membership, items: Sequence[RatingGroupRequest], outcome: CcrResult
) -> list[int]:
    """Positions of the items the first charge granted less than asked and the pool's kind
    may pay (pure)."""
    return [
        position
        for position, (item, result) in enumerate(zip(items, outcome.items, strict=False))
        if item.requested_units > 0
        and result.granted_units < item.requested_units
        and result.outcome in _DRAWABLE
        and membership.kind in item.kinds
    ]


async def charge_member(
    first: Awaitable[CcrResult],
    ledger_for: Callable[[str], Awaitable[Ledger]],
    membership: Membership,
    request: MemberRequest,
    items: Sequence[RatingGroupRequest],
    log: Log,
) -> CcrResult:
    """The first charge's outcome, or, when it fell short for the pool's kind, the outcome
    after a draw from the group and a second charge (see the module docstring)."""
    outcome = await first
    short = short_items(membership, items, outcome)
    if not short:
        return outcome
    ledger = await ledger_for(request.tenant)
    try:
        draw = await draw_shared(
            ledger,
            membership.group,
            request.subscriber,
            sum(items[position].requested_units for position in short),
            now_s=request.now,
            op_id=request.op_id,
            context=request.context,
        )
    except UnknownAccount as exc:
        # The group was dropped or refilled without this member since the index was read.
        log.info("shared_draw_refused", group=membership.group, reason=str(exc))
        return outcome
    if draw.units <= 0:
        return outcome  # the pool or the member's cap is used up: the first answer stands
    again = await ledger.credit_control(
        request.subscriber,
        request.session_id,
        request.op_id + RECHARGE_SUFFIX,
        [msgspec.structs.replace(items[position], used=()) for position in short],
        now_s=request.now,
        digest=request.digest,
        **_session_rule(request, outcome),
        context=request.context,
    )
    merged = list(outcome.items)
    for position, result in zip(short, again.items, strict=True):
        merged[position] = result
    return msgspec.structs.replace(
        outcome, items=tuple(merged), balance=again.balance, held_money=again.held_money
    )


def _session_rule(request: MemberRequest, outcome: CcrResult) -> dict[str, int]:
    """The second charge's session check: a CCR-I the first charge refused left no session
    (open it now, as a CCR-I); otherwise the session is open and the CC-Request-Number was
    taken by the first charge (-1: not checked again)."""
    opened = any(result.outcome is Outcome.OK for result in outcome.items)
    if request.request_kind is CcRequestType.INITIAL and not opened:
        return {"request_kind": int(CcRequestType.INITIAL), "request_number": -1}
    return {"request_kind": int(CcRequestType.UPDATE), "request_number": -1}
