"""Call end, mid-call re-authorisation and auto-end of SIP calls, committed through the ledger.

A redirect server never sees the BYE, so the proxy reports the call's end (answered duration,
cause) and, for long calls, re-authorises (seconds used so far → a new allowed duration). Each
report is one ledger ``credit_control`` call on the call's session: the used seconds since the
last commit, split at tariff boundaries (``balance.legs.time_legs``, the call placed on the
clock as ending now), committed; for an end, the rest of the hold released and the session
closed. A call with no end event by its granted time + grace is committed in full by the
sweeper ("auto-end", see ``sweeper``).

Exactly once, across retries, server processes and the sweeper: a change is first claimed in
the call record (``records``: compare-and-set of an intent), then applied to the ledger under an
operation id fixed by the intent (``…:u<used_s>``, ``…:end``, ``…:auto-end``), then recorded.
Whoever finds an unfinished intent completes that same intent; the ledger turns a second
application into a replay of the stored result. The first end (reported or auto) wins; a later
different one gets 409 with what was charged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from balance.errors import LedgerUnavailable, Outcome
from balance.ledger import Ledger, content_digest
from balance.legs import time_legs
from ocs.charging.context import sip_context
from ocs.charging.directory import TenantDirectory
from ocs.sip_charging.policy import PENDING_RETRY_S, CallPolicy
from ocs.sip_charging.pricing import call_item, rate_call, requested_seconds
from ocs.sip_charging.records import CallRecord, Ended, Intent, IntentKind
from ocs.sip_charging.reservation import CallRef, parse_reservation
from ocs.sip_charging.store import CallStore, Stored
from tariffs.model import SUSPENDED
from tariffs.rating import Rating

Log = structlog.typing.FilteringBoundLogger

CALL_SECONDS_MAX = 7 * 86400  # a reported duration beyond a week is refused as implausible
CAUSE_BYTES_MAX = 64
SWAP_ATTEMPTS_MAX = 8
AUTO_END_CAUSE = "auto-end"

Decide = Callable[[CallRecord], Intent | None]


class CallNotFound(Exception):
    """No such call (never authorized here, or ended longer ago than the record TTL)."""


class CallConflict(Exception):
    """The request contradicts what is recorded (another end, a used_s going backwards)."""

    def __init__(self, message: str, answer: dict[str, Any]) -> None:
        super().__init__(message)
        self.answer = answer


class CallAccounting:
    def __init__(
        self,
        directory: TenantDirectory,
        policy: CallPolicy,
        *,
        clock: Callable[[], float],
        log: Log,
        on_closed: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = directory
        self.policy = policy
        self.clock = clock
        self.log = log
        self.on_closed = on_closed

    # -- public operations ---------------------------------------------------------------------

    async def end(self, reservation: str, duration_s: int, cause: str) -> dict[str, Any]:
        """Commit the call's ``duration_s`` (answered time) and close it; the stored answer for
        a repeat. ``InvalidReservation``, ``CallNotFound``, ``CallConflict``, ``LedgerUnavailable``.
        """
        check_seconds("duration_s", duration_s)
        ref = parse_reservation(reservation)
        now = int(self.clock())

        def decide(record: CallRecord) -> Intent | None:
            if record.ended is not None:
                return None
            return Intent(IntentKind.END, duration_s, now, cause)

        stored, applied = await self._change(ref, decide)
        record = stored.record
        answer = end_answer(ref, record, replayed=not applied)
        ended = record.ended
        assert ended is not None
        if ended.kind is not IntentKind.END or ended.duration_s != duration_s:
            raise CallConflict("the call has already ended with another result", answer)
        return answer

    async def reauth(self, reservation: str, used_s: int) -> dict[str, Any]:
        """Commit the seconds used so far (``used_s`` counts from the answer) and reserve
        again; the new ``max_duration_s`` counts from now."""
        check_seconds("used_s", used_s)
        ref = parse_reservation(reservation)
        now = int(self.clock())

        def decide(record: CallRecord) -> Intent | None:
            if record.ended is not None or record.reauth_used_s == used_s:
                return None
            if used_s < record.committed_s:
                raise CallConflict(
                    f"used_s {used_s} is less than the {record.committed_s} s already reported",
                    reauth_answer(ref, record, replayed=True),
                )
            return Intent(IntentKind.REAUTH, used_s, now)

        stored, applied = await self._change(ref, decide)
        record = stored.record
        answer = reauth_answer(ref, record, replayed=not applied)
        if record.ended is not None:
            raise CallConflict("the call has already ended", end_answer(ref, record, True))
        if record.reauth_used_s != used_s:
            raise CallConflict("a later re-authorisation was recorded", answer)
        return answer

    async def sweep_tenant(self, tenant: str, now_s: float) -> int:
        """Auto-end the tenant's overdue calls and finish stalled changes; returns how many
        calls were auto-ended."""
        ledger = await self.directory.ledger(tenant)
        store = self._store(ledger, tenant)
        ended = 0
        for reservation in await store.due(now_s):
            try:
                ended += await self._sweep_one(store, tenant, reservation, now_s)
            except LedgerUnavailable:
                raise  # Redis is gone: the next sweep tries again
            except Exception as exc:
                # One call that cannot be finished (e.g. its destination is no longer rated)
                # must not hold up the others; it stays due and is logged on every sweep.
                self.log.error("sip_auto_end_call_failed", reservation=reservation, error=repr(exc))
        return ended

    async def _sweep_one(
        self, store: CallStore, tenant: str, reservation: str, now_s: float
    ) -> bool:
        try:
            ref = parse_reservation(reservation)
        except ValueError:
            ref = None
        if ref is None or ref.tenant != tenant:
            await store.forget_due(reservation)
            return False

        def decide(record: CallRecord) -> Intent | None:
            if record.ended is not None:
                return None
            if now_s < record.grant_until_s + self.policy.grace_s:
                return None  # re-authorised meanwhile: not due any more
            total = record.committed_s + record.granted_s
            return Intent(IntentKind.AUTO_END, total, record.grant_until_s, AUTO_END_CAUSE)

        try:
            stored, applied = await self._change(ref, decide)
        except CallNotFound:
            await store.forget_due(reservation)
            return False
        final = stored.record.ended
        if final is None:
            return False
        await store.forget_due(reservation)  # ended before: no index entry left behind
        return applied and final.kind is IntentKind.AUTO_END

    # -- the claim / apply / record cycle ------------------------------------------------------

    def _store(self, ledger: Ledger, tenant: str) -> CallStore:
        return CallStore(
            ledger.client, tenant, record_ttl_s=self.policy.record_ttl_s, guard=ledger.access
        )

    async def _change(self, ref: CallRef, decide: Decide) -> tuple[Stored, bool]:
        """Finish any unfinished change of the call, then claim and apply ``decide``'s intent
        (None: nothing to do). Returns the record as it stands afterwards, and whether this
        call applied an intent of its own."""
        if ref.tenant not in self.directory.snapshot.tenants:
            raise CallNotFound(f"no tenant {ref.tenant!r}")
        ledger = await self.directory.ledger(ref.tenant)
        store = self._store(ledger, ref.tenant)
        applied = False
        for _ in range(SWAP_ATTEMPTS_MAX):
            stored = await store.get(ref)
            if stored is None or stored.record.subscriber != ref.subscriber:
                raise CallNotFound(f"no call {ref.reservation_id}")
            if stored.record.pending is not None:
                await self._complete(ledger, store, ref, stored)
                continue
            intent = decide(stored.record)
            if intent is None:
                return stored, applied
            claimed = await store.swap(
                ref,
                stored,
                msgspec.structs.replace(stored.record, pending=intent),
                int(self.clock()) + PENDING_RETRY_S,
            )
            if claimed is not None:
                await self._complete(ledger, store, ref, claimed)
                applied = True
        raise LedgerUnavailable(f"call {ref.reservation_id} keeps changing under us")

    async def _complete(
        self, ledger: Ledger, store: CallStore, ref: CallRef, stored: Stored
    ) -> None:
        """Apply the record's pending intent to the ledger and record the outcome."""
        record = stored.record
        intent = record.pending
        assert intent is not None
        snapshot = self.directory.snapshot
        rater = snapshot.rater
        profile = snapshot.tenants.get(ref.tenant)
        # A suspended tenant's call still has its used seconds committed, but no new allowance.
        suspended = profile is not None and profile.status is SUSPENDED

        plan = snapshot.plan_of(ref.tenant, ref.subscriber)

        def rate_at(at_s: int) -> Rating:
            return rate_call(rater, ref.tenant, record.callee, at_s, plan)

        rating = rate_at(intent.at_s)
        if intent.kind is IntentKind.AUTO_END:
            new_seconds = record.granted_s
        else:
            new_seconds = max(0, intent.seconds - record.committed_s)
        legs = time_legs(new_seconds, intent.at_s, rate_at)
        reauth = intent.kind is IntentKind.REAUTH
        requested = (
            requested_seconds(rating, self.policy.call_duration_max_s)
            if reauth and not suspended
            else 0
        )
        valid_until = intent.at_s + requested + self.policy.grace_s + self.policy.expiry_margin_s
        item = call_item(
            rating,
            requested_s=requested,
            valid_until_s=float(valid_until),
            used=legs,
            terminate=not reauth,
        )
        step = f"u{intent.seconds}" if reauth else intent.kind.value
        result = await ledger.credit_control(
            ref.subscriber,
            ref.session_id,
            ref.op_id(step),
            [item],
            now_s=intent.at_s,
            digest=content_digest("sip", step, intent.seconds, intent.at_s),
            context=(
                sip_context(
                    profile,
                    subscriber=record.subscriber,
                    caller=record.caller,
                    callee=record.callee,
                    started_at_s=record.authorized_at_s,
                    call_key=record.key,
                    rate_card_version=rating.version,
                )
                if profile is not None
                else None
            ),
        )
        outcome = result.items[0]
        changed = msgspec.structs.replace(
            record,
            pending=None,
            committed_s=record.committed_s + outcome.used_units,
            retail=record.retail + outcome.retail,
            wholesale=record.wholesale + outcome.wholesale,
            leakage_s=record.leakage_s + outcome.leakage_units,
            leakage_money=record.leakage_money + outcome.leakage_money,
            balance=result.balance,
            held_money=result.held_money,
        )
        deadline: int | None
        if reauth:
            granted = outcome.granted_units if outcome.outcome is Outcome.OK else 0
            code = outcome.outcome.result_code
            if suspended:
                code = Outcome.END_USER_SERVICE_DENIED.result_code
            elif outcome.outcome is Outcome.OK and granted <= 0:
                code = Outcome.CREDIT_LIMIT_REACHED.result_code
            changed = msgspec.structs.replace(
                changed,
                committed_s=max(record.committed_s, intent.seconds),
                granted_s=granted,
                grant_from_s=intent.at_s,
                reauth_used_s=intent.seconds,
                reauth_granted_s=granted,
                reauth_result=code,
            )
            deadline = intent.at_s + granted + self.policy.grace_s
        else:
            changed = msgspec.structs.replace(
                changed,
                granted_s=0,
                ended=Ended(intent.kind, intent.seconds, intent.cause, intent.at_s),
            )
            deadline = None
        swapped = await store.swap(ref, stored, changed, deadline)
        if swapped is None:
            return  # someone else recorded the same outcome first
        self.log.info(
            "sip_call_" + intent.kind.value.replace("-", "_"),
            tenant=ref.tenant,
            subscriber=ref.subscriber,
            reservation=ref.reservation_id,
            seconds=intent.seconds,
            committed_s=outcome.used_units,
            retail=outcome.retail,
            replayed=result.replayed,
        )
        if not reauth and self.on_closed is not None:
            self.on_closed(ref.tenant)


def check_seconds(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer number of seconds")
    if not 0 <= value <= CALL_SECONDS_MAX:
        raise ValueError(f"{name} must be 0 to {CALL_SECONDS_MAX} seconds")


def _totals(ref: CallRef, record: CallRecord) -> dict[str, Any]:
    return {
        "reservation": ref.reservation_id,
        "tenant": ref.tenant,
        "subscriber": ref.subscriber,
        "charged_s": record.committed_s,
        "retail": record.retail,
        "wholesale": record.wholesale,
        "leakage_s": record.leakage_s,
        "leakage_money": record.leakage_money,
        "balance": record.balance,
        "held_money": record.held_money,
    }


def end_answer(ref: CallRef, record: CallRecord, replayed: bool) -> dict[str, Any]:
    ended = record.ended
    assert ended is not None
    return {
        **_totals(ref, record),
        "state": "ended",
        "ended_by": ended.kind.value,
        "duration_s": ended.duration_s,
        "cause": ended.cause,
        "ended_at": ended.at_s,
        "replayed": replayed,
    }


def reauth_answer(ref: CallRef, record: CallRecord, replayed: bool) -> dict[str, Any]:
    return {
        **_totals(ref, record),
        "state": "ended" if record.ended is not None else "open",
        "used_s": record.reauth_used_s,
        "max_duration_s": record.reauth_granted_s,
        "result": record.reauth_result,
        "replayed": replayed,
    }
