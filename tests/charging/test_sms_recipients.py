"""An SMS to several recipients is charged per recipient by destination, atomically; every MSCC
of a CCR-EVENT is debited in one ledger call."""

from __future__ import annotations

from typing import Any

import pytest
from diameter.message import Message

from balance.ledger import Ledger
from tests.charging.conftest import Charging
from tests.support.gy import (
    DIRECT_DEBITING,
    EVENT,
    PRICE_ENQUIRY,
    SMS_CONTEXT,
    Mscc,
    ccr,
    msccs_of,
    result_code,
)

ACME_4 = "4917099000004"
OPENING = 10_000_000
# de_mobile (home row 0.09), intl_eu (0.15), intl_us (0.19) in the demo catalog.
RECIPIENTS = ["tel:+4915112345678", "+447700900123", "tel:+12125550100"]


@pytest.fixture
def ledger_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every ledger script run (a spy on the real ledger: Redis is real)."""
    calls: list[str] = []
    original = Ledger._run

    async def counted(self: Ledger, script: Any, key_list: Any, payload: Any, *rest: Any) -> Any:
        calls.append(script.name)
        return await original(self, script, key_list, payload, *rest)

    monkeypatch.setattr(Ledger, "_run", counted)
    return calls


def sms(number: int, action: int = DIRECT_DEBITING, msccs: list[Mscc] | None = None) -> Message:
    return ccr(
        "smsc;multi;1",
        EVENT,
        number,
        msisdn=ACME_4,
        context=SMS_CONTEXT,
        requested_action=action,
        sms_recipients=RECIPIENTS,
        msccs=msccs or [Mscc(None, {"cc_service_specific_units": 1})],
    )


async def test_each_recipient_is_charged_by_its_destination_in_one_call(
    charging: Charging, ledger_calls: list[str]
) -> None:
    await charging.ledger("acme")  # provisioned before counting
    ledger_calls.clear()
    cca = await charging.send(sms(0))
    assert result_code(cca) == 2001 and msccs_of(cca)[None]["units"] == 3
    assert ledger_calls == ["debit_many"]
    (debit,) = await charging.records("acme", ACME_4, "debit")
    assert [(leg.units, leg.retail) for leg in debit.legs] == [
        (1, 90_000),
        (1, 150_000),
        (1, 190_000),
    ]
    assert (debit.units, debit.retail, debit.wholesale) == (3, 430_000, 80_000)
    again = await charging.send(sms(0))  # a retransmission: the stored outcome, no new debit
    assert result_code(again) == 2001 and msccs_of(again)[None]["units"] == 3
    assert (await charging.account("acme", ACME_4)).balance == OPENING - 430_000
    assert len(await charging.records("acme", ACME_4, "debit")) == 1
    price = await charging.send(sms(1, PRICE_ENQUIRY))
    unit_value = price.cost_information.unit_value
    assert unit_value.value_digits * 10**unit_value.exponent == pytest.approx(0.43)


async def test_recipients_are_paid_all_or_none(charging: Charging) -> None:
    ledger = await charging.ledger("acme")
    # 0.30 covers the first two recipients (0.24) but not the third: nothing is debited.
    await ledger.adjust(ACME_4, -OPENING + 300_000, reason="test", now_s=charging.clock.now)
    cca = await charging.send(sms(0))
    assert result_code(cca) == 4012 and msccs_of(cca)[None]["result_code"] == 4012
    assert (await charging.account("acme", ACME_4)).balance == 300_000
    assert await charging.records("acme", ACME_4, "debit") == []


async def test_every_mscc_of_an_event_in_one_ledger_call(
    charging: Charging, ledger_calls: list[str]
) -> None:
    await charging.ledger("acme")
    ledger_calls.clear()
    msccs = [
        Mscc(None, {"cc_service_specific_units": 2}),  # the sms default service
        Mscc(5, {"cc_service_specific_units": 1}),  # no sms service has rating group 5: 5031
    ]
    cca = await charging.send(sms(0, msccs=msccs))
    answers = msccs_of(cca)
    assert result_code(cca) == 2001
    assert (answers[None]["result_code"], answers[None]["units"]) == (2001, 6)
    assert answers[5]["result_code"] == 5031
    assert ledger_calls == ["debit_many"]
    (debit,) = await charging.records("acme", ACME_4, "debit")
    assert debit.op_id == "smsc;multi;1:0:0" and debit.retail == 2 * 430_000
