"""What the in-script notification checks cost the CCR path: the same steady-state CCR-U (two
rating groups drawing a data bucket, commit + re-reserve) with the tenant's thresholds off and
on, interleaved round by round in one run on one Redis.

- off: no balance levels, no bucket percents (the scripts' cost when a tenant configures none:
  one comparison of the posted balance, one type test for the bucket snapshot);
- on: 8 balance levels and 4 bucket percents (the posted balance of each bucket snapshotted
  before and compared after; no level is crossed, as in steady state).

The figure is Redis's own CPU per script call (INFO commandstats ``usec_per_call`` of FCALL),
which does not include the client; its ratio on/off is what the checks cost. The box is shared:
the load average is recorded with each round, and the ratio (same run, interleaved) is the
figure to compare, not the absolute microseconds.

    .venv/bin/python -m benchmarks.bench_thresholds [--requests 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from balance.errors import Outcome
from balance.ledger import Ledger
from balance.records import BucketUnit, RatingGroupRequest, UsedLeg
from balance.scripts import ScriptSet
from ocs.embedded_redis import EmbeddedRedis
from tariffs.price import Price

RESULTS_PATH = Path(__file__).parent / "results" / "ledger_thresholds.json"
TENANT = "bench"
SUBSCRIBER = "4917099999998"
NOW_S = 1_765_000_000.0
PRICE = Price(1, 1, 1, 2, step_units=10)
UNITS = 1000
BALANCE_LEVELS = [m * 1_000_000 for m in (1, 2, 5, 10, 20, 50, 100, 200)]  # 8, the most
BUCKET_PERCENTS = [50, 20, 10, 5]  # 4, the most


def items() -> list[RatingGroupRequest]:
    return [
        RatingGroupRequest(
            rating_group=group,
            service="data",
            kinds=("data",),
            used=(UsedLeg("data:home", UNITS, PRICE),),
            requested_units=UNITS,
            reserve_leg_key="data:home",
            reserve_price=PRICE,
            valid_until_s=NOW_S + 60,
        )
        for group in (10, 20)
    ]


def ledger_for(client: Any, thresholds: bool, clients: int) -> Ledger:
    ledger = Ledger(client, TENANT, in_flight_max=clients)
    if thresholds:
        ledger.set_balance_below(BALANCE_LEVELS)
        ledger.set_bucket_below(BUCKET_PERCENTS)
    return ledger


async def prepare(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    ledger = Ledger(client, TENANT)
    await ledger.provision_account(SUBSCRIBER, balance=10**15, now_s=NOW_S)
    await ledger.add_bucket(
        SUBSCRIBER, bucket_id="data", kind="data", unit=BucketUnit.BYTES, amount=10**15,
        now_s=NOW_S,
    )  # fmt: skip
    await ledger.aclose()


async def run_round(url: str, thresholds: bool, clients: int, requests: int, tag: str) -> float:
    """CCRs per second through ``Ledger.credit_control`` (each with a fresh op id)."""
    client = aioredis.Redis.from_url(url, max_connections=clients)
    ledger = ledger_for(client, thresholds, clients)
    batch = items()
    counter = iter(range(requests))

    async def worker() -> None:
        for n in counter:
            result = await ledger.credit_control(
                SUBSCRIBER, "pgw;bench;1", f"{tag}:{n}", batch, now_s=NOW_S
            )
            if result.items[0].outcome is not Outcome.OK:
                raise RuntimeError(f"unexpected result {result}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    await ledger.aclose()
    return requests / elapsed


def usec_per_call(url: str) -> float:
    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    client.config_resetstat()
    client.close()
    return float(stats.get("cmdstat_fcall", {}).get("usec_per_call", 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    if min(args.clients, args.requests, args.rounds) <= 0:
        parser.error("--clients, --requests and --rounds must be positive")
    runs: dict[str, dict[str, list[float]]] = {
        name: {"usec": [], "ccr_per_s": []} for name in ("off", "on")
    }
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as data_dir, EmbeddedRedis(Path(data_dir)) as server:
        redis.Redis.from_url(server.url).function_load(ScriptSet.load().library)
        asyncio.run(prepare(server.url))
        asyncio.run(run_round(server.url, True, args.clients, 500, "warm"))
        usec_per_call(server.url)  # resets the counters
        for round_no in range(args.rounds):
            # Alternate which goes first, so a drift of the box's load favours neither.
            order = ("off", "on") if round_no % 2 == 0 else ("on", "off")
            for name in order:
                tag = f"{name}{round_no}"
                rate = asyncio.run(
                    run_round(server.url, name == "on", args.clients, args.requests, tag)
                )
                runs[name]["ccr_per_s"].append(round(rate, 1))
                runs[name]["usec"].append(round(usec_per_call(server.url), 2))
            loads.append(os.getloadavg()[0])
            print(
                f"round {round_no + 1}: off {runs['off']['usec'][-1]:.1f} us/script, "
                f"on {runs['on']['usec'][-1]:.1f} us/script (load {loads[-1]:.1f})"
            )
    off = statistics.median(runs["off"]["usec"])
    on = statistics.median(runs["on"]["usec"])
    pairs = [b / a for a, b in zip(runs["off"]["usec"], runs["on"]["usec"], strict=True) if a]
    result = {
        "benchmark": "CCR script with the notification checks off / on, same run, interleaved",
        "command": f"python -m benchmarks.bench_thresholds --clients {args.clients} "
        f"--requests {args.requests} --rounds {args.rounds}",
        "request": "CCR-U, 2 rating groups each committing 1000 units from a data bucket and "
        "re-reserving 1000; fresh op id per call",
        "on": {"balance_levels": len(BALANCE_LEVELS), "bucket_percents": len(BUCKET_PERCENTS)},
        "script_usec_per_call": {name: runs[name]["usec"] for name in runs},
        "ccr_per_s": {name: runs[name]["ccr_per_s"] for name in runs},
        "script_usec_per_call_median": {"off": off, "on": on},
        "ratio_on_over_off_median": round(on / off, 3) if off else None,
        "ratio_on_over_off_per_round": [round(p, 3) for p in pairs],
        "load_average_1m_per_round": [round(v, 2) for v in loads],
        "cpus": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"notification checks: {off:.1f} us/script off, {on:.1f} on: ratio {on / off:.3f} "
        f"(load {statistics.median(loads):.1f} on {os.cpu_count()} cpus) -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
