"""Retransmissions never charge twice; CCR-EVENT actions; malformed CCRs get their codes."""

from __future__ import annotations

import pytest
from diameter.message import Message
from diameter.message.avp import Avp

from diameter_apps.errors import DiameterError
from tests.charging.conftest import Charging
from tests.support.gy import (
    CHECK_BALANCE,
    DIRECT_DEBITING,
    EVENT,
    INITIAL,
    PRICE_ENQUIRY,
    REFUND_ACCOUNT,
    SMS_CONTEXT,
    TERMINATION,
    UPDATE,
    Mscc,
    ccr,
    msccs_of,
    plain,
    result_code,
)

MIB = 1_048_576
ACME_3 = "4917099000003"
OPENING = 10_000_000


def _roaming_session(sid: str) -> list[Message]:
    roam = {"visited_plmn": "310260", "msisdn": ACME_3}
    return [
        ccr(sid, INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": MIB // 2})], **roam),
        ccr(sid, UPDATE, 1, msccs=[Mscc(10, {}, [{"cc_total_octets": MIB // 4}])], **roam),
        ccr(sid, UPDATE, 2, msccs=[Mscc(10, {}, [{"cc_total_octets": MIB // 4}])], **roam),
        ccr(sid, TERMINATION, 3, msccs=[Mscc(10, None, [{"cc_total_octets": 1024}])], **roam),
    ]


async def test_every_ccr_sent_twice_is_charged_once(charging: Charging) -> None:
    answers = []
    for request in _roaming_session("s;storm"):
        first = await charging.send(request)
        request.header.is_retransmit = True  # same Session-Id and CC-Request-Number, T flag
        again = await charging.send(request)
        assert result_code(again) == result_code(first)
        assert msccs_of(again) == msccs_of(first)
        answers.append(first)
    account = await charging.account("acme", ACME_3)
    # 0.5 MiB + 1 KiB at 5.00 EUR/MiB, in 1 KiB increments.
    assert account.balance == OPENING - 2_504_883 and account.held_money == 0
    assert len(await charging.records("acme", ACME_3)) == 3


async def test_retransmission_arriving_after_later_requests_gets_the_original_answer(
    charging: Charging,
) -> None:
    requests = _roaming_session("s;late")
    original = await charging.send(requests[1 - 1])
    await charging.send(requests[1])
    late = await charging.send(requests[0])  # the CCR-I again, after the CCR-U
    assert msccs_of(late) == msccs_of(original)
    account = await charging.account("acme", ACME_3)
    assert len(await charging.records("acme", ACME_3)) == 1
    assert account.balance + account.held_money <= OPENING


async def test_reused_request_number_with_other_content_is_5004(charging: Charging) -> None:
    requests = _roaming_session("s;conflict")
    await charging.send(requests[0])
    changed = ccr(
        "s;conflict",
        INITIAL,
        0,
        msisdn=ACME_3,
        visited_plmn="310260",
        msccs=[Mscc(10, {"cc_total_octets": MIB})],
    )
    with pytest.raises(DiameterError) as refused:
        await charging.send(changed)
    assert refused.value.result_code == 5004
    (failed,) = refused.value.failed_avps
    assert failed.code == 415 and failed.as_u32() == 0


async def test_sms_direct_debit_refund_check_and_price(charging: Charging) -> None:
    def sms(number: int, action: int) -> Message:
        return ccr(
            "smsc;sms;1",
            EVENT,
            number,
            msisdn=ACME_3,
            context=SMS_CONTEXT,
            requested_action=action,
            msccs=[Mscc(None, {"cc_service_specific_units": 1})],
        )

    cca = await charging.send(sms(0, PRICE_ENQUIRY))
    assert result_code(cca) == 2001
    assert (
        cca.cost_information.unit_value.value_digits * 10** cca.cost_information.unit_value.exponent
        == pytest.approx(0.09)
    )
    cca = await charging.send(sms(1, DIRECT_DEBITING))
    assert result_code(cca) == 2001 and msccs_of(cca)[None]["units"] == 1
    assert (await charging.account("acme", ACME_3)).balance == OPENING - 90_000
    again = await charging.send(sms(1, DIRECT_DEBITING))  # retransmission
    assert result_code(again) == 2001
    assert (await charging.account("acme", ACME_3)).balance == OPENING - 90_000
    (debit,) = await charging.records("acme", ACME_3, "debit")
    assert (debit.retail, debit.wholesale, debit.service) == (90_000, 10_000, "sms")
    cca = await charging.send(sms(2, REFUND_ACCOUNT))
    assert result_code(cca) == 2001
    assert (await charging.account("acme", ACME_3)).balance == OPENING
    cca = await charging.send(sms(3, CHECK_BALANCE))
    assert result_code(cca) == 2001 and cca.check_balance_result == 0  # ENOUGH_CREDIT


async def test_direct_debit_without_credit_is_4012(charging: Charging) -> None:
    ledger = await charging.ledger("acme")
    await ledger.adjust(
        ACME_3, -OPENING + 10_000, reason="test: nearly empty", now_s=charging.clock.now
    )
    cca = await charging.send(
        ccr(
            "smsc;sms;2",
            EVENT,
            0,
            msisdn=ACME_3,
            context=SMS_CONTEXT,
            requested_action=DIRECT_DEBITING,
            msccs=[Mscc(None, {"cc_service_specific_units": 1})],
        )
    )
    assert result_code(cca) == 4012
    check = await charging.send(
        ccr(
            "smsc;sms;2",
            EVENT,
            1,
            msisdn=ACME_3,
            context=SMS_CONTEXT,
            requested_action=CHECK_BALANCE,
            msccs=[Mscc(None, {"cc_service_specific_units": 1})],
        )
    )
    assert check.check_balance_result == 1  # NO_CREDIT
    assert (await charging.account("acme", ACME_3)).balance == 10_000


async def test_blocked_account_is_4010(charging: Charging) -> None:
    ledger = await charging.ledger("acme")
    await ledger.block(ACME_3, now_s=charging.clock.now, reason="test")
    cca = await charging.send(ccr("s;blocked", INITIAL, 0, msisdn=ACME_3, msccs=[Mscc(10)]))
    assert result_code(cca) == 4010
    assert msccs_of(cca)[10]["result_code"] == 4010


async def test_silent_session_is_released_after_validity_and_grace(charging: Charging) -> None:
    from ocs.charging.supervision import TccSupervisor
    from ocs.logging_setup import make_logger

    roam = {"visited_plmn": "310260", "msisdn": ACME_3}
    await charging.send(
        ccr("s;silent", INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": MIB})], **roam)
    )
    assert (await charging.account("acme", ACME_3)).held_money == 5_000_000
    supervisor = TccSupervisor(
        charging.directory,
        charging.sessions,
        interval_s=1,
        log=make_logger("error"),
        clock=charging.clock,
    )
    charging.clock.now += 3600 + 59  # validity 3600 s + grace 60 s not yet over
    assert await supervisor.sweep_once() == 0
    charging.clock.now += 2
    assert await supervisor.sweep_once() == 1
    account = await charging.account("acme", ACME_3)
    assert account.balance == OPENING and account.held_money == 0
    assert len(await charging.records("acme", ACME_3, "expiry")) == 1
    assert charging.sessions.get("s;silent") is None
    assert await supervisor.sweep_once() == 0  # released exactly once


def _without(request: Message, code: int) -> Message:
    return plain(request, drop=(code,))


@pytest.mark.parametrize(
    ("mutate", "code", "failed_code"),
    [
        (lambda m: _without(m, 416), 5005, 416),  # missing CC-Request-Type
        (lambda m: _without(m, 415), 5005, 415),  # missing CC-Request-Number
        (lambda m: _without(m, 461), 5005, 461),  # missing Service-Context-Id
    ],
)
async def test_malformed_ccr_gets_code_and_failed_avp(
    charging: Charging, mutate: object, code: int, failed_code: int
) -> None:
    request = ccr("s;bad", INITIAL, 0, msisdn=ACME_3, msccs=[Mscc(10)])
    assert callable(mutate)
    with pytest.raises(DiameterError) as refused:
        await charging.send(mutate(request))
    assert refused.value.result_code == code
    assert [a.code for a in refused.value.failed_avps] == [failed_code]


async def test_bad_subscription_id_type_is_5004(charging: Charging) -> None:
    request = _without(ccr("s;badsub", INITIAL, 0, msisdn=ACME_3, msccs=[Mscc(10)]), 443)
    request.append_avp(Avp.new(443, value=[Avp.new(450, value=99), Avp.new(444, value="x")]))
    with pytest.raises(DiameterError) as refused:
        await charging.send(request)
    assert refused.value.result_code == 5004
    assert refused.value.failed_avps[0].code == 443


async def test_unknown_service_context_is_rated_as_failed(charging: Charging) -> None:
    request = ccr("s;ctx", INITIAL, 0, msisdn=ACME_3, context="99999@example.org", msccs=[Mscc(10)])
    cca = await charging.send(request)
    assert msccs_of(cca)[10]["result_code"] == 5031
    assert (await charging.account("acme", ACME_3)).held_money == 0


async def test_session_rules_unknown_backwards_and_reopened(charging: Charging) -> None:
    sid = "s;rules"
    with pytest.raises(DiameterError) as refused:
        await charging.send(ccr(sid, UPDATE, 1, msisdn=ACME_3, msccs=[Mscc(10)]))
    assert refused.value.result_code == 5002  # never opened
    await charging.send(ccr(sid, INITIAL, 0, msisdn=ACME_3, msccs=[Mscc(10)]))
    await charging.send(ccr(sid, UPDATE, 2, msisdn=ACME_3, msccs=[Mscc(10)]))
    with pytest.raises(DiameterError) as refused:
        await charging.send(ccr(sid, UPDATE, 1, msisdn=ACME_3, msccs=[Mscc(10, {"cc_time": 1})]))
    assert refused.value.result_code == 5004  # CC-Request-Number going backwards
    assert [(a.code, a.as_u32()) for a in refused.value.failed_avps] == [(415, 1)]
    with pytest.raises(DiameterError) as refused:
        await charging.send(ccr(sid, INITIAL, 3, msisdn=ACME_3, msccs=[Mscc(10)]))
    assert refused.value.result_code == 5004  # INITIAL on a session that is open
    await charging.send(ccr(sid, TERMINATION, 4, msisdn=ACME_3))
    with pytest.raises(DiameterError) as refused:
        await charging.send(ccr(sid, UPDATE, 5, msisdn=ACME_3, msccs=[Mscc(10)]))
    assert refused.value.result_code == 5002  # terminated
    assert (await charging.account("acme", ACME_3)).held_money == 0


async def test_session_released_by_tcc_is_unknown_afterwards(charging: Charging) -> None:
    from ocs.charging.supervision import TccSupervisor
    from ocs.logging_setup import make_logger

    roam = {"visited_plmn": "310260", "msisdn": ACME_3}
    await charging.send(
        ccr("s;tcc", INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": MIB})], **roam)
    )
    charging.clock.now += 3600 + 61
    supervisor = TccSupervisor(
        charging.directory,
        charging.sessions,
        interval_s=1,
        log=make_logger("error"),
        clock=charging.clock,
    )
    assert await supervisor.sweep_once() == 1
    with pytest.raises(DiameterError) as refused:
        await charging.send(ccr("s;tcc", UPDATE, 1, msccs=[Mscc(10)], **roam))
    assert refused.value.result_code == 5002


async def test_sweeping_every_slice_releases_what_one_full_sweep_would(charging: Charging) -> None:
    from ocs.charging.supervision import SWEEP_SLICES, TccSupervisor
    from ocs.logging_setup import make_logger

    roam = {"visited_plmn": "310260", "msisdn": ACME_3}
    await charging.send(
        ccr("s;slices", INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": MIB})], **roam)
    )
    supervisor = TccSupervisor(
        charging.directory,
        charging.sessions,
        interval_s=1,
        log=make_logger("error"),
        clock=charging.clock,
    )
    charging.clock.now += 3600 + 61
    released = [await supervisor.sweep_next_slice() for _ in range(SWEEP_SLICES)]
    assert sorted(released) == [0] * (SWEEP_SLICES - 1) + [1]  # exactly one slice held it
    assert (await charging.account("acme", ACME_3)).held_money == 0
