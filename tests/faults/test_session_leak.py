"""Finding 3 of issue #11: refused sessions leak. A CCR-I that is refused leaves no session in
the ledger (so it does not count toward ``sessions_max``), and sessions that hold nothing any
more (abandoned, their reservations expired by Tcc) never lock a subscriber out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from balance.errors import LimitExceeded, Outcome
from balance.ledger import Ledger
from tests.balance.scenarios import NOW, SUB, rg
from tests.charging.conftest import Charging
from tests.support.gy import INITIAL, TERMINATION, Mscc, ccr, msccs_of, result_code

SESSIONS_MAX = 4
MIB = 1_048_576


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[Ledger]:
    client = aioredis.Redis.from_url(redis_url)
    yield Ledger(client, "acme", sessions_max=SESSIONS_MAX)
    await client.aclose()


async def test_refused_initial_requests_leave_no_session(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=0, now_s=NOW)
    for n in range(3 * SESSIONS_MAX):
        result = await ledger.credit_control(
            SUB, f"s{n}", f"s{n}:0", [rg(requested=100)], now_s=NOW + n, request_kind=1
        )
        assert result.items[0].outcome is Outcome.CREDIT_LIMIT_REACHED
    assert (await ledger.query(SUB)).sessions == ()
    await ledger.topup(SUB, 1_000, now_s=NOW + 100)
    granted = await ledger.credit_control(
        SUB, "ok", "ok:0", [rg(requested=100)], now_s=NOW + 100, request_kind=1
    )
    assert granted.items[0].granted_units == 100


async def test_a_replayed_refused_initial_is_still_refused_the_same_way(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=0, now_s=NOW)
    first = await ledger.credit_control(SUB, "s", "s:0", [rg(requested=10)], now_s=NOW,
                                        request_kind=1)  # fmt: skip
    again = await ledger.credit_control(SUB, "s", "s:0", [rg(requested=10)], now_s=NOW + 1,
                                        request_kind=1)  # fmt: skip
    assert again.replayed and again.raw == first.raw


async def test_sessions_holding_nothing_never_lock_the_subscriber_out(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=10_000, now_s=NOW)
    for n in range(SESSIONS_MAX):  # opened without a grant, then the gateway vanished
        await ledger.credit_control(SUB, f"gone{n}", f"gone{n}:0", [rg(requested=0)],
                                    now_s=NOW + n, request_kind=1)  # fmt: skip
    assert len((await ledger.query(SUB)).sessions) == SESSIONS_MAX
    result = await ledger.credit_control(SUB, "new", "new:0", [rg(requested=10)],
                                         now_s=NOW + 10, request_kind=1)  # fmt: skip
    assert result.items[0].granted_units == 10
    sessions = [s.session_id for s in (await ledger.query(SUB)).sessions]
    # The least recently active session holding nothing made room.
    assert len(sessions) == SESSIONS_MAX and "new" in sessions and "gone0" not in sessions


async def test_sessions_that_all_hold_reservations_are_a_real_limit(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=10_000, now_s=NOW)
    for n in range(SESSIONS_MAX):
        await ledger.credit_control(SUB, f"live{n}", f"live{n}:0", [rg(requested=10)],
                                    now_s=NOW + n, request_kind=1)  # fmt: skip
    with pytest.raises(LimitExceeded):
        await ledger.credit_control(SUB, "x", "x:0", [rg(requested=10)], now_s=NOW + 10,
                                    request_kind=1)  # fmt: skip
    await ledger.expire_due(NOW + 120)  # Tcc released them: room again
    result = await ledger.credit_control(SUB, "y", "y:0", [rg(requested=10)],
                                         now_s=NOW + 121, request_kind=1)  # fmt: skip
    assert result.items[0].granted_units == 10


async def test_a_ccr_i_refused_for_credit_is_4012_and_leaves_no_session(charging: Charging) -> None:
    subscriber = "4917099000040"
    roam = {"visited_plmn": "310260", "msisdn": subscriber}
    sid = "s;drain"
    cca = await charging.send(
        ccr(sid, INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": 2 * MIB})], **roam)
    )
    assert msccs_of(cca)[10]["octets"] == 2 * MIB  # 10.00 EUR: all of it
    await charging.send(
        ccr(sid, TERMINATION, 1, msccs=[Mscc(10, None, [{"cc_total_octets": 2 * MIB}])], **roam)
    )
    for n in range(40):  # more than [ledger] sessions_max (32)
        refused = await charging.send(
            ccr(f"s;refused;{n}", INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": MIB})], **roam)
        )
        # Every MSCC refused: the session is not established (RFC 4006 command-level code).
        assert result_code(refused) == 4012 and msccs_of(refused)[10]["result_code"] == 4012
        assert charging.sessions.get(f"s;refused;{n}") is None
    assert (await charging.account("acme", subscriber)).sessions == ()
