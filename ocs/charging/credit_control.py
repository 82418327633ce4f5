"""Credit-Control-Requests (application 4, command 272): session requests and events.

Per CCR: parse (errors answer with their own Result-Code and Failed-AVP), resolve tenant and
subscriber from Subscription-Id (unknown → 5030), rate every MSCC (a rating failure is 5031 for
that MSCC only), then ONE ledger script call commits the reported usage, releases the old
reservations and reserves the new grants of all MSCCs together. The operation id is
``Session-Id:CC-Request-Number`` with the request's fingerprint as digest, so a retransmission,
even at another server process, gets the stored outcome and is never charged twice, while a
reused number with different content is refused (5004, Failed-AVP CC-Request-Number).

Fail closed: no grant without a resolved subscriber, a rating and a ledger answer. Redis
unreachable or too slow → 3004 TOO_BUSY, so the client fails over (we advertise
CC-Session-Failover SUPPORTED: the session state lives in Redis).

Shape of the hot path: everything before the ledger call is synchronous and runs inline when
the request arrives (the planning: ``ocs.charging.planning``); the ledger call is the only thing
waited for, and its continuation, run from the Redis reply's ``data_received``, builds the CCA
and hands it to the server's ``respond`` (``respond_to``). No coroutine, task or future per
request; ``handler(event)`` wraps the same path in a future for callers that await.
"""

from __future__ import annotations

import asyncio
import functools
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog

from balance.continuations import continue_with, settle_future
from balance.errors import OUTCOME_RESULT_CODES, LegacyDigestFound, Outcome
from balance.ledger import Ledger
from balance.records import CcrResult, RatingGroupRequest, RatingGroupResult
from diameter_apps.codec import Message
from diameter_apps.codes import ResultCode
from diameter_apps.credit_control import (
    CcRequestType,
    CreditControlAnswer,
    CreditControlRequest,
    MsccAvpCache,
    ServiceAnswer,
    SubscriptionMemo,
    build_cca,
    ccr_digest,
    legacy_ccr_digest,
    parse_ccr,
)
from diameter_apps.events import RequestReceived
from diameter_apps.validation import Profile
from ocs.charging.cc_answers import (
    DENIED,
    RETRY_AND_TERMINATE,
    SESSION_REFUSED,
    GrantAnswers,
    answer_for_ledger_failure,
    answer_to,
    coded,
    final_unit_indication,
    refused_while_suspended,
    suspended_answer,
    top_level_code,
)
from ocs.charging.cc_metrics import ChargingCounts
from ocs.charging.context import encoded_ccr_context
from ocs.charging.directory import CatalogSnapshot, TenantDirectory
from ocs.charging.durable_requests import PeerStore
from ocs.charging.events import EventCharging
from ocs.charging.planning import SINGLE_SERVICE_RATING_GROUP, Slot, plan_request
from ocs.charging.sessions import OwnedSession, SessionRegistry
from ocs.charging.shared_draw import MemberRequest, charge_member
from ocs.charging.usage import RatingMemo
from ocs.config import ChargingConfig
from ocs.metrics import HistogramSeries, Metrics
from tariffs.model import SUSPENDED, Tenant
from tariffs.subscribers import SubscriberRef

Log = structlog.typing.FilteringBoundLogger
# What turns the ledger step's result into the answer (the session path's post-ledger half).
Finish = Callable[[Any], CreditControlAnswer]
# How the handler answers: ``respond(cca, None)``, or ``respond(None, error)`` (see respond_to).
Respond = Callable[[Message | None, BaseException | None], None]


# Enum members read through their class go through EnumType.__getattr__'s slot (~100 ns
# each on CPython 3.11, some twenty per CCR): the hot path reads them from module constants.
_INITIAL = CcRequestType.INITIAL
_TERMINATION = CcRequestType.TERMINATION
_EVENT = CcRequestType.EVENT
_SUCCESS = ResultCode.SUCCESS
_USER_UNKNOWN = ResultCode.USER_UNKNOWN
_CREDIT_LIMIT_REACHED = ResultCode.CREDIT_LIMIT_REACHED
_RATING_FAILED = ResultCode.RATING_FAILED
_UNKNOWN_ACCOUNT = Outcome.UNKNOWN_ACCOUNT


class CreditControlHandler:
    """The router's handler for CCR: ``await handler(event) -> CCA``."""

    def __init__(
        self,
        directory: TenantDirectory,
        config: ChargingConfig,
        *,
        origin_host: str,
        origin_realm: str,
        sessions: SessionRegistry,
        log: Log,
        clock: Callable[[], float],
        profile: Profile = Profile.LENIENT,
        metrics: Metrics | None = None,
        peers: PeerStore | None = None,
    ) -> None:
        self.directory = directory
        self.peers = peers  # the shared session → peer store (durable RAR/ASR); None: none
        self.config = config
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.sessions = sessions
        self.log = log
        self.clock = clock
        self.profile = profile
        self.metrics = metrics
        self.events = EventCharging(directory, log=log)
        self._counts = ChargingCounts(metrics) if metrics is not None else None
        if metrics is not None:
            # Read when scraped: setting it per answer cost two calls per CCR.
            metrics.open_sessions.follow(sessions.__len__)
        # The directory's ledgers, once known: a CCR then starts its ledger call directly.
        self._ledgers: dict[str, Ledger] = {}
        self._mscc_avps = MsccAvpCache()
        self._grant_answers = GrantAnswers(config.threshold_percent, config.quota_holding_time_s)
        self._subscriptions = SubscriptionMemo()
        # Ratings by what they depend on, for as long as no tariff boundary passes.
        self._ratings = RatingMemo()
        # Ledger call latency, by kind: the series are looked up once, observed per CCR.
        self._ledger_latency: tuple[HistogramSeries, HistogramSeries] | None = (
            (
                metrics.ledger_call_seconds.labels("session"),
                metrics.ledger_call_seconds.labels("event"),
            )
            if metrics is not None
            else None
        )

    def __call__(self, event: RequestReceived) -> asyncio.Future[Message]:
        """The CCA for ``event``: a future that resolves to it, or fails with the
        ``DiameterError`` to answer with (the server maps anything else to 5012)."""
        answered: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.respond_to(event, functools.partial(settle_future, answered))
        return answered

    def respond_to(self, event: RequestReceived, respond: Respond) -> None:
        """Answer ``event`` through ``respond(cca, None)``, or ``respond(None, error)`` with
        the ``DiameterError`` to answer with (anything else: 5012), called exactly once: at
        once, or from the ledger reply's callback (the server's hot path: no future)."""
        ccr: CreditControlRequest | None = None
        tenant = ""
        try:
            ccr = parse_ccr(event.message, self.profile, self._subscriptions)
            if ccr.deviations:
                self.log.info("ccr_deviation", session=ccr.session_id, what=list(ccr.deviations))
            now = int(self.clock())
            # One snapshot for the whole request: the subscriber, the tenant's status and its
            # rating all come from the same catalog even if a reload lands meanwhile.
            snapshot = self.directory.snapshot
            ref = snapshot.resolve_ids(ccr.subscription_ids)
            if ref is None:
                respond(self._answer(ccr, "", answer_to(ccr, _USER_UNKNOWN)), None)
                return
            tenant = ref.tenant
            profile = snapshot.tenants[tenant]
            # The request's one look at the tenant's status; the session path is handed the bool.
            suspended = profile.status is SUSPENDED
            if suspended and refused_while_suspended(ccr):
                # No rating, no ledger call: nothing is opened or reserved for a tenant whose
                # service is suspended (CCR-U/T and refunds still go to the ledger).
                respond(self._answer(ccr, tenant, suspended_answer(ccr)), None)
                return
            if ccr.request_type is _EVENT:
                work = asyncio.ensure_future(self.events.answer(ccr, ref, now))
                then = self._then(respond, ccr, tenant, _unchanged)
                work.add_done_callback(functools.partial(continue_with, then))
            else:
                self._start_session_request(ccr, ref, profile, suspended, now, snapshot, respond)
        except Exception as exc:
            self._settle(respond, ccr, tenant, None, exc)

    def _then(
        self, respond: Respond, ccr: CreditControlRequest, tenant: str, finish: Finish
    ) -> Callable[[Any, BaseException | None], None]:
        """The ledger step's continuation: its outcome, finished into the CCA, to ``respond``."""
        # perf_counter, not the loop's clock: uvloop's time() moves in millisecond steps.
        return functools.partial(
            self._ledger_done, respond, ccr, tenant, finish, time.perf_counter()
        )

    def _ledger_done(
        self,
        respond: Respond,
        ccr: CreditControlRequest,
        tenant: str,
        finish: Finish,
        started: float,
        result: Any,
        error: BaseException | None,
    ) -> None:
        latency = self._ledger_latency
        if latency is not None:
            # HistogramSeries.observe, inline (once per CCR).
            series, seconds = latency[ccr.request_type is _EVENT], time.perf_counter() - started
            series.counts[bisect_left(series.bounds, seconds)] += 1
            series.total += seconds
        if error is None:
            try:
                answer = finish(result)
            except Exception as exc:
                error = exc
            else:
                # _settle's success path, inline (the CCR's common case).
                try:
                    message = self._answer(ccr, tenant, answer)
                except Exception as exc:
                    respond(None, exc)
                    return
                respond(message, None)
                return
        elif type(error) is LegacyDigestFound and ccr.request_type is not _EVENT:
            self._again_with_legacy_digest(respond, ccr, tenant)
            return
        self._settle(respond, ccr, tenant, None, error)

    def _again_with_legacy_digest(
        self, respond: Respond, ccr: CreditControlRequest, tenant: str
    ) -> None:
        """The ledger holds this request's operation under an earlier release's digest (a
        retransmission of a CCR answered before the upgrade, or a conflict): plan and call
        again with that digest, once (it never draws ``LegacyDigestFound`` again), so the
        stored answer is replayed or the conflict answered. Cold: retransmissions only."""
        try:
            snapshot = self.directory.snapshot
            ref = snapshot.resolve_ids(ccr.subscription_ids)
            if ref is None:
                respond(self._answer(ccr, tenant, answer_to(ccr, _USER_UNKNOWN)), None)
                return
            profile = snapshot.tenants[ref.tenant]
            suspended = profile.status is SUSPENDED
            now = int(self.clock())
            self._start_session_request(
                ccr, ref, profile, suspended, now, snapshot, respond, legacy_ccr_digest(ccr.message)
            )
        except Exception as exc:
            self._settle(respond, ccr, tenant, None, exc)

    def _settle(
        self,
        respond: Respond,
        ccr: CreditControlRequest | None,
        tenant: str,
        answer: CreditControlAnswer | None,
        error: BaseException | None,
    ) -> None:
        """``respond`` with the CCA of ``answer`` or of the ledger ``error``, or with the
        error to answer (a request cancelled at shutdown: the server answers 5012)."""
        try:
            if error is not None:
                if ccr is None or isinstance(error, asyncio.CancelledError):
                    respond(None, error)
                    return
                answer = answer_for_ledger_failure(ccr, error, self.log)
            assert ccr is not None and answer is not None  # an answer belongs to a request
            message = self._answer(ccr, tenant, answer)
        except Exception as exc:
            respond(None, exc)
            return
        respond(message, None)

    def _answer(
        self, ccr: CreditControlRequest, tenant: str, answer: CreditControlAnswer
    ) -> Message:
        # Every answer is built whole, failure handling included (``cc_answers.answer_to``,
        # ``event_answer``, ``_session_answer``): nothing is copied or checked again here.
        if self._counts is not None:
            self._counts.answered(ccr, tenant, answer)
        return build_cca(
            ccr,
            answer,
            origin_host=self.origin_host,
            origin_realm=self.origin_realm,
            mscc_avps=self._mscc_avps,
        )

    # -- sessions (CCR-I / U / T) -------------------------------------------------------------
    def _start_session_request(
        self,
        ccr: CreditControlRequest,
        ref: SubscriberRef,
        tenant: Tenant,
        suspended: bool,
        now: int,
        snapshot: CatalogSnapshot,
        respond: Respond,
        digest: str | None = None,
    ) -> None:
        """Rate and plan inline, then start the one ledger call; its continuation answers.
        ``digest``: the request's, unless given (``legacy_ccr_digest``, on the call again)."""
        terminating = ccr.request_type is _TERMINATION
        # A suspended tenant's CCR-U still commits what it reports (requested_units 0: commit
        # and release, no new hold); ``_session_answer`` then denies every MSCC.
        grant = not terminating and not suspended
        slots, items = plan_request(
            ccr, ref, tenant, snapshot.rater, self._ratings, self.config, now, terminating, grant
        )
        if not items:
            # Nothing to rate still opens, checks or closes the session in the ledger (a bare
            # CCR-T releases every hold the session has).
            items.append(
                RatingGroupRequest(
                    rating_group=SINGLE_SERVICE_RATING_GROUP,
                    service="session",
                    terminate=terminating,
                )
            )
        if digest is None:
            digest = ccr_digest(ccr.message)
        known = None if ccr.request_type is _INITIAL else self.sessions.get(ccr.session_id)
        context = (
            known.context
            if known is not None and known.context
            else self._session_context(ccr, ref, tenant, slots, now, known)
        )
        finish = partial(self._session_answer, ccr, ref, tenant, suspended, slots, now, context)
        # perf_counter, not the loop's clock: uvloop's time() moves in millisecond steps.
        then = partial(self._ledger_done, respond, ccr, ref.tenant, finish, time.perf_counter())
        op_id = f"{ccr.session_id}:{ccr.request_number}"
        # A group member short of units draws from the group's pool (non-members: this lookup).
        membership = self.directory.groups.get(ref.tenant, ref.subscriber_id) if grant else None
        ledger = self._ledgers.get(ref.tenant)
        if ledger is not None and membership is None:
            # Steady state: the script call is written here and its reply runs ``then``.
            ledger.credit_control_then(
                then,
                ref.subscriber_id,
                ccr.session_id,
                op_id,
                items,
                now_s=now,
                digest=digest,
                request_kind=int(ccr.request_type),
                request_number=ccr.request_number,
                context=context,
            )
            return

        def call(ledger: Ledger) -> asyncio.Future[CcrResult]:
            return ledger.credit_control(
                ref.subscriber_id,
                ccr.session_id,
                op_id,
                items,
                now_s=now,
                digest=digest,
                request_kind=int(ccr.request_type),
                request_number=ccr.request_number,
                context=context,
            )

        work: asyncio.Future[Any] = (
            call(ledger)
            if ledger is not None
            else asyncio.ensure_future(self._first_call(ref.tenant, call))
        )
        if membership is not None:
            request = MemberRequest.of(ccr, ref.tenant, ref.subscriber_id, digest, now, context)
            work = asyncio.ensure_future(
                charge_member(work, self.directory.ledger, membership, request, items, self.log)
            )
        work.add_done_callback(functools.partial(continue_with, then))

    def _session_context(
        self,
        ccr: CreditControlRequest,
        ref: SubscriberRef,
        tenant: Tenant,
        slots: list[Slot],
        now: int,
        known: OwnedSession | None,
    ) -> bytes:
        """The session's encoded record context: the one its first request here built (in
        ``known``, its entry here; None for a CCR-I), or a new one (a CCR-I; or a CCR-U/T whose
        session began at another server: start unknown)."""
        if known is not None and known.context:
            return known.context
        initial = ccr.request_type is _INITIAL
        version = next((s.rating.version for s in slots if s.rating is not None), "")
        return encoded_ccr_context(
            ccr, ref, tenant, rate_card_version=version, started_at_s=now if initial else 0.0
        )

    async def _first_call(
        self, tenant: str, call: Callable[[Ledger], Awaitable[CcrResult]]
    ) -> CcrResult:
        """The tenant's first ledger call: the directory may have to provision its ledger."""
        ledger = await self.directory.ledger(tenant)
        # The directory hands out one Ledger per tenant for the life of the process.
        self._ledgers[tenant] = ledger
        return await call(ledger)

    def _session_answer(
        self,
        ccr: CreditControlRequest,
        ref: SubscriberRef,
        tenant: Tenant,
        suspended: bool,
        slots: list[Slot],
        now: int,
        context: bytes,
        outcome: CcrResult,
    ) -> CreditControlAnswer:
        """The CCA of a session request from the ledger's outcome (the post-ledger half)."""
        results = outcome.items
        if self._counts is not None:
            self._counts.units(ref.tenant, slots, results)
        for result in results:
            if result.outcome is _UNKNOWN_ACCOUNT:
                return answer_to(ccr, _USER_UNKNOWN)
        terminating = ccr.request_type is _TERMINATION
        if suspended and not terminating:
            # Decided by the same snapshot that planned no grant: usage was committed, nothing
            # new is held, and the gateway is told to end the service (it then sends CCR-T).
            return self._suspended_update(ccr, ref, slots, now, context)
        answers = (
            ()
            if terminating
            else tuple([self._service_answer(slot, results, tenant) for slot in slots])
        )
        code = top_level_code(ccr, answers)
        if terminating or (ccr.request_type is _INITIAL and code in SESSION_REFUSED):
            # A refused CCR-I establishes no session: the ledger kept none either (ccr.lua).
            if self.peers is not None and (
                terminating or self.sessions.get(ccr.session_id) is not None
            ):
                self.peers.forget(ref.tenant, ref.subscriber_id, ccr.session_id)
            self.sessions.ended(ccr.session_id)
        else:
            waiting_for_credit = False
            for answer in answers:
                if (
                    answer.final_unit_indication is not None
                    or answer.result_code == _CREDIT_LIMIT_REACHED
                ):
                    waiting_for_credit = True
                    break
            self._keep_session(ccr, ref, now, context, waiting_for_credit=waiting_for_credit)
        # Built whole here (a session request is never an EVENT: no Direct-Debiting-Failure-
        # Handling), as every answer is (``_answer`` adds nothing).
        return CreditControlAnswer(
            result_code=code,
            services=answers,
            credit_control_failure_handling=RETRY_AND_TERMINATE,
        )

    def _keep_session(
        self,
        ccr: CreditControlRequest,
        ref: SubscriberRef,
        now: int,
        context: bytes,
        *,
        waiting_for_credit: bool,
    ) -> None:
        """Remember the open session here (Tcc, metrics) and, when new or changed, in the
        shared peer store (RAR after a top-up, ASR, from any process)."""
        before = self.sessions.seen(
            ccr.session_id,
            tenant=ref.tenant,
            subscriber=ref.subscriber_id,
            origin_host=ccr.origin_host,
            origin_realm=ccr.origin_realm,
            now_s=now,
            waiting_for_credit=waiting_for_credit,
            context=context,
        )
        if self.peers is not None and before != (waiting_for_credit, ccr.origin_host):
            self.peers.remember(
                ref.tenant,
                ref.subscriber_id,
                ccr.session_id,
                ccr.origin_host,
                ccr.origin_realm,
                waiting_for_credit,
            )

    def _suspended_update(
        self,
        ccr: CreditControlRequest,
        ref: SubscriberRef,
        slots: list[Slot],
        now: int,
        context: bytes,
    ) -> CreditControlAnswer:
        """A suspended tenant's CCR-U: every MSCC 4010 without a grant; the session stays
        known here (its CCR-T, or an ASR, still has to find it)."""
        self._keep_session(ccr, ref, now, context, waiting_for_credit=False)
        return answer_to(ccr, DENIED, tuple(coded(slot.service, DENIED) for slot in slots))

    def _service_answer(
        self, slot: Slot, results: tuple[RatingGroupResult, ...], tenant: Tenant
    ) -> ServiceAnswer:
        service = slot.service
        if slot.failure is not None or slot.rating is None:
            return coded(service, slot.failure or _RATING_FAILED)
        result = results[slot.item]
        code = OUTCOME_RESULT_CODES[result.outcome]
        if not service.wants_grant:
            return coded(service, code)
        if code == _SUCCESS and slot.requested_units > 0 and result.granted_units <= 0:
            code = _CREDIT_LIMIT_REACHED
        if code != _SUCCESS:
            return coded(service, code)
        return self._grant_answers.answer(
            service,
            result.granted_units,
            slot.rating.unit,
            slot.validity_s,
            slot.tariff_time_change_s,
            final_unit_indication(tenant) if result.final else None,
        )


def _unchanged(answer: Any) -> CreditControlAnswer:
    """The finishing step of an event: its coroutine already made the answer."""
    assert isinstance(answer, CreditControlAnswer)
    return answer
