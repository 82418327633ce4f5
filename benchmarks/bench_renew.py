"""Renewal throughput: subscribers renewed per second when a tenant's whole base renews at once
(a calendar-month plan, month start), by one ``Renewer`` pass (``ocs renew``), with Redis CPU
per renewal from ``INFO commandstats`` of the same run. A second pass right after measures the
cost of finding nothing due (every shard's due index read once).

Each subscriber has a 10.00 plan with two bundles (one rolling over, one expiring): a renewal
charges the fee, expires or carries the old buckets and grants two fresh ones, in one Lua call.

    .venv/bin/python -m benchmarks.bench_renew                      # 10,000 subscribers (~1 min)
    .venv/bin/python -m benchmarks.bench_renew --subscribers 100000 # the month-start figure
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from balance.ledger import Ledger
from balance.products import enroll, grant_product
from benchmarks.bench_ledger import machine_facts
from ocs.embedded_redis import EmbeddedRedis
from ocs.plan_change import plan_product
from ocs.products import bundle_specs
from ocs.renewal import Renewer
from tariffs.cycles import next_start
from tariffs.loader import load_texts
from tariffs.model import Tenant

RESULTS_PATH = Path(__file__).parent / "results" / "renew.json"
CATALOG = """\
tenant: bench
currency: EUR
country_code: "49"
timezone: Europe/Berlin
services:
  data: {context: data, unit: byte, rating_groups: [10]}
  voice: {context: mmtel, unit: second, default: true}
zones:
  home: {plmns: ["26201"]}
rates:
  - {service: data, price: 1, cost: 0.5, per: 1048576}
  - {service: voice, price: 0.10, cost: 0.01, per: 60}
bundles:
  - {id: data, fee: 0, validity: P1M, priority: 5, on_exhaust: payg, rollover_cap: 1073741824,
     allowances: [{name: data, service: data, amount: 10737418240}]}
  - {id: voice, fee: 0, validity: P1M, priority: 5, on_exhaust: payg,
     allowances: [{name: voice, service: voice, amount: 6000}]}
plans:
  - {id: m10, fee: 10, cycle: calendar_month, bundles: [data, voice]}
"""
MSISDN_FIRST = 4917000000000
ANCHOR = 1_793_487_600  # 2026-11-01 00:00 Europe/Berlin
SETUP_CONCURRENCY = 32


async def setup(url: str, tenant: Tenant, subscribers: int) -> None:
    """Accounts with 100.00, the plan's first-cycle buckets, and the plan enrolled."""
    client = aioredis.Redis.from_url(url)
    ledger = Ledger(client, tenant.id, in_flight_max=256)
    plan = tenant.plans[0]
    assert plan.cycle is not None
    first = next_start(plan.cycle, ANCHOR, ANCHOR, tenant.timezone)
    bundles = [b for b in tenant.bundles if b.id in plan.bundles]
    specs = [s for b in bundles for s in bundle_specs(b, ANCHOR, "c0", expires_at_s=first)]

    async def one(n: int) -> None:
        subscriber = str(MSISDN_FIRST + n)
        await ledger.provision_account(subscriber, balance=100_000_000, now_s=ANCHOR)
        await grant_product(
            ledger, subscriber, product="plan:m10", fee=0, buckets=specs, now_s=ANCHOR
        )
        await enroll(ledger, subscriber, plan_product(plan.id), first, ANCHOR)

    for start in range(0, subscribers, SETUP_CONCURRENCY):
        await asyncio.gather(
            *(one(n) for n in range(start, min(start + SETUP_CONCURRENCY, subscribers)))
        )
    await client.aclose()


def redis_cpu_usec(url: str) -> tuple[float, dict[str, Any]]:
    client = redis.Redis.from_url(url)
    info = client.info("cpu")
    stats = client.info("commandstats")
    client.close()
    return float(info["used_cpu_sys"] + info["used_cpu_user"]) * 1e6, stats


async def renew_pass(url: str, tenant: Tenant, now: int) -> tuple[Any, float, float]:
    client = aioredis.Redis.from_url(url)

    async def ledger_for(_: str) -> Ledger:
        return Ledger(client, tenant.id, in_flight_max=256)

    renewer = Renewer(ledger_for)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    stats = await renewer.run_tenant(tenant, now)
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    await client.aclose()
    return stats, wall, (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    if args.subscribers <= 0:
        parser.error("--subscribers must be positive")
    tenant = load_texts([("bench.yaml", CATALOG)]).tenants[0]
    plan = tenant.plans[0]
    assert plan.cycle is not None
    due = next_start(plan.cycle, ANCHOR, ANCHOR, tenant.timezone)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        setup_start = time.perf_counter()
        asyncio.run(setup(server.url, tenant, args.subscribers))
        setup_s = time.perf_counter() - setup_start
        redis.Redis.from_url(server.url).config_resetstat()
        cpu_before, _ = redis_cpu_usec(server.url)
        stats, wall, client_cpu = asyncio.run(renew_pass(server.url, tenant, due + 60))
        cpu_after, commandstats = redis_cpu_usec(server.url)
        idle_stats, idle_wall, _ = asyncio.run(renew_pass(server.url, tenant, due + 120))
    if stats.applied != args.subscribers or idle_stats.applied != 0:
        print(f"unexpected outcome: {stats} then {idle_stats}")
        return 1
    script_stats = {
        name: value
        for name, value in commandstats.items()
        if name.startswith("cmdstat_fcall") or name.startswith("cmdstat_evalsha")
    }
    result = {
        "benchmark": "renew",
        "subscribers": args.subscribers,
        "renewed": stats.applied,
        "wall_s": round(wall, 2),
        "renewals_per_s": round(stats.applied / wall, 1),
        "scheduler_cpu_us_per_renewal": round(client_cpu / stats.applied * 1e6, 1),
        "redis_cpu_us_per_renewal": round((cpu_after - cpu_before) / stats.applied, 1),
        "idle_pass_wall_s": round(idle_wall, 3),
        "setup_s": round(setup_s, 1),
        "script_commandstats": script_stats,
        "command": f"python -m benchmarks.bench_renew --subscribers {args.subscribers}",
        # The box is shared: the load (1, 5, 15 min) when the pass ended.
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_facts(),
    }
    print(
        f"renewed {stats.applied} subscribers in {wall:.2f} s: "
        f"{result['renewals_per_s']} renewals/s; scheduler CPU "
        f"{result['scheduler_cpu_us_per_renewal']} us, Redis CPU "
        f"{result['redis_cpu_us_per_renewal']} us per renewal; a pass with nothing due "
        f"{idle_wall * 1000:.0f} ms"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
