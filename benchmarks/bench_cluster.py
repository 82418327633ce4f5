"""Ledger calls on a local Redis Cluster against a standalone Redis, in the same run, and the
cost of waiting for a replica (``redis.wait_replicas``) on both.

Set-up: a standalone primary with one replica, and a cluster of 3 primaries with a replica
each, all on loopback. One client process sends steady-state CCR-Us (two rating groups, commit
+ re-reserve, fresh operation ids) for 256 subscribers spread over every slot, ``--clients``
in flight, through ``Ledger.credit_control`` in these modes, interleaved round by round so
load drift hits them all alike:

- ``standalone``: the lean pipelined connection;
- ``cluster_redispy``: every call through redis-py's cluster client, one round trip each (how
  the ledger ran on a cluster before it had one lean connection per primary);
- ``cluster``: one lean pipelined connection per primary, routed by hash slot;
- ``standalone_wait``, ``cluster_wait``: the same with ``WAIT 1`` closing each batch.

Per mode: CCR/s of the client, p50/p99 latency, the client process's CPU per CCR, and Redis
CPU per CCR (INFO commandstats, every command the primaries ran, WAIT included). Two ratios
answer the questions: the client's CCR/s on the cluster over standalone (what a core charges;
its CPU per CCR says the same without the scheduler's share), and per primary the CCR/s its CPU
allows (1e6 / Redis µs per CCR) over standalone's; goal >= 0.8 for both. The box is shared, so
the ratios, measured in the same run, are the figures; the load average is recorded.

    .venv/bin/python -m benchmarks.bench_cluster [--requests 4000] [--clients 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from balance.errors import Outcome
from balance.ledger import Ledger
from balance.replica_wait import ReplicaWait
from benchmarks.bench_ledger import (
    IDEMPOTENCY_TTL_S,
    NOW_S,
    OPENING_BALANCE,
    SESSION_IDLE_S,
    TENANT,
    ccr_items,
)
from ocs.embedded_redis import EmbeddedRedis
from tests.support.redis_cluster import LocalCluster

RESULTS_PATH = Path(__file__).parent / "results" / "cluster.json"
SUBSCRIBERS = 256
WAIT_TIMEOUT_MS = 100
MODES = ("standalone", "standalone_wait", "cluster_redispy", "cluster", "cluster_wait")
GOAL = 0.8


def subscribers() -> list[str]:
    return [f"49170{n:08d}" for n in range(SUBSCRIBERS)]


def new_ledger(client: aioredis.Redis | RedisCluster, clients: int, wait: bool) -> Ledger:
    return Ledger(
        client,
        TENANT,
        idempotency_ttl_s=IDEMPOTENCY_TTL_S,
        session_idle_s=float(SESSION_IDLE_S),
        in_flight_max=clients,
        replica_wait=ReplicaWait(1, WAIT_TIMEOUT_MS) if wait else None,
    )


def node_stats(nodes: list[EmbeddedRedis], reset: bool = False) -> float:
    """Total Redis CPU (µs) of every command the nodes ran since the last reset."""
    total = 0.0
    for node in nodes:
        client = redis.Redis(host=node.host, port=node.port)
        if reset:
            client.config_resetstat()
        else:
            stats = client.info("commandstats")
            total += sum(float(v.get("usec", 0)) for v in stats.values() if isinstance(v, dict))
        client.close()
    return total


async def run_mode(
    mode: str,
    client: aioredis.Redis | RedisCluster,
    primaries: list[EmbeddedRedis],
    args: argparse.Namespace,
    round_no: int,
) -> dict[str, float]:
    ledger = new_ledger(client, args.clients, mode.endswith("_wait"))
    if mode == "cluster_redispy":
        # The former cluster path: no lean connections, EVALSHA through redis-py per call.
        ledger._scripts._cluster = None
        ledger._scripts._functions = False
    items = ccr_items()
    subs = subscribers()
    latencies: list[float] = []

    async def call(n: int) -> None:
        sub = subs[n % len(subs)]
        started = time.perf_counter()
        result = await ledger.credit_control(
            sub, f"bench;{sub}", f"{mode}:{round_no}:{n}", items, now_s=float(NOW_S)
        )
        latencies.append(time.perf_counter() - started)
        if result.items[0].outcome is not Outcome.OK or result.replayed:
            raise RuntimeError(f"unexpected result {result}")

    # Warm-up: slot table, connections, library (not measured).
    await asyncio.gather(*(call(n) for n in range(len(subs))))
    latencies.clear()
    node_stats(primaries, reset=True)
    counter = iter(range(args.requests))

    async def worker() -> None:
        for n in counter:
            await call(len(subs) + n)

    started = time.perf_counter()
    cpu_started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(args.clients)))
    cpu = time.process_time() - cpu_started
    elapsed = time.perf_counter() - started
    redis_usec = node_stats(primaries)
    await ledger.aclose()
    latencies.sort()
    return {
        "ccr_per_s": args.requests / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "redis_usec_per_ccr": redis_usec / args.requests,
        "client_cpu_usec_per_ccr": 1e6 * cpu / args.requests,
    }


async def provision(client: aioredis.Redis | RedisCluster) -> None:
    ledger = new_ledger(client, 16, False)
    for sub in subscribers():
        await ledger.provision_account(sub, balance=OPENING_BALANCE, now_s=float(NOW_S))
    await ledger.aclose()


def wait_synced(replica: EmbeddedRedis) -> None:
    client = redis.Redis(host=replica.host, port=replica.port)
    deadline = time.monotonic() + 60
    while client.info("replication").get("master_link_status") != "up":
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not sync")
        time.sleep(0.05)
    client.close()


async def measure(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    primary = EmbeddedRedis(base / "primary")
    replica = EmbeddedRedis(
        base / "replica", extra_args=("--replicaof", "127.0.0.1", "0")
    )  # port filled in below
    cluster = LocalCluster(base / "cluster", primaries=3, replicas=1)
    try:
        primary.start()
        replica.extra_args = ("--replicaof", primary.host, str(primary.port))
        replica.start()
        wait_synced(replica)
        cluster.start()
        standalone = aioredis.Redis.from_url(primary.url, socket_timeout=5)
        clustered = RedisCluster.from_url(cluster.url, socket_timeout=5)
        await provision(standalone)
        await provision(clustered)
        cluster_primaries = cluster.primaries()
        version = redis.Redis(host=primary.host, port=primary.port).info("server")["redis_version"]
        rounds: list[dict[str, dict[str, float]]] = []
        load_before = os.getloadavg()
        for round_no in range(args.rounds):
            figures = {}
            for mode in MODES:
                on_cluster = mode.startswith("cluster")
                figures[mode] = await run_mode(
                    mode,
                    clustered if on_cluster else standalone,
                    cluster_primaries if on_cluster else [primary],
                    args,
                    round_no,
                )
                print(f"round {round_no} {mode}: {figures[mode]}", flush=True)
            rounds.append(figures)
        load_after = os.getloadavg()
        await standalone.aclose()
        await clustered.aclose()
    finally:
        cluster.stop()
        replica.stop()
        primary.stop()

    def median(mode: str, field: str) -> float:
        return statistics.median(r[mode][field] for r in rounds)

    medians = {mode: {f: round(median(mode, f), 3) for f in rounds[0][mode]} for mode in MODES}
    client_ratio = medians["cluster"]["ccr_per_s"] / medians["standalone"]["ccr_per_s"]
    per_primary_ratio = (
        medians["standalone"]["redis_usec_per_ccr"] / medians["cluster"]["redis_usec_per_ccr"]
    )
    return {
        "benchmark": "bench_cluster",
        "command": " ".join([".venv/bin/python -m benchmarks.bench_cluster", *sys.argv[1:]]),
        "redis_version": version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "requests_per_round": args.requests,
        "clients": args.clients,
        "subscribers": SUBSCRIBERS,
        "wait_timeout_ms": WAIT_TIMEOUT_MS,
        "medians": medians,
        "ratios": {
            "goal": GOAL,
            "cluster_over_standalone_client_ccr_per_s": round(client_ratio, 3),
            "cluster_over_standalone_per_primary_ccr_per_s": round(per_primary_ratio, 3),
            "standalone_over_cluster_client_cpu_per_ccr": round(
                medians["standalone"]["client_cpu_usec_per_ccr"]
                / medians["cluster"]["client_cpu_usec_per_ccr"],
                3,
            ),
            "redispy_over_lanes_client_cpu_per_ccr": round(
                medians["cluster_redispy"]["client_cpu_usec_per_ccr"]
                / medians["cluster"]["client_cpu_usec_per_ccr"],
                3,
            ),
            "cluster_lanes_over_redispy_client_ccr_per_s": round(
                medians["cluster"]["ccr_per_s"] / medians["cluster_redispy"]["ccr_per_s"], 3
            ),
            "wait_over_none_ccr_per_s_standalone": round(
                medians["standalone_wait"]["ccr_per_s"] / medians["standalone"]["ccr_per_s"], 3
            ),
            "wait_over_none_ccr_per_s_cluster": round(
                medians["cluster_wait"]["ccr_per_s"] / medians["cluster"]["ccr_per_s"], 3
            ),
            "wait_p99_ms_added_standalone": round(
                medians["standalone_wait"]["p99_ms"] - medians["standalone"]["p99_ms"], 3
            ),
            "wait_p99_ms_added_cluster": round(
                medians["cluster_wait"]["p99_ms"] - medians["cluster"]["p99_ms"], 3
            ),
        },
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=4000, help="CCRs per mode per round")
    parser.add_argument("--clients", type=int, default=64, help="calls in flight")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    if args.requests <= 0 or args.clients <= 0 or args.rounds <= 0:
        parser.error("--requests, --clients and --rounds must be positive")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as base:
        result = asyncio.run(measure(args, Path(base)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    ratios = result["ratios"]
    print(json.dumps(result["medians"], indent=2))
    print(
        f"cluster/standalone: client {ratios['cluster_over_standalone_client_ccr_per_s']}, "
        f"per primary {ratios['cluster_over_standalone_per_primary_ccr_per_s']} "
        f"(goal >= {GOAL}); lanes/redis-py {ratios['cluster_lanes_over_redispy_client_ccr_per_s']}"
        f"; WAIT 1 keeps {ratios['wait_over_none_ccr_per_s_cluster']} of CCR/s on the cluster"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
