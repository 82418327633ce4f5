"""The ledger-backed ``CreditAuthorizer``: caller → subscriber, callee → price, one reservation.

Per INVITE: the caller number resolves tenant and subscriber (unknown → 404/5030), the callee
is rated as voice (no rate → 404/5031), and ONE ledger ``credit_control`` call reserves up to
the longest allowed call, capped by what the account covers. The operation id derives from
(tenant, Call-ID, From-tag) and the digest from what the INVITE asked, so a retransmission, a
restarted server or another process gets the stored outcome and never reserves twice; an
authorized call also leaves a call record, and a later replay is answered from it without
touching the ledger at all.

A suspended tenant (catalog ``status: suspended``) gets 403 / 4010 for a new call before any
ledger session is opened. Refusals (no credit, blocked) close the ledger session they opened,
so refused attempts do not pile up against the subscriber's open-session limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from balance.errors import (
    LedgerError,
    LedgerUnavailable,
    LimitExceeded,
    OperationConflict,
    Outcome,
    UnknownAccount,
)
from balance.ledger import Ledger, content_digest
from ocs.charging.context import sip_context
from ocs.charging.directory import TenantDirectory
from ocs.sip.authorizer import AuthOutcome, CallAuthDecision, CallAuthRequest
from ocs.sip.redirect import ResultCode
from ocs.sip_charging.policy import CallPolicy
from ocs.sip_charging.pricing import call_item, rate_call, requested_seconds
from ocs.sip_charging.records import CallRecord
from ocs.sip_charging.reservation import CallRef, call_ref
from ocs.sip_charging.store import CallStore
from tariffs.errors import RatingError
from tariffs.model import SUSPENDED
from tariffs.rating import Rating

Log = structlog.typing.FilteringBoundLogger


class LedgerAuthorizer:
    """``ocs.sip.CreditAuthorizer`` over the tenant directory and its ledgers."""

    def __init__(
        self,
        directory: TenantDirectory,
        policy: CallPolicy,
        *,
        clock: Callable[[], float],
        ping: Callable[[], Awaitable[Any]],
        log: Log,
    ) -> None:
        self.directory = directory
        self.policy = policy
        self.clock = clock
        self._ping = ping
        self.log = log

    async def healthy(self) -> bool:
        """OPTIONS 200 only while the ledger's Redis answers PING."""
        try:
            return bool(await self._ping())
        except Exception:
            return False

    async def authorize(self, request: CallAuthRequest) -> CallAuthDecision:
        snapshot = self.directory.snapshot
        subscriber = snapshot.by_msisdn(request.caller)
        if subscriber is None:
            return CallAuthDecision(AuthOutcome.UNKNOWN_SUBSCRIBER)
        tenant = subscriber.tenant
        call = call_ref(tenant, subscriber.subscriber_id, request.call_id, request.from_tag)
        try:
            ledger = await self.directory.ledger(tenant)
            store = CallStore(
                ledger.client, tenant, record_ttl_s=self.policy.record_ttl_s, guard=ledger.access
            )
            stored = await store.get(call)
            if stored is not None:
                if stored.record.ended is not None:
                    # The call ended already: a new INVITE must use a new Call-ID or From-tag.
                    return CallAuthDecision(
                        AuthOutcome.BLOCKED, tenant=tenant, result_code=ResultCode.INVALID_AVP_VALUE
                    )
                return self._authorized(call, stored.record)
            if snapshot.tenants[tenant].status is SUSPENDED:
                # A new call of a suspended tenant: refused before any ledger work. (A replayed
                # INVITE of a call authorized before the suspension got its 302 again above:
                # that call may be up, and its end still settles through the call record.)
                self.log.info("sip_tenant_suspended", tenant=tenant, call_id=request.call_id)
                return CallAuthDecision(AuthOutcome.BLOCKED, tenant=tenant)
            now = int(self.clock())
            try:
                rating = rate_call(snapshot.rater, tenant, request.callee, now, subscriber.plan)
            except RatingError as exc:
                self.log.info("sip_not_rated", tenant=tenant, callee=request.callee, why=str(exc))
                return CallAuthDecision(AuthOutcome.NOT_RATED, tenant=tenant)
            return await self._reserve(ledger, store, call, request, rating, now)
        except LedgerUnavailable as exc:
            self.log.warning("sip_ledger_unavailable", tenant=tenant, error=str(exc))
            return CallAuthDecision(AuthOutcome.UNAVAILABLE, tenant=tenant)
        except OperationConflict:
            # Same Call-ID and From-tag, different caller or callee: a broken client.
            return CallAuthDecision(
                AuthOutcome.BLOCKED, tenant=tenant, result_code=ResultCode.INVALID_AVP_VALUE
            )
        except UnknownAccount:
            return CallAuthDecision(AuthOutcome.UNKNOWN_SUBSCRIBER, tenant=tenant)
        except LimitExceeded:
            # Too many calls of this subscriber at once (the ledger's open-session limit).
            return CallAuthDecision(AuthOutcome.BLOCKED, tenant=tenant, result_code=5006)

    async def _reserve(
        self,
        ledger: Ledger,
        store: CallStore,
        call: CallRef,
        request: CallAuthRequest,
        rating: Rating,
        now: int,
    ) -> CallAuthDecision:
        requested = requested_seconds(rating, self.policy.call_duration_max_s)
        # The ledger may void the hold only after the auto-end sweeper had its turn.
        valid_until = now + requested + self.policy.grace_s + self.policy.expiry_margin_s
        item = call_item(rating, requested_s=requested, valid_until_s=float(valid_until))
        result = await ledger.credit_control(
            call.subscriber,
            call.session_id,
            call.op_id("invite"),
            [item],
            now_s=now,
            digest=content_digest("sip-invite", call.subscriber, request.callee),
            context=sip_context(
                self.directory.snapshot.tenants[call.tenant],
                subscriber=call.subscriber,
                caller=request.caller,
                callee=request.callee,
                started_at_s=now,
                call_key=call.key,
                rate_card_version=rating.version,
            ),
        )
        outcome = result.items[0]
        if outcome.outcome is Outcome.UNKNOWN_ACCOUNT:
            return CallAuthDecision(AuthOutcome.UNKNOWN_SUBSCRIBER, tenant=call.tenant)
        if outcome.outcome is Outcome.END_USER_SERVICE_DENIED:
            await self._close_refused(ledger, call, rating, now)
            return CallAuthDecision(AuthOutcome.BLOCKED, tenant=call.tenant)
        if outcome.outcome is not Outcome.OK or outcome.granted_units <= 0:
            await self._close_refused(ledger, call, rating, now)
            return CallAuthDecision(AuthOutcome.INSUFFICIENT_CREDIT, tenant=call.tenant)
        granted = outcome.granted_units
        record = CallRecord(
            tenant=call.tenant,
            subscriber=call.subscriber,
            key=call.key,
            caller=request.caller,
            callee=request.callee,
            authorized_at_s=now,
            max_duration_s=granted,
            route_uri=self.policy.route(
                callee=request.callee, caller=request.caller, tenant=call.tenant
            ),
            granted_s=granted,
            grant_from_s=now,
            balance=result.balance,
            held_money=result.held_money,
        )
        stored = await store.open(call, record, now + granted + self.policy.grace_s)
        self.log.info(
            "sip_call_authorized",
            tenant=call.tenant,
            subscriber=call.subscriber,
            reservation=call.reservation_id,
            max_duration_s=stored.record.max_duration_s,
            replayed=result.replayed,
        )
        return self._authorized(call, stored.record)

    async def _close_refused(self, ledger: Ledger, call: CallRef, rating: Rating, now: int) -> None:
        """Forget the empty session a refused INVITE opened (best effort: the ledger drops idle
        empty sessions by itself after a day)."""
        item = call_item(rating, requested_s=0, valid_until_s=0.0, terminate=True)
        try:
            await ledger.credit_control(
                call.subscriber,
                call.session_id,
                call.op_id("refused"),
                [item],
                now_s=now,
                digest=content_digest("sip-refused"),
            )
        except LedgerError as exc:
            self.log.warning("sip_close_refused_failed", session=call.session_id, error=str(exc))

    @staticmethod
    def _authorized(call: CallRef, record: CallRecord) -> CallAuthDecision:
        return CallAuthDecision(
            AuthOutcome.AUTHORIZED,
            max_duration_s=record.max_duration_s,
            reservation_id=call.reservation_id,
            route_uri=record.route_uri,
            tenant=call.tenant,
        )
