"""CCR-EVENT (RFC 4006 §6.3–6.5): one-shot charging, typically SMS on 32274.

- DIRECT_DEBITING: the requested units (RSU, else USU, else the service's default grant) are
  debited at once, all or nothing: 2001 with the units granted, or 4012 (4010 when blocked).
- REFUND_ACCOUNT: refers to the DIRECT_DEBITING event of the same Session-Id (MSCC by
  position) within the tenant's idempotency window; the units asked (capped at what is left of
  that debit) go back with their share of its money and bucket units, never more than it took.
  No such debit, or nothing left of it: 5002 DIAMETER_UNKNOWN_SESSION_ID.
- CHECK_BALANCE: Check-Balance-Result ENOUGH_CREDIT when buckets of the eligible kinds or money
  cover the requested units, NO_CREDIT otherwise; nothing is reserved.
- PRICE_ENQUIRY: Cost-Information with the retail price of the requested units; nothing moves.

A suspended tenant's events never get here but for REFUND_ACCOUNT: the handler answers the
others 4010 before any rating or ledger work (``credit_control._refused_while_suspended``).

Direct debiting of every MSCC of an event is ONE ledger call (``Ledger.debit_many``, op id
``Session-Id:Number``): each MSCC all or nothing, so one MSCC's 4012 leaves the others debited,
and a retransmitted event is answered from the stored outcome and never debited twice.

An SMS to several recipients (one Recipient-Info each) is charged per recipient, each by its own
destination: one ledger leg per recipient, so the message is paid for every recipient or for
none. The requested units (RSU, else USU, else the service's default grant) are per recipient;
the answer grants their sum. (A refund is still one ledger call per MSCC: refunds are rare.)
"""

from __future__ import annotations

from collections.abc import Awaitable

import msgspec
import structlog

from balance.errors import AccountBlocked, LegacyDigestFound, NoRefundableDebit
from balance.records import DebitItem, DebitItemResult, DebitManyResult, OnExhaust, UsedLeg
from diameter_apps.codes import ResultCode
from diameter_apps.credit_control import (
    CheckBalanceResult,
    CreditControlAnswer,
    CreditControlRequest,
    RequestedAction,
    ServiceAnswer,
    ServiceRequest,
    ccr_digest,
    legacy_ccr_digest,
)
from ocs.charging.cc_answers import event_answer
from ocs.charging.context import encoded_ccr_context
from ocs.charging.directory import TenantDirectory
from ocs.charging.units import granted, requested_amount, used_amount
from ocs.charging.usage import RequestRater
from tariffs.errors import RatingError
from tariffs.price import retail
from tariffs.rating import Rating
from tariffs.subscribers import SubscriberRef

Log = structlog.typing.FilteringBoundLogger


class _Priced(msgspec.Struct):
    """One MSCC of the event: its rating (the first recipient's), units in all, and its legs
    (one per recipient; none when it could not be rated)."""

    service: ServiceRequest
    rating: Rating | None
    units: int
    failure: int | None = None
    legs: tuple[UsedLeg, ...] = ()

    def retail(self) -> int:
        return sum(retail(leg.price, leg.units) for leg in self.legs)


class EventCharging:
    def __init__(self, directory: TenantDirectory, *, log: Log) -> None:
        self.directory = directory
        self.log = log

    def _price(self, ccr: CreditControlRequest, ref: SubscriberRef, now: int) -> list[_Priced]:
        request_rater = RequestRater(self.directory.snapshot.rater, ccr, ref.tenant, ref.plan)
        services = ccr.services or (ServiceRequest(from_mscc=False),)
        recipients = ccr.sms.recipient_addresses if ccr.sms is not None else ()
        priced: list[_Priced] = []
        for service in services:
            try:
                rating = request_rater.rate(service, now)
                # Several recipients: each is rated by its own destination (any one unratable
                # refuses the MSCC: the message cannot go to part of its recipients unpaid).
                ratings = (
                    [rating, *(request_rater.rate(service, now, to) for to in recipients[1:])]
                    if len(recipients) > 1
                    else [rating]
                )
            except RatingError as exc:
                priced.append(_Priced(service, None, 0, int(exc.result_code)))
                continue
            units = requested_amount(service.requested, rating.unit)
            if not units and service.used:
                units = sum(used_amount(u.units, rating.unit) for u in service.used)
            if not units:
                units = rating.default_grant_units
            legs = tuple(UsedLeg(r.price_key, units, r.price) for r in ratings)
            priced.append(_Priced(service, rating, units * len(legs), legs=legs))
        return priced

    async def answer(
        self, ccr: CreditControlRequest, ref: SubscriberRef, now: int
    ) -> CreditControlAnswer:
        action = ccr.requested_action or RequestedAction.DIRECT_DEBITING
        priced = self._price(ccr, ref, now)
        if action is RequestedAction.PRICE_ENQUIRY:
            return self._price_enquiry(ref, priced)
        if action is RequestedAction.CHECK_BALANCE:
            return await self._check_balance(ref, priced, now)
        if action is RequestedAction.REFUND_ACCOUNT:
            return await self._refund(ccr, ref, priced, now)
        return await self._debit(ccr, ref, priced, now)

    async def _debit(
        self, ccr: CreditControlRequest, ref: SubscriberRef, priced: list[_Priced], now: int
    ) -> CreditControlAnswer:
        """DIRECT_DEBITING: every rated MSCC in one ledger call, each all or nothing."""
        payable = [item for item in priced if item.rating is not None]
        outcomes: dict[int, DebitItemResult] = {}
        if payable:
            ledger = await self.directory.ledger(ref.tenant)

            def debit(digest: str) -> Awaitable[DebitManyResult]:
                return ledger.debit_many(
                    ref.subscriber_id,
                    f"{ccr.session_id}:{ccr.request_number}",
                    [_debit_item(item) for item in payable],
                    now_s=now,
                    session_id=ccr.session_id,
                    digest=digest,
                    refund_refs=[
                        _debit_ref(ccr.session_id, index)
                        for index, item in enumerate(priced)
                        if item.rating is not None
                    ],
                    context=self._context(ccr, ref, payable, now),
                )

            try:
                try:
                    result = await debit(ccr_digest(ccr.message))
                except LegacyDigestFound:
                    # Stored under an earlier release's digest: a retransmission across the
                    # upgrade replays, a conflict stays one (fingerprint.py).
                    result = await debit(legacy_ccr_digest(ccr.message))
            except AccountBlocked:
                denied = [_refused(p.service, _denied_code(p)) for p in priced]
                return event_answer(_event_code(ccr, denied), tuple(denied))
            outcomes = {id(item): r for item, r in zip(payable, result.debit.items, strict=True)}
        answers: list[ServiceAnswer] = []
        for item in priced:
            outcome = outcomes.get(id(item))
            if item.rating is None or outcome is None:
                answers.append(_refused(item.service, item.failure or ResultCode.RATING_FAILED))
            elif outcome.debited:
                answers.append(_granted(item.service, item.units, item.rating))
            else:
                answers.append(_refused(item.service, ResultCode.CREDIT_LIMIT_REACHED))
        return event_answer(_event_code(ccr, answers), tuple(answers))

    async def _refund(
        self, ccr: CreditControlRequest, ref: SubscriberRef, priced: list[_Priced], now: int
    ) -> CreditControlAnswer:
        """REFUND_ACCOUNT: each MSCC gives back what the same Session-Id's DIRECT_DEBITING took
        for the MSCC at its position, never more (a call per MSCC)."""
        answers: list[ServiceAnswer] = []
        ledger = await self.directory.ledger(ref.tenant)
        context = self._context(ccr, ref, priced, now)
        for index, item in enumerate(priced):
            service = item.service
            if item.rating is None:
                answers.append(_refused(service, item.failure or ResultCode.RATING_FAILED))
                continue
            rating = item.rating
            op_id = f"{ccr.session_id}:{ccr.request_number}:{index}"
            # A refund names its debit: the DIRECT_DEBITING event of the same Session-Id, the
            # MSCC at the same position.
            try:
                refunded = await ledger.refund_debit(
                    ref.subscriber_id,
                    op_id,
                    debit_ref=_debit_ref(ccr.session_id, index),
                    units=item.units,
                    now_s=now,
                    session_id=ccr.session_id,
                    service=rating.service,
                    rating_group=service.rating_group or 0,
                    context=context,
                )
            except NoRefundableDebit:
                answers.append(_refused(service, ResultCode.UNKNOWN_SESSION_ID))
                continue
            answers.append(_granted(service, refunded.units, rating))
        return event_answer(_event_code(ccr, answers), tuple(answers))

    def _context(
        self, ccr: CreditControlRequest, ref: SubscriberRef, priced: list[_Priced], now: int
    ) -> bytes:
        """One record context for the event's records (built only when something is charged)."""
        version = next((p.rating.version for p in priced if p.rating is not None), "")
        return encoded_ccr_context(
            ccr,
            ref,
            self.directory.snapshot.tenants[ref.tenant],
            rate_card_version=version,
            started_at_s=ccr.event_timestamp_s or now,
        )

    def _price_enquiry(self, ref: SubscriberRef, priced: list[_Priced]) -> CreditControlAnswer:
        failures = [p for p in priced if p.rating is None]
        if failures:
            return event_answer(failures[0].failure or ResultCode.RATING_FAILED)
        total = sum(p.retail() for p in priced)
        return event_answer(
            ResultCode.SUCCESS, cost_information=self.directory.cost(ref.tenant, total)
        )

    async def _check_balance(
        self, ref: SubscriberRef, priced: list[_Priced], now: int
    ) -> CreditControlAnswer:
        failures = [p for p in priced if p.rating is None]
        if failures:
            return event_answer(failures[0].failure or ResultCode.RATING_FAILED)
        ledger = await self.directory.ledger(ref.tenant)
        account = await ledger.query(ref.subscriber_id)
        if account.state_code == 1:
            return event_answer(
                ResultCode.END_USER_SERVICE_DENIED,
                check_balance_result=CheckBalanceResult.NO_CREDIT,
            )
        money = account.balance + account.credit_limit
        enough = True
        for item in priced:
            assert item.rating is not None
            rating = item.rating
            covered = sum(
                b.remaining
                for b in account.buckets
                if b.kind in rating.bucket_kinds and b.unit != "money" and b.live(now)
            )
            money += sum(
                b.remaining
                for b in account.buckets
                if b.kind in rating.bucket_kinds and b.unit == "money" and b.live(now)
            )
            cost = 0
            missing = False
            for leg in item.legs:  # in order, as the debit draws: buckets first, then money
                need = leg.units - min(covered, leg.units)
                covered -= leg.units - need
                if need:
                    missing = True
                    cost += retail(leg.price, need)
            if missing:
                if rating.on_exhaust != "payg":
                    enough = False
                    continue
                if cost > money:
                    enough = False
                money -= cost
        return event_answer(
            ResultCode.SUCCESS,
            check_balance_result=(
                CheckBalanceResult.ENOUGH_CREDIT if enough else CheckBalanceResult.NO_CREDIT
            ),
        )


def _debit_ref(session_id: str, index: int) -> str:
    """What a REFUND_ACCOUNT of MSCC ``index`` refers to: that MSCC of the session's debit."""
    return f"{session_id}:{index}"


def _debit_item(item: _Priced) -> DebitItem:
    rating = item.rating
    assert rating is not None
    return DebitItem(
        service=rating.service,
        rating_group=item.service.rating_group or 0,
        legs=item.legs,
        kinds=rating.bucket_kinds,
        on_exhaust=OnExhaust(rating.on_exhaust),
        block_kinds=rating.block_kinds,
    )


def _denied_code(item: _Priced) -> int:
    """An MSCC's code when the account is blocked: 4010, or its own rating failure."""
    if item.rating is None:
        return item.failure or ResultCode.RATING_FAILED
    return ResultCode.END_USER_SERVICE_DENIED


def _granted(service: ServiceRequest, units: int, rating: Rating) -> ServiceAnswer:
    return ServiceAnswer(
        result_code=ResultCode.SUCCESS,
        rating_group=service.rating_group,
        service_identifier=service.service_identifier,
        granted=granted(units, rating.unit),
    )


def _refused(service: ServiceRequest, code: int) -> ServiceAnswer:
    return ServiceAnswer(
        result_code=code,
        rating_group=service.rating_group,
        service_identifier=service.service_identifier,
    )


def _event_code(ccr: CreditControlRequest, answers: list[ServiceAnswer]) -> int:
    if not ccr.has_mscc and answers:
        return answers[0].result_code
    if answers and all(a.result_code != ResultCode.SUCCESS for a in answers):
        return answers[0].result_code
    return ResultCode.SUCCESS
