"""Plan changes on a real Redis with a fake clock: immediately (daily proration, buckets
replaced or expired, the schedule moved) and at the next cycle (applied by the renewal
scheduler), each recorded with its actor, idempotent on its op id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import msgspec
import pytest

from balance import keys
from balance.errors import InsufficientCredit
from balance.ledger import Ledger
from balance.products import (
    AlreadyOnPlan,
    current_plan,
    due_key,
    plan_key,
    read_changed_plan,
    read_changed_plans,
)
from balance.records import LedgerRecord
from diameter_apps.credit_control import SubscriptionId, SubscriptionIdType
from ocs.charging.directory import CatalogSnapshot
from ocs.plan_change import change_subscriber_plan
from ocs.renewal import Renewer
from ocs.subscriber_directory import DynamicDirectory
from tariffs.model import Catalog, PlanChangePolicy, Tenant
from tests.balance.installed import installed_tenant
from tests.balance.test_account_cli import ACME_1, run, store
from tests.balance.test_addons import query
from tests.balance.test_events import events_of
from tests.balance.test_renewal import FEB_28, JAN_31, MAR_31, berlin
from tests.tariffs.catalogs import MINIMAL

CATALOG = (
    MINIMAL.replace("tenant: mini", "tenant: pc")
    + """\
bundles:
  - {id: small, fee: 0, validity: P1M, priority: 5, on_exhaust: payg,
     allowances: [{name: data, service: data, amount: 1000}]}
  - {id: big, fee: 0, validity: P1M, priority: 5, on_exhaust: payg,
     allowances: [{name: data, service: data, amount: 5000}]}
plans:
  - {id: m, fee: 10, cycle: monthly, bundles: [small]}
  - {id: b, fee: 28, cycle: monthly, bundles: [big]}
  - {id: payg}
plan_change: {proration: daily, buckets: replace}
subscribers:
  opening_balance: 30
  plan: m
  entries:
    - {msisdn: "4915100000001"}
    - {msisdn: "4915100000002", opening_balance: 5}
"""
)
RICH, POOR = "4915100000001", "4915100000002"
FEB_14 = berlin(2026, 2, 14, 12)
_RECORD = msgspec.msgpack.Decoder(LedgerRecord)


@pytest.fixture
async def setup(redis_url: str) -> AsyncIterator[tuple[Catalog, Ledger, Renewer]]:
    async with installed_tenant(redis_url, "pc", CATALOG, JAN_31) as installed:
        yield installed


async def change(
    ledger: Ledger, tenant: Tenant, subscriber: str, to: str, now: int, *, later: bool = False
) -> None:
    await change_subscriber_plan(
        ledger,
        tenant,
        subscriber,
        catalog_plan="m",
        to_plan=to,
        at_next_cycle=later,
        actor="cli:agent-7",
        now_s=now,
        op_id=f"cli:chg-{subscriber}-{to}-{now}",
    )


async def schedule(ledger: Ledger, subscriber: str) -> dict[str, float]:
    prefix = keys.subscriber_prefix("pc", subscriber)
    found = await ledger.client.zrange(due_key(prefix), 0, -1, withscores=True)
    return {m.decode(): score for m, score in found if m.decode().startswith(subscriber)}


async def records(ledger: Ledger, subscriber: str) -> list[LedgerRecord]:
    stream = keys.stream_key(keys.subscriber_prefix("pc", subscriber))
    found = [_RECORD.decode(f[b"r"]) for _, f in await ledger.client.xrange(stream)]
    return [r for r in found if r.subscriber == subscriber]


async def test_immediate_change_prorates_daily_and_replaces_buckets(
    setup: tuple[Catalog, Ledger, Renewer],
) -> None:
    catalog, ledger, _ = setup
    tenant = catalog.tenants[0]
    await change(ledger, tenant, RICH, "b", FEB_14)
    account = await ledger.query(RICH)
    # b's cycle starts now (monthly on the 14th): its 28.00 in full; m's cycle 31 Jan - 28 Feb
    # is 28 days, of which 14 (14 Feb inclusive) unused: 10.00 * 14 / 28 = 5.00 back.
    assert account.balance == 30_000_000 - 28_000_000 + 5_000_000
    # replace: the 1000 left of m's bucket moved into b's 5000.
    live = [(b.kind, b.remaining) for b in account.buckets if b.live(FEB_14)]
    assert live == [("big.data", 6000)]
    assert await schedule(ledger, RICH) == {f"{RICH}|plan:b": berlin(2026, 3, 14, 12)}
    assert (await current_plan(ledger, RICH, "m")).plan == "b"
    plan_record = (await records(ledger, RICH))[-1]
    assert (plan_record.kind, plan_record.service) == ("plan", "b")
    assert plan_record.reason == "m -> b (now) by cli:agent-7"
    assert (plan_record.retail, plan_record.money_delta) == (28_000_000, -23_000_000)
    (event,) = [e for e in await events_of(ledger, RICH) if e.type == "plan_changed"]
    assert event.payload["credit"] == 5_000_000 and event.payload["actor"] == "cli:agent-7"
    # The same op id again: replayed, nothing charged twice.
    await change(ledger, tenant, RICH, "b", FEB_14)
    assert (await ledger.query(RICH)).balance == 7_000_000
    with pytest.raises(AlreadyOnPlan, match="on plan b already"):
        await change(ledger, tenant, RICH, "b", FEB_14 + 60)


async def test_immediate_change_refused_or_to_a_plan_without_fee(
    setup: tuple[Catalog, Ledger, Renewer],
) -> None:
    catalog, ledger, _ = setup
    tenant = catalog.tenants[0]
    with pytest.raises(InsufficientCredit):  # 5.00 does not pay 28.00 - 5.00
        await change(ledger, tenant, POOR, "b", FEB_14)
    assert (await ledger.query(POOR)).balance == 5_000_000
    assert (await current_plan(ledger, POOR, "m")).plan == "m"
    # No proration, buckets expire: to pay-as-you-go, no fee, nothing back, no schedule.
    strict = msgspec.structs.replace(tenant, plan_change=PlanChangePolicy("none", "expire"))
    await change(ledger, strict, POOR, "payg", FEB_14)
    account = await ledger.query(POOR)
    assert account.balance == 5_000_000
    assert [b.remaining for b in account.buckets if b.live(FEB_14)] == []
    assert await schedule(ledger, POOR) == {}
    kinds = [r.kind for r in await records(ledger, POOR)]
    assert kinds[-2:] == ["expired", "plan"]
    stored = await ledger.client.hget(plan_key(keys.subscriber_prefix("pc", POOR)), POOR)
    assert stored is not None and msgspec.msgpack.decode(stored)[0] == "payg"


async def test_change_at_next_cycle_applied_by_the_renewal(
    setup: tuple[Catalog, Ledger, Renewer],
) -> None:
    catalog, ledger, renewer = setup
    tenant = catalog.tenants[0]
    await change(ledger, tenant, RICH, "b", FEB_14, later=True)
    assert (await ledger.query(RICH)).balance == 30_000_000  # nothing charged yet
    assert (await current_plan(ledger, RICH, "m")).pending == "b"
    stats = await renewer.run_tenant(tenant, FEB_28)
    assert (stats.applied, stats.unpaid) == (1, 1)  # RICH switched; POOR cannot pay m
    account = await ledger.query(RICH)
    assert account.balance == 30_000_000 - 28_000_000  # b's fee, not m's
    live = [(b.kind, b.remaining, b.expires_at_s) for b in account.buckets if b.live(FEB_28)]
    assert live == [("big.data", 5000, float(MAR_31))]  # m's bucket ended with its cycle
    assert await schedule(ledger, RICH) == {f"{RICH}|plan:b": MAR_31}  # the anniversary kept
    assert (await current_plan(ledger, RICH, "m")).plan == "b"
    paid = [r for r in await records(ledger, RICH) if r.kind == "bucket" and r.retail > 0]
    assert [(r.reason, r.retail) for r in paid] == [("plan:b", 28_000_000)]
    reasons = [r.reason for r in await records(ledger, RICH) if r.kind == "plan"]
    assert reasons == ["m -> b (next cycle) by cli:agent-7", "m -> b (next cycle) by renewal"]
    again = await renewer.run_tenant(tenant, FEB_28 + 60)
    assert again.due == 0
    # The next cycle is b's own renewal: 2.00 does not pay 28.00, so grace on plan b.
    await renewer.run_tenant(tenant, MAR_31)
    assert (await current_plan(ledger, RICH, "m")).state == 1


def test_change_plan_command(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:

    store(redis_url)
    base = ("--tenant", "acme", "--redis-url", redis_url)
    assert run(capsys, "account", "create", *base, ACME_1, "--balance", "12.00")[0] == 0
    change = ("account", "change-plan", *base, ACME_1)
    for attempt in range(2):  # data10 starts today: its 10.00 in full; retried: once
        code, out, _ = run(capsys, *change, "data10", "--op-id", "T-9", "--actor", "agent-7")
        assert code == 0 and out.startswith("op id" if attempt else "plan data10")
    assert query(redis_url, "acme", ACME_1).balance == 2_000_000
    code, out, _ = run(capsys, *change, "payg", "--at", "next-cycle", "--json")
    assert code == 0 and json.loads(out)["plan"] == {"plan": "data10", "next_cycle_plan": "payg"}
    code, _, err = run(capsys, *change, "data10")
    assert code == 1 and "on plan data10 already" in err
    code, _, err = run(capsys, *change, "gold")
    assert code == 1 and "tenant 'acme' has no plan 'gold' (plans: payg, data10)" in err
    code, _, err = run(capsys, *change, "data10", "--actor", "a b")
    assert code == 2 and "--actor 'a b'" in err


async def test_ingestion_resolves_the_changed_plan(setup: tuple[Catalog, Ledger, Renewer]) -> None:
    """What a server does at start, on a ``plan`` notice and at each resync: the changed plans
    from the shards, applied when a request's subscriber is resolved."""
    catalog, ledger, _ = setup
    await change(ledger, catalog.tenants[0], RICH, "b", FEB_14)
    dynamic = DynamicDirectory()
    snapshot = CatalogSnapshot(catalog, dynamic)

    def plan_of(msisdn: str) -> str | None:
        ref = snapshot.resolve_ids((SubscriptionId(SubscriptionIdType.E164, msisdn),))
        return None if ref is None else ref.plan

    assert plan_of(RICH) == "m"  # not read yet: the catalog's plan
    dynamic.replace_plans("pc", await read_changed_plans(ledger.client, "pc"))
    assert (plan_of(RICH), plan_of(POOR)) == ("b", "m")
    assert await read_changed_plan(ledger.client, "pc", RICH) == "b"
    dynamic.set_plan("pc", RICH, None)
    assert plan_of(RICH) == "m"


async def test_change_at_next_cycle_to_a_plan_that_does_not_renew(
    setup: tuple[Catalog, Ledger, Renewer],
) -> None:
    catalog, ledger, renewer = setup
    tenant = catalog.tenants[0]
    await change(ledger, tenant, POOR, "payg", FEB_14, later=True)
    stats = await renewer.run_tenant(tenant, FEB_28)
    assert stats.applied == 2  # RICH renewed m; POOR moved to payg (no fee to pay)
    assert (await ledger.query(POOR)).balance == 5_000_000
    assert (await current_plan(ledger, POOR, "m")).plan == "payg"
    assert await schedule(ledger, POOR) == {}
    assert (await renewer.run_tenant(tenant, FEB_28 + 60)).due == 0
