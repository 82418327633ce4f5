"""The parts of a CCA that follow from the request, the tenant and the ledger's verdict alone:
ledger refusals as answers or wire errors, the answers of a suspended tenant, the session-level
Result-Code, the Final-Unit-Indication. Pure functions, used by
:class:`~ocs.charging.credit_control.CreditControlHandler`."""

from __future__ import annotations

import structlog

from balance.errors import (
    DIAMETER_SUCCESS,
    InvalidRequest,
    LedgerError,
    LedgerOverloaded,
    LedgerUnavailable,
    LimitExceeded,
    OperationConflict,
    RequestOutOfOrder,
    SessionAlreadyOpen,
    UnknownAccount,
    UnknownSession,
)
from diameter_apps.codec import Avp
from diameter_apps.codes import ResultCode
from diameter_apps.credit_control import (
    CcRequestType,
    CheckBalanceResult,
    CostInformation,
    CreditControlAnswer,
    CreditControlFailureHandling,
    CreditControlRequest,
    FinalUnitAction,
    FinalUnitIndication,
    RedirectServer,
    RequestedAction,
    ServiceAnswer,
    ServiceRequest,
)
from diameter_apps.credit_control.codes import CcAvp, DirectDebitingFailureHandling
from diameter_apps.errors import InvalidAvpValue, TooBusy, UnableToComply, UnknownSessionId
from ocs.charging.units import BYTE, SECOND, granted
from tariffs.model import Tenant

Log = structlog.typing.FilteringBoundLogger

DENIED = ResultCode.END_USER_SERVICE_DENIED  # 4010: what a suspended tenant's MSCCs get
# Every CCA tells the client to retry elsewhere and end the service if that fails too (session
# state lives in Redis: any server continues it); an event's answer also says what to do with
# a direct debit it could not get answered (RFC 4006 8.50).
RETRY_AND_TERMINATE = CreditControlFailureHandling.RETRY_AND_TERMINATE
TERMINATE_OR_BUFFER = DirectDebitingFailureHandling.TERMINATE_OR_BUFFER
_EVENT = CcRequestType.EVENT
_INITIAL = CcRequestType.INITIAL
_SUCCESS = ResultCode.SUCCESS
_CREDIT_LIMIT_REACHED = ResultCode.CREDIT_LIMIT_REACHED

GRANT_ANSWERS_MAX = 4096  # remembered granting answers; the memo starts afresh when full
_GrantKey = tuple[int | None, int | None, int, str, int, int | None]

_FINAL_ACTIONS = {
    "TERMINATE": FinalUnitAction.TERMINATE,
    "REDIRECT": FinalUnitAction.REDIRECT,
    "RESTRICT_ACCESS": FinalUnitAction.RESTRICT_ACCESS,
}


def answer_to(
    ccr: CreditControlRequest,
    result_code: int,
    services: tuple[ServiceAnswer, ...] = (),
    *,
    check_balance_result: CheckBalanceResult | None = None,
) -> CreditControlAnswer:
    """The CCA of ``ccr`` with its failure handling, built whole (an answer is checked as it
    is built: copying it to add fields later checked it twice)."""
    return CreditControlAnswer(
        result_code=result_code,
        services=services,
        credit_control_failure_handling=RETRY_AND_TERMINATE,
        direct_debiting_failure_handling=(
            TERMINATE_OR_BUFFER if ccr.request_type is _EVENT else None
        ),
        check_balance_result=check_balance_result,
    )


def event_answer(
    result_code: int,
    services: tuple[ServiceAnswer, ...] = (),
    *,
    check_balance_result: CheckBalanceResult | None = None,
    cost_information: CostInformation | None = None,
) -> CreditControlAnswer:
    """The CCA of a CCR-EVENT, with an event's failure handling, built whole."""
    return CreditControlAnswer(
        result_code=result_code,
        services=services,
        credit_control_failure_handling=RETRY_AND_TERMINATE,
        direct_debiting_failure_handling=TERMINATE_OR_BUFFER,
        check_balance_result=check_balance_result,
        cost_information=cost_information,
    )


def final_unit_indication(tenant: Tenant) -> FinalUnitIndication:
    """The tenant's Final-Unit-Action, as the catalog sets it."""
    policy = tenant.final_unit
    action = _FINAL_ACTIONS[policy.action]
    if action is FinalUnitAction.REDIRECT and policy.redirect_url:
        return FinalUnitIndication(
            action=action, redirect_server=RedirectServer(policy.redirect_url)
        )
    if action is FinalUnitAction.RESTRICT_ACCESS and policy.filter_id:
        return FinalUnitIndication(action=action, filter_ids=(policy.filter_id,))
    return FinalUnitIndication(action=action)


class GrantAnswers:
    """Granting MSCC answers by what they depend on (Rating-Group, Service-Identifier, the
    amount, its unit, Validity-Time, Tariff-Time-Change): the CCR-Us of a session are mostly
    granted the same quota as the last one, so an answer is built (and its values checked) once
    per shape instead of once per MSCC. An answer is a frozen value: answers share it."""

    __slots__ = ("_answers", "holding_s", "threshold_percent")

    def __init__(self, threshold_percent: int, quota_holding_time_s: int) -> None:
        self.threshold_percent = threshold_percent
        self.holding_s = quota_holding_time_s or None
        self._answers: dict[_GrantKey, ServiceAnswer] = {}

    def answer(
        self,
        service: ServiceRequest,
        amount: int,
        unit: str,
        validity_s: int,
        tariff_time_change_s: int | None,
        final: FinalUnitIndication | None = None,
    ) -> ServiceAnswer:
        """The DIAMETER_SUCCESS answer granting ``amount`` of ``unit`` (none when 0), with the
        quota threshold and holding time the configuration sets; ``final`` (the tenant's
        Final-Unit-Indication on a final grant) is built each time, never remembered."""
        if final is not None:
            return self._build(service, amount, unit, validity_s, tariff_time_change_s, final)
        key = (
            service.rating_group,
            service.service_identifier,
            amount,
            unit,
            validity_s,
            tariff_time_change_s,
        )
        found = self._answers.get(key)
        if found is None:
            if len(self._answers) >= GRANT_ANSWERS_MAX:
                self._answers.clear()
            found = self._answers[key] = self._build(
                service, amount, unit, validity_s, tariff_time_change_s, None
            )
        return found

    def _build(
        self,
        service: ServiceRequest,
        amount: int,
        unit: str,
        validity_s: int,
        tariff_time_change_s: int | None,
        final: FinalUnitIndication | None,
    ) -> ServiceAnswer:
        threshold = amount * self.threshold_percent // 100
        return ServiceAnswer(
            result_code=DIAMETER_SUCCESS,
            rating_group=service.rating_group,
            service_identifier=service.service_identifier,
            granted=granted(amount, unit) if amount > 0 else None,
            validity_time_s=validity_s,
            tariff_time_change_s=tariff_time_change_s,
            volume_quota_threshold_octets=threshold if unit == BYTE and threshold else None,
            time_quota_threshold_s=threshold if unit == SECOND and threshold else None,
            unit_quota_threshold=(threshold if unit not in (BYTE, SECOND) and threshold else None),
            quota_holding_time_s=self.holding_s,
            final_unit_indication=final,
        )


def answer_for_ledger_failure(
    ccr: CreditControlRequest, exc: BaseException, log: Log
) -> CreditControlAnswer:
    """Ledger refusals as answers or wire errors; anything else is raised as it is."""
    try:
        raise exc
    except LedgerOverloaded as exc:
        # Shed load: one log line per refused request would only add to it (the 3004
        # answers are counted in ocs_diameter_answers_total by Result-Code).
        log.debug("ledger_overloaded", session=ccr.session_id, error=str(exc))
        raise TooBusy(f"the ledger is overloaded: {exc}") from exc
    except LedgerUnavailable as exc:
        log.warning("ledger_unavailable", session=ccr.session_id, error=str(exc))
        raise TooBusy(f"the ledger is unavailable: {exc}") from exc
    except OperationConflict as exc:
        raise InvalidAvpValue(
            "CC-Request-Number reused with different content",
            failed_avps=failed_avps(ccr, CcAvp.CC_REQUEST_NUMBER),
        ) from exc
    except UnknownAccount:
        return answer_to(ccr, ResultCode.USER_UNKNOWN)
    except UnknownSession as exc:
        raise UnknownSessionId(str(exc)) from exc
    except (SessionAlreadyOpen, RequestOutOfOrder) as exc:
        raise InvalidAvpValue(
            str(exc), failed_avps=failed_avps(ccr, CcAvp.CC_REQUEST_NUMBER)
        ) from exc
    except LimitExceeded as exc:
        log.warning("ledger_limit", session=ccr.session_id, error=str(exc))
        return answer_to(ccr, ResultCode.RESOURCES_EXCEEDED)
    except (InvalidRequest, LedgerError) as exc:
        log.error("ledger_refused", session=ccr.session_id, error=repr(exc))
        raise UnableToComply("the ledger refused the request") from exc


def refused_while_suspended(ccr: CreditControlRequest) -> bool:
    """Whether a suspended tenant's request is refused before any rating or ledger work:
    CCR-I and every CCR-E but a refund (money owed back to the subscriber is still paid).
    Price enquiry and balance check are refused too: the service they ask about is denied."""
    kind = ccr.request_type
    if kind is CcRequestType.INITIAL:
        return True
    return (
        kind is CcRequestType.EVENT and ccr.requested_action is not RequestedAction.REFUND_ACCOUNT
    )


def suspended_answer(ccr: CreditControlRequest) -> CreditControlAnswer:
    """4010 for the request and each of its MSCCs, nothing granted (NO_CREDIT for a balance
    check, as for a blocked account)."""
    return answer_to(
        ccr,
        ResultCode.END_USER_SERVICE_DENIED,
        tuple(coded(service, DENIED) for service in ccr.services),
        check_balance_result=(
            CheckBalanceResult.NO_CREDIT
            if ccr.requested_action is RequestedAction.CHECK_BALANCE
            else None
        ),
    )


def coded(service: ServiceRequest, code: int) -> ServiceAnswer:
    """The answer to ``service`` that is only a Result-Code (no grant)."""
    return ServiceAnswer(
        result_code=code,
        rating_group=service.rating_group,
        service_identifier=service.service_identifier,
    )


def failed_avps(ccr: CreditControlRequest, code: int) -> tuple[Avp, ...]:
    """The request's own AVP of ``code``, for Failed-AVP."""
    avp = ccr.message.find(code)
    return (avp,) if avp is not None else ()


def top_level_code(ccr: CreditControlRequest, answers: tuple[ServiceAnswer, ...]) -> int:
    """Session-level Result-Code: a single-service request carries its service's code; with
    MSCCs each MSCC has its own and the request succeeds unless the account itself is refused
    or, on a CCR-I, every MSCC is."""
    if not answers:
        return _SUCCESS
    if not ccr.has_mscc:
        return answers[0].result_code
    # Plain loops, not all() over generators: this runs once per answer, and the usual answer
    # (some MSCC granted) leaves at its first service.
    denied = refused = True
    for answer in answers:
        code = answer.result_code
        if code != DENIED:
            denied = False
            if code != _CREDIT_LIMIT_REACHED:
                refused = False
                break
    if denied:
        return DENIED
    if refused and ccr.request_type is _INITIAL:
        # Every service of a CCR-I refused by the ledger: the session is not established (the
        # ledger keeps none), so the command-level code says so and no CCR-T is expected.
        return _CREDIT_LIMIT_REACHED
    return _SUCCESS


# Command-level codes of a CCR-I that establish no session (ccr.lua drops it in the same call).
SESSION_REFUSED = frozenset((ResultCode.CREDIT_LIMIT_REACHED, ResultCode.END_USER_SERVICE_DENIED))
