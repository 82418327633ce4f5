"""A suspended tenant (catalog ``status: suspended``): no new service, usage already consumed
still charged to the micro-unit, refunds still paid, other tenants untouched."""

from __future__ import annotations

import pytest
from diameter.message import Message

from diameter_apps.errors import DiameterError
from ocs.catalog_store import store_catalog, stored_catalog
from ocs.charging.credit_control import CreditControlHandler
from ocs.config import ChargingConfig
from ocs.logging_setup import make_logger
from ocs.metrics import Metrics
from tariffs.loader import read_sources
from tariffs.model import SUSPENDED
from tests.charging.conftest import Charging
from tests.support.charging import DEMO_CATALOG
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
    result_code,
)

MIB = 1_048_576
ACME_1 = "4917099000001"
ACME_3 = "4917099000003"
GLOBEX_1 = "4917199000001"
OPENING = 10_000_000
BUNDLE = 1_073_741_824
ROAMING = "310260"  # acme's world zone: 5.00 EUR/MiB in 1 KiB increments, no bundle


def demo_sources(suspended: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The demo catalog's files, with ``status: suspended`` added to the named tenants."""
    sources, problems = read_sources(DEMO_CATALOG)
    assert not problems
    out = []
    for name, text in sources:
        for tenant in suspended:
            text = text.replace(f"\ntenant: {tenant}\n", f"\ntenant: {tenant}\nstatus: suspended\n")
        out.append((name, text))
    return out


async def reload(charging: Charging, suspended: tuple[str, ...] = ()) -> None:
    """What ``ocs catalog load`` + a running server's reload do: store the texts in Redis, read
    them back validated, swap the directory's snapshot."""
    await store_catalog(charging.client, demo_sources(suspended))
    catalog = await stored_catalog(charging.client)
    assert catalog is not None
    charging.directory.replace_catalog(catalog)


def _failure_handling(answer: Message) -> tuple[set[int], set[int]]:
    """The answer's CC-Failure-Handling (427) and Direct-Debiting-Failure-Handling (428)."""
    return (
        {avp.value for avp in answer.avps if avp.code == 427},
        {avp.value for avp in answer.avps if avp.code == 428},
    )


async def test_reload_through_the_catalog_store_suspends_then_resumes(charging: Charging) -> None:
    await reload(charging, ("acme",))
    tenants = charging.directory.snapshot.tenants
    assert tenants["acme"].status is SUSPENDED and tenants["globex"].status == "active"
    cca = await charging.send(ccr("s;reload;1", INITIAL, 0, msisdn=ACME_1, msccs=[Mscc(10)]))
    assert result_code(cca) == 4010
    await reload(charging)  # resumed: the next request is served again
    cca = await charging.send(ccr("s;reload;2", INITIAL, 0, msisdn=ACME_1, msccs=[Mscc(10)]))
    assert result_code(cca) == 2001 and msccs_of(cca)[10]["octets"] == 10 * MIB


async def test_ccr_initial_is_4010_and_reserves_nothing(charging: Charging) -> None:
    await reload(charging, ("acme",))
    sid = "pgw.test.local;1;suspended-i"
    cca = await charging.send(ccr(sid, INITIAL, 0, msisdn=ACME_1, msccs=[Mscc(10), Mscc(20)]))
    assert result_code(cca) == 4010
    # A session's answer: RETRY_AND_TERMINATE, and no Direct-Debiting-Failure-Handling.
    assert _failure_handling(cca) == ({2}, set())
    answers = msccs_of(cca)
    assert {rg: a["result_code"] for rg, a in answers.items()} == {10: 4010, 20: 4010}
    assert all(a["octets"] is None for a in answers.values())
    account = await charging.account("acme", ACME_1)
    assert account.balance == OPENING and account.held_money == 0 and account.sessions == ()
    assert [b.held for b in account.buckets] == [0]
    assert len(charging.sessions) == 0
    # No ledger session was opened, so the ledger does not know it.
    with pytest.raises(DiameterError) as unknown:
        await charging.send(ccr(sid, TERMINATION, 1, msisdn=ACME_1))
    assert unknown.value.result_code == 5002


async def test_single_service_ccr_initial_is_4010(charging: Charging) -> None:
    await reload(charging, ("acme",))
    cca = await charging.send(ccr("s;suspended-plain", INITIAL, 0, msisdn=ACME_1))
    assert result_code(cca) == 4010


async def test_open_session_commits_reported_usage_then_is_denied_and_closes(
    charging: Charging,
) -> None:
    sid = "pgw.test.local;1;suspended-u"
    roam = {"msisdn": ACME_3, "visited_plmn": ROAMING}
    cca = await charging.send(ccr(sid, INITIAL, 0, msccs=[Mscc(10)], **roam))
    assert result_code(cca) == 2001 and msccs_of(cca)[10]["octets"] == 2 * MIB  # 10 EUR's worth
    assert (await charging.account("acme", ACME_3)).held_money > 0

    await reload(charging, ("acme",))
    used = MIB // 2 + 1024 + 1  # 514 KiB once rounded up to the 1 KiB increment
    update = ccr(sid, UPDATE, 1, msccs=[Mscc(10, {}, [{"cc_total_octets": used}])], **roam)
    cca = await charging.send(update)
    assert result_code(cca) == 4010
    assert msccs_of(cca) == {
        10: {
            "result_code": 4010,
            "octets": None,
            "time": None,
            "units": None,
            "validity": None,
            "fui": None,
        }
    }
    retail = 2_509_766  # 514 KiB at 5.00 EUR/MiB = 2.509765625 EUR, rounded up
    account = await charging.account("acme", ACME_3)
    assert account.balance == OPENING - retail and account.held_money == 0
    (record,) = await charging.records("acme", ACME_3)
    assert (record.units, record.retail, record.session_id) == (used, retail, sid)
    assert charging.sessions.get(sid) is not None  # still open until its CCR-T

    update.header.is_retransmit = True  # a retransmission: same answer, charged once
    again = await charging.send(update)
    assert result_code(again) == 4010 and msccs_of(again) == msccs_of(cca)
    assert len(await charging.records("acme", ACME_3)) == 1

    cca = await charging.send(ccr(sid, TERMINATION, 2, msccs=[Mscc(10, None, [])], **roam))
    assert result_code(cca) == 2001
    account = await charging.account("acme", ACME_3)
    assert account.balance == OPENING - retail and account.held_money == 0
    assert account.sessions == () and charging.sessions.get(sid) is None


async def test_termination_after_suspension_commits_its_usage(charging: Charging) -> None:
    sid = "pgw.test.local;1;suspended-t"
    roam = {"msisdn": ACME_3, "visited_plmn": ROAMING}
    await charging.send(ccr(sid, INITIAL, 0, msccs=[Mscc(10)], **roam))
    await reload(charging, ("acme",))
    used = [{"cc_total_octets": MIB}]
    cca = await charging.send(ccr(sid, TERMINATION, 1, msccs=[Mscc(10, None, used)], **roam))
    assert result_code(cca) == 2001
    account = await charging.account("acme", ACME_3)
    assert account.balance == OPENING - 5_000_000 and account.held_money == 0
    assert account.sessions == ()


def _sms(number: int, action: int, msisdn: str = ACME_3) -> Message:
    return ccr(
        "smsc;sms;suspended",
        EVENT,
        number,
        msisdn=msisdn,
        context=SMS_CONTEXT,
        requested_action=action,
        msccs=[Mscc(None, {"cc_service_specific_units": 1})],
    )


async def test_events_are_refused_but_a_refund_is_paid(charging: Charging) -> None:
    # A refund refers to a debit (issue #11): one made before the suspension.
    assert result_code(await charging.send(_sms(0, DIRECT_DEBITING))) == 2001
    assert (await charging.account("acme", ACME_3)).balance == OPENING - 90_000
    await reload(charging, ("acme",))
    debit = await charging.send(_sms(1, DIRECT_DEBITING))
    assert result_code(debit) == 4010 and msccs_of(debit)[None]["units"] is None
    # Built whole with an event's failure handling: RETRY_AND_TERMINATE, TERMINATE_OR_BUFFER.
    assert _failure_handling(debit) == ({2}, {0})
    price = await charging.send(_sms(2, PRICE_ENQUIRY))
    assert result_code(price) == 4010
    check = await charging.send(_sms(3, CHECK_BALANCE))
    assert result_code(check) == 4010 and check.check_balance_result == 1  # NO_CREDIT
    account = await charging.account("acme", ACME_3)
    assert account.balance == OPENING - 90_000 and account.held_money == 0
    assert len(await charging.records("acme", ACME_3, "debit")) == 1
    refund = await charging.send(_sms(4, REFUND_ACCOUNT))
    assert result_code(refund) == 2001
    assert (await charging.account("acme", ACME_3)).balance == OPENING


async def test_the_other_tenant_is_unaffected(charging: Charging) -> None:
    await reload(charging, ("acme",))
    cca = await charging.send(ccr("s;globex-on", INITIAL, 0, msisdn=GLOBEX_1, msccs=[Mscc(10)]))
    assert result_code(cca) == 2001 and msccs_of(cca)[10]["octets"]
    debit = await charging.send(_sms(0, DIRECT_DEBITING, GLOBEX_1))
    assert result_code(debit) == 2001


async def test_metrics_count_the_4010_answers_per_tenant(charging: Charging) -> None:
    metrics = Metrics()
    handler = CreditControlHandler(
        charging.directory,
        ChargingConfig(),
        origin_host="ocs.test.local",
        origin_realm="test.local",
        sessions=charging.sessions,
        log=make_logger("warning"),
        clock=charging.clock,
        metrics=metrics,
    )
    charging.handler = handler
    await reload(charging, ("acme",))
    await charging.send(ccr("s;metrics", INITIAL, 0, msisdn=ACME_1, msccs=[Mscc(10)]))
    await charging.send(_sms(0, DIRECT_DEBITING))
    text = metrics.render().decode()
    assert 'ocs_cc_requests_total{tenant="acme",type="INITIAL"} 1.0' in text
    assert 'ocs_cc_requests_total{tenant="acme",type="EVENT"} 1.0' in text
    assert 'ocs_cc_results_total{level="session",result_code="4010"} 2.0' in text
    assert 'ocs_cc_results_total{level="mscc",result_code="4010"} 2.0' in text
