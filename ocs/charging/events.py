"""CCR-EVENT (RFC 4006 §6.3–6.5): one-shot charging, typically SMS on 32274.

- DIRECT_DEBITING: the requested units (RSU, else USU, else the service's default grant) are
  debited at once, all or nothing: 2001 with the units granted, or 4012 (4010 when blocked).
- REFUND_ACCOUNT: the retail price of the reported units goes back to the balance.
- CHECK_BALANCE: Check-Balance-Result ENOUGH_CREDIT when buckets of the eligible kinds or money
  cover the requested units, NO_CREDIT otherwise; nothing is reserved.
- PRICE_ENQUIRY: Cost-Information with the retail price of the requested units; nothing moves.

A suspended tenant's events never get here but for REFUND_ACCOUNT: the handler answers the
others 4010 before any rating or ledger work (``credit_control._refused_while_suspended``).

Each MSCC of an event is its own ledger operation (op id ``Session-Id:Number:index``) so a
retransmitted event is answered from the stored outcome and never debited twice.
"""

from __future__ import annotations

import msgspec
import structlog

from balance.errors import AccountBlocked, InsufficientCredit
from balance.records import OnExhaust, UsedLeg
from diameter_apps.codes import ResultCode
from diameter_apps.credit_control import (
    CheckBalanceResult,
    CreditControlAnswer,
    CreditControlRequest,
    RequestedAction,
    ServiceAnswer,
    ServiceRequest,
    ccr_fingerprint,
)
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
    service: ServiceRequest
    rating: Rating | None
    units: int
    failure: int | None = None


class EventCharging:
    def __init__(self, directory: TenantDirectory, *, log: Log) -> None:
        self.directory = directory
        self.log = log

    def _price(self, ccr: CreditControlRequest, ref: SubscriberRef, now: int) -> list[_Priced]:
        request_rater = RequestRater(self.directory.snapshot.rater, ccr, ref.tenant)
        services = ccr.services or (ServiceRequest(from_mscc=False),)
        priced: list[_Priced] = []
        for service in services:
            try:
                rating = request_rater.rate(service, now)
            except RatingError as exc:
                priced.append(_Priced(service, None, 0, int(exc.result_code)))
                continue
            units = requested_amount(service.requested, rating.unit)
            if not units and service.used:
                units = sum(used_amount(u.units, rating.unit) for u in service.used)
            if not units:
                units = rating.default_grant_units
            priced.append(_Priced(service, rating, units))
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
        answers: list[ServiceAnswer] = []
        ledger = await self.directory.ledger(ref.tenant)
        digest = ccr_fingerprint(ccr.message).hex()
        # One context for the event's records (built only when something is charged).
        version = next((p.rating.version for p in priced if p.rating is not None), "")
        context = encoded_ccr_context(
            ccr,
            ref,
            self.directory.snapshot.tenants[ref.tenant],
            rate_card_version=version,
            started_at_s=ccr.event_timestamp_s or now,
        )
        for index, item in enumerate(priced):
            service = item.service
            if item.rating is None:
                answers.append(_refused(service, item.failure or ResultCode.RATING_FAILED))
                continue
            rating = item.rating
            op_id = f"{ccr.session_id}:{ccr.request_number}:{index}"
            if action is RequestedAction.REFUND_ACCOUNT:
                await ledger.refund(
                    ref.subscriber_id,
                    op_id,
                    amount=retail(rating.price, item.units),
                    reason="REFUND_ACCOUNT",
                    now_s=now,
                    session_id=ccr.session_id,
                    service=rating.service,
                    rating_group=service.rating_group or 0,
                    context=context,
                )
                answers.append(_granted(service, item.units, rating))
                continue
            try:
                await ledger.debit_event(
                    ref.subscriber_id,
                    op_id,
                    service=rating.service,
                    rating_group=service.rating_group or 0,
                    legs=(UsedLeg(rating.price_key, item.units, rating.price),),
                    kinds=rating.bucket_kinds,
                    on_exhaust=OnExhaust(rating.on_exhaust),
                    block_kinds=rating.block_kinds,
                    now_s=now,
                    session_id=ccr.session_id,
                    digest=f"{digest}:{index}",
                    context=context,
                )
            except InsufficientCredit:
                answers.append(_refused(service, ResultCode.CREDIT_LIMIT_REACHED))
                continue
            except AccountBlocked:
                answers.append(_refused(service, ResultCode.END_USER_SERVICE_DENIED))
                continue
            answers.append(_granted(service, item.units, rating))
        return CreditControlAnswer(result_code=_event_code(ccr, answers), services=tuple(answers))

    def _price_enquiry(self, ref: SubscriberRef, priced: list[_Priced]) -> CreditControlAnswer:
        failures = [p for p in priced if p.rating is None]
        if failures:
            return CreditControlAnswer(result_code=failures[0].failure or ResultCode.RATING_FAILED)
        total = sum(retail(p.rating.price, p.units) for p in priced if p.rating is not None)
        return CreditControlAnswer(
            result_code=ResultCode.SUCCESS, cost_information=self.directory.cost(ref.tenant, total)
        )

    async def _check_balance(
        self, ref: SubscriberRef, priced: list[_Priced], now: int
    ) -> CreditControlAnswer:
        failures = [p for p in priced if p.rating is None]
        if failures:
            return CreditControlAnswer(result_code=failures[0].failure or ResultCode.RATING_FAILED)
        ledger = await self.directory.ledger(ref.tenant)
        account = await ledger.query(ref.subscriber_id)
        if account.state_code == 1:
            return CreditControlAnswer(
                result_code=ResultCode.END_USER_SERVICE_DENIED,
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
            missing = max(0, item.units - covered)
            if missing:
                if rating.on_exhaust != "payg":
                    enough = False
                    continue
                cost = retail(rating.price, missing)
                if cost > money:
                    enough = False
                money -= cost
        return CreditControlAnswer(
            result_code=ResultCode.SUCCESS,
            check_balance_result=(
                CheckBalanceResult.ENOUGH_CREDIT if enough else CheckBalanceResult.NO_CREDIT
            ),
        )


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
