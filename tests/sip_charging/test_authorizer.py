"""The ledger-backed authorizer: outcomes, the grant from balance and price, one reservation."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from balance.ledger import Ledger
from balance.records import Account
from ocs.charging.directory import TenantDirectory
from ocs.embedded_redis import free_tcp_port
from ocs.logging_setup import make_logger
from ocs.sip.authorizer import AuthOutcome
from ocs.sip_charging.authorizer import LedgerAuthorizer
from ocs.sip_charging.reservation import parse_reservation
from tariffs.price import affordable_units
from tariffs.rating import UsageRequest
from tests.sip_charging.conftest import (
    ACME_CALLER,
    DE_MOBILE_CALLEE,
    GLOBEX_CALLER,
    GRACE_S,
    UNKNOWN_CALLER,
    Harness,
    new_authorizer,
)
from tests.support.charging import TUESDAY_10_BERLIN

EUR = 1_000_000  # micro-units


def holds(account: Account) -> list[tuple[str, int, int]]:
    """(session, granted units, money held) of every reservation of the account."""
    return [
        (session.session_id, group.granted_units, sum(h.amount for h in group.holds))
        for session in account.sessions
        for group in session.rating_groups
        if group.holds
    ]


async def test_authorized_call_gets_the_max_grant_when_money_covers_it(harness: Harness) -> None:
    decision = await harness.authorize()
    assert decision.outcome is AuthOutcome.AUTHORIZED
    assert decision.max_duration_s == 3600  # acme voice max_grant; 10.00 EUR covers 6666 s
    assert decision.route_uri == f"sip:+{DE_MOBILE_CALLEE}@gw.test"
    assert decision.tenant == "acme"
    ref = parse_reservation(decision.reservation_id or "")
    assert (ref.tenant, ref.subscriber) == ("acme", ACME_CALLER)
    account = await harness.account(ACME_CALLER)
    assert holds(account) == [(ref.session_id, 3600, 3600 * 1500)]  # 0.09 EUR/min = 1500 µ/s
    assert account.balance == 10 * EUR - 3600 * 1500


async def test_grant_is_capped_by_money(harness: Harness) -> None:
    ledger = await harness.ledger("acme")
    await ledger.adjust(ACME_CALLER, -9 * EUR, reason="test", now_s=harness.clock.now)
    decision = await harness.authorize()
    assert decision.outcome is AuthOutcome.AUTHORIZED
    # 1.00 EUR at 0.09 EUR/min, first 60 s then per second: 60 + (1.00 - 0.09) / 0.0015 = 666.
    rating = harness.directory.snapshot.rater.rate(
        UsageRequest(
            tenant="acme", now=TUESDAY_10_BERLIN, service="voice", called_number=DE_MOBILE_CALLEE
        )
    )
    assert decision.max_duration_s == affordable_units(rating.price, 0, 1 * EUR) == 666


async def test_off_peak_price_gives_a_longer_grant(harness: Harness) -> None:
    ledger = await harness.ledger("acme")
    await ledger.adjust(ACME_CALLER, -9 * EUR, reason="test", now_s=harness.clock.now)
    harness.clock.now = TUESDAY_10_BERLIN + 10 * 3600  # 20:00, off-peak: 0.05 EUR/min
    decision = await harness.authorize()
    assert decision.max_duration_s == 60 + (1 * EUR - 50_000) * 60 // 50_000 == 1200


async def test_empty_account_is_refused_and_leaves_no_session(harness: Harness) -> None:
    ledger = await harness.ledger("acme")
    await ledger.adjust(ACME_CALLER, -10 * EUR, reason="test", now_s=harness.clock.now)
    decision = await harness.authorize()
    assert decision.outcome is AuthOutcome.INSUFFICIENT_CREDIT
    assert (await harness.account(ACME_CALLER)).sessions == ()


async def test_blocked_account_is_refused(harness: Harness) -> None:
    ledger = await harness.ledger("acme")
    await ledger.block(ACME_CALLER, now_s=harness.clock.now, reason="fraud")
    decision = await harness.authorize()
    assert decision.outcome is AuthOutcome.BLOCKED
    account = await harness.account(ACME_CALLER)
    assert account.sessions == () and account.balance == 10 * EUR


async def test_unknown_caller_and_unrated_destination(harness: Harness) -> None:
    assert (await harness.authorize(UNKNOWN_CALLER)).outcome is AuthOutcome.UNKNOWN_SUBSCRIBER
    # 882 (international networks) is in no acme destination and no row covers it.
    decision = await harness.authorize(ACME_CALLER, "8821234567")
    assert decision.outcome is AuthOutcome.NOT_RATED
    assert (await harness.account(ACME_CALLER)).sessions == ()
    assert (await harness.authorize(GLOBEX_CALLER)).tenant == "globex"


async def test_retransmit_restart_and_second_process_reserve_once(harness: Harness) -> None:
    first = await harness.authorize()
    again = await harness.authorize()
    harness.clock.now += 7  # a late retransmission at a restarted / other server process
    other = await harness.authorize(authorizer=new_authorizer(harness))
    assert first == again == other
    account = await harness.account(ACME_CALLER)
    assert len(holds(account)) == 1
    assert account.balance == 10 * EUR - 3600 * 1500


async def test_distinct_calls_reserve_separately(harness: Harness) -> None:
    one = await harness.authorize(call_id="a@proxy")
    two = await harness.authorize(call_id="a@proxy", from_tag="other-tag")
    three = await harness.authorize(call_id="b@proxy")
    assert one.reservation_id != two.reservation_id
    assert one.max_duration_s == 3600
    # 10.00 - 5.40 = 4.60 EUR left: 60 s for 0.09, then (4.60 - 0.09) / 0.0015 = 3006 s more.
    assert two.max_duration_s == 60 + (10 * EUR - 3600 * 1500 - 90_000) // 1500 == 3066
    assert three.outcome is AuthOutcome.INSUFFICIENT_CREDIT
    account = await harness.account(ACME_CALLER)
    assert len(holds(account)) == 2
    assert account.balance == 1000  # less than one more second (1500)


async def test_hold_outlives_the_auto_end_deadline(harness: Harness) -> None:
    await harness.authorize()
    account = await harness.account(ACME_CALLER)
    group = account.sessions[0].rating_groups[0]
    deadline = TUESDAY_10_BERLIN + 3600 + GRACE_S
    assert group.valid_until_s > deadline
    assert group.valid_until_s == deadline + harness.policy.expiry_margin_s


async def test_healthy_follows_redis(harness: Harness) -> None:
    assert await harness.authorizer.healthy()

    async def down() -> bool:
        raise ConnectionError("refused")

    harness.authorizer._ping = down
    assert not await harness.authorizer.healthy()


async def test_ledger_down_is_unavailable(harness: Harness) -> None:
    dead = aioredis.Redis(
        host="127.0.0.1", port=free_tcp_port(), socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )

    async def dead_ledger(tenant: str) -> Ledger:
        return Ledger(dead, tenant)

    directory = TenantDirectory(harness.directory.snapshot.catalog, dead_ledger)
    authorizer = LedgerAuthorizer(
        directory, harness.policy, clock=harness.clock, ping=dead.ping, log=make_logger("warning")
    )
    decision = await harness.authorize(authorizer=authorizer)
    assert decision.outcome is AuthOutcome.UNAVAILABLE
    assert not await authorizer.healthy()
    await dead.aclose()
