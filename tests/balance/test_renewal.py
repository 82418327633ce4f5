"""Recurring renewals with a fake clock on a real Redis: month ends with and without rollover,
a missed renewal after downtime, two scheduler processes, grace then suspension."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from balance import keys
from balance.ledger import Ledger
from balance.products import due_key
from ocs.renewal import PassStats, Renewer
from tariffs.model import Catalog
from tests.balance.installed import installed_tenant
from tests.balance.test_events import events_of
from tests.tariffs.catalogs import MINIMAL

BERLIN = ZoneInfo("Europe/Berlin")
ROOT = Path(__file__).resolve().parents[2]
CATALOG = (
    MINIMAL.replace("tenant: mini", "tenant: rn")
    + """\
bundles:
  - {id: keep, fee: 0, validity: P1M, priority: 5, on_exhaust: payg, rollover_cap: 600,
     allowances: [{name: data, service: data, amount: 1000}]}
  - {id: lose, fee: 0, validity: P1M, priority: 4, on_exhaust: payg,
     allowances: [{name: data, service: data, amount: 1000}]}
plans:
  - {id: m, fee: 10, cycle: monthly, bundles: [keep, lose]}
renewal: {grace: P1D, retry: PT6H}
subscribers:
  opening_balance: 30
  plan: m
  entries:
    - {msisdn: "4915100000001"}
    - {msisdn: "4915100000002", opening_balance: 5}
"""
)
RICH, POOR = "4915100000001", "4915100000002"


def berlin(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=BERLIN).timestamp())  # type: ignore[misc]


JAN_31 = berlin(2026, 1, 31, 10)
FEB_28 = berlin(2026, 2, 28, 10)
MAR_31 = berlin(2026, 3, 31, 10)


@pytest.fixture
async def setup(redis_url: str) -> AsyncIterator[tuple[Catalog, Ledger, Renewer]]:
    async with installed_tenant(redis_url, "rn", CATALOG, JAN_31) as installed:
        yield installed


async def buckets(ledger: Ledger, subscriber: str) -> list[tuple[str, int, float]]:
    account = await ledger.query(subscriber)
    return sorted((b.id, b.remaining, b.expires_at_s) for b in account.buckets)


async def due_at(ledger: Ledger, subscriber: str) -> float | None:
    prefix = keys.subscriber_prefix("rn", subscriber)
    score: float | None = await ledger.client.zscore(due_key(prefix), f"{subscriber}|plan:m")
    return score


async def test_month_end_renewal_with_and_without_rollover(
    setup: tuple[Catalog, Ledger, Renewer],
) -> None:
    catalog, ledger, renewer = setup
    tenant = catalog.tenants[0]
    assert await due_at(ledger, RICH) == FEB_28  # anniversary on the 31st: 28 February
    assert await renewer.run_tenant(tenant, FEB_28 - 1) == PassStats()  # not due yet
    stats = await renewer.run_tenant(tenant, FEB_28)
    assert (stats.due, stats.applied, stats.unpaid) == (2, 1, 1)
    assert (await ledger.query(RICH)).balance == 20_000_000
    # keep: 1000 fresh + 600 of the 1000 left rolled over; lose: 1000 fresh, the rest expired.
    assert await buckets(ledger, RICH) == [
        (f"keep.data#r{FEB_28}", 1600, float(MAR_31)),
        (f"lose.data#r{FEB_28}", 1000, float(MAR_31)),
    ]
    assert await due_at(ledger, RICH) == MAR_31  # back on the 31st
    stats = await renewer.run_tenant(tenant, MAR_31 + 60)
    assert stats.applied == 1 and (await ledger.query(RICH)).balance == 10_000_000
    assert [b[1] for b in await buckets(ledger, RICH)] == [1600, 1000]  # capped at 600 again


async def test_missed_renewal_after_downtime_runs_exactly_once(
    setup: tuple[Catalog, Ledger, Renewer],
) -> None:
    catalog, ledger, renewer = setup
    june_15 = berlin(2026, 6, 15, 12)
    stats = await renewer.run_tenant(catalog.tenants[0], june_15)  # Feb..May were missed
    assert stats.applied == 1
    assert (await ledger.query(RICH)).balance == 20_000_000  # one fee, not four
    assert await due_at(ledger, RICH) == berlin(2026, 6, 30, 10)
    again = await renewer.run_tenant(catalog.tenants[0], june_15 + 3600)
    assert again.applied == 0 and (await ledger.query(RICH)).balance == 20_000_000


async def test_unpaid_renewal_grace_then_suspend_then_paid(
    setup: tuple[Catalog, Ledger, Renewer],
) -> None:
    catalog, ledger, renewer = setup
    tenant = catalog.tenants[0]
    await renewer.run_tenant(tenant, FEB_28)
    poor = await ledger.query(POOR)
    assert poor.balance == 5_000_000 and poor.state_code == 0  # grace: still served
    assert await due_at(ledger, POOR) == FEB_28 + 6 * 3600  # retried every 6 h
    await renewer.run_tenant(tenant, FEB_28 + 6 * 3600)  # still within the day of grace
    assert (await ledger.query(POOR)).state_code == 0
    stats = await renewer.run_tenant(tenant, FEB_28 + 86_400)
    assert stats.unpaid == 1 and (await ledger.query(POOR)).state_code == 1  # suspended
    await ledger.topup(POOR, 20_000_000, now_s=FEB_28 + 90_000)
    stats = await renewer.run_tenant(tenant, FEB_28 + 86_400 + 6 * 3600)
    assert stats.applied == 1
    poor = await ledger.query(POOR)
    assert poor.state_code == 0 and poor.balance == 15_000_000
    assert await due_at(ledger, POOR) == MAR_31  # the cycle it paid for, late


def test_two_scheduler_processes_renew_once(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "rn.yaml"
    path.write_text(CATALOG)
    base = ["--redis-url", redis_url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ocs = [sys.executable, "-m", "ocs"]
    loaded = subprocess.run(
        [*ocs, "catalog", "load", str(path), *base, "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    later = str(int(time.time()) + 40 * 86_400)  # one cycle on from the load
    runs = [
        subprocess.Popen(
            [*ocs, "renew", "--now", later, "--json", *base],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), outs
    stats = [json.loads(out)["rn"] for out, _ in outs]
    assert sum(s["applied"] for s in stats) == 1  # RICH, by one of the two
    assert sum(s["unpaid"] for s in stats) >= 1  # POOR: grace (either may record it)

    async def balance() -> int:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return (await Ledger(client, "rn").query(RICH)).balance
        finally:
            await client.aclose()

    assert asyncio.run(balance()) == 20_000_000


async def test_renewal_changes_are_events(setup: tuple[Catalog, Ledger, Renewer]) -> None:
    # grant.lua writes the event of each record it makes (suspension, fee, buckets, unblock).
    catalog, ledger, renewer = setup
    tenant = catalog.tenants[0]
    for at in (FEB_28, FEB_28 + 86_400):  # unpaid, then past grace: suspended
        await renewer.run_tenant(tenant, at)
    await ledger.topup(POOR, 20_000_000, now_s=FEB_28 + 90_000)
    await renewer.run_tenant(tenant, FEB_28 + 86_400 + 6 * 3600)  # paid: service again
    events = await events_of(ledger, POOR)
    types = [e.type for e in events]
    assert types.count("blocked") == 1 and types.index("blocked") < types.index("topped_up")
    renewal = [e for e in events[types.index("topped_up") + 1 :] if e.type != "bundle_expired"]
    assert [e.type for e in renewal] == ["bundle_bought", "unblocked", "bundle_granted"]
    assert renewal[0].payload["fee"] == 10_000_000 and renewal[1].payload["state"] == 0


def test_the_scheduler_loop_waits_for_a_catalog_and_stops_on_sigterm(
    redis_url: str, tmp_path: Path
) -> None:
    """``ocs renew --loop`` as ``ocs up`` and systemd run it: started before the server stored a
    catalog it waits for one instead of exiting; SIGTERM ends it with status 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ocs = [sys.executable, "-m", "ocs"]
    loop = subprocess.Popen(
        [*ocs, "renew", "--loop", "--interval", "0.2", "--json", "--redis-url", redis_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert loop.stderr is not None and loop.stdout is not None
        assert "no catalog is stored" in loop.stderr.readline()
        assert loop.poll() is None  # still waiting
        path = tmp_path / "rn.yaml"
        path.write_text(CATALOG)
        loaded = subprocess.run(
            [*ocs, "catalog", "load", str(path), "--redis-url", redis_url,
             "--data-dir", str(tmp_path / "d")],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        assert "rn" in json.loads(loop.stdout.readline())  # a pass over the stored catalog
    finally:
        loop.send_signal(signal.SIGTERM)
        code = loop.wait(timeout=60)
    assert code == 0
