"""The ledger suite against a local 3-master Redis Cluster the test starts: every script's keys
share one hash tag, so the same code runs unchanged through ``RedisCluster``."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoPermissionError

from balance import keys
from balance.ledger import Ledger
from balance.tenants import provision_tenant, tenant_password
from ocs.config import RedisConfig
from ocs.embedded_redis import EmbeddedRedis
from ocs.ledger_runtime import LedgerRuntime, RedisSetupError
from tests.balance import scenarios

MASTERS = 3
CLUSTER_READY_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EmbeddedRedis]]:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is needed to create the cluster")
    base = tmp_path_factory.mktemp("cluster")
    nodes = [
        EmbeddedRedis(
            Path(base) / f"n{i}",
            extra_args=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
        )
        for i in range(MASTERS)
    ]
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + CLUSTER_READY_TIMEOUT_S
        for node in nodes:
            client = redis.Redis(host=node.host, port=node.port)
            while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the test cluster did not reach cluster_state:ok")
                time.sleep(0.1)
            client.close()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
async def cluster(cluster_nodes: list[EmbeddedRedis]) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(cluster_nodes[0].url)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    await client.aclose()


@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda s: s.__name__)
async def test_scenario_on_cluster(cluster: RedisCluster, scenario: scenarios.Scenario) -> None:
    await scenario(Ledger(cluster, "acme"))


async def test_subscribers_spread_over_all_masters(
    cluster: RedisCluster, cluster_nodes: list[EmbeddedRedis]
) -> None:
    ledger = Ledger(cluster, "acme")
    subscribers = [f"49170990{n:05d}" for n in range(60)]
    await asyncio.gather(
        *(ledger.provision_account(s, balance=100, now_s=scenarios.NOW) for s in subscribers)
    )
    per_node = []
    for node in cluster_nodes:
        client = redis.Redis(host=node.host, port=node.port)
        per_node.append(int(client.dbsize()))
        client.close()
    # Per subscriber: account, idempotency record, record stream, event stream (60 distinct shards).
    assert all(size > 0 for size in per_node) and sum(per_node) == 4 * len(subscribers)
    shards = {keys.vshard(s) for s in subscribers}
    assert len(shards) > 40


async def test_double_spend_on_cluster(cluster: RedisCluster) -> None:
    ledger = Ledger(cluster, "acme", sessions_max=400)
    await ledger.provision_account("rich", balance=37, now_s=scenarios.NOW)
    item = scenarios.rg(requested=1)  # PER_UNIT: 10-unit increments at 1 micro each

    async def reserve(n: int) -> int:
        result = await ledger.credit_control("rich", f"s{n}", f"s{n}:0", [item], now_s=0.0)
        return result.items[0].granted_units

    grants = await asyncio.gather(*(reserve(n) for n in range(300)))
    assert sum(grants) == 3  # three 10-unit increments fit in 37 micro-units


async def test_isolation_on_cluster(
    cluster: RedisCluster, cluster_nodes: list[EmbeddedRedis]
) -> None:
    secret = b"cluster-test-secret-0123456789"
    for tenant in ("acme", "beta"):
        await provision_tenant(cluster, tenant, tenant_password(secret, tenant))
    acme = Ledger.for_tenant(
        cluster_nodes[0].url, "acme", tenant_password(secret, "acme"), cluster=True
    )
    try:
        await acme.provision_account("sub", balance=5, now_s=scenarios.NOW)
        assert (await acme.query("sub")).balance == 5
        beta_key = keys.account_key(keys.subscriber_prefix("beta", "sub"), "sub")
        with pytest.raises(NoPermissionError):
            await acme.client.get(beta_key)
    finally:
        await acme.aclose()


async def test_runtime_detects_cluster_and_checks_every_primary(
    cluster: RedisCluster, cluster_nodes: list[EmbeddedRedis]
) -> None:
    runtime = LedgerRuntime(RedisConfig(url=cluster_nodes[0].url, data_dir="unused"))
    await runtime.start()
    try:
        assert runtime.cluster
    finally:
        await runtime.stop()
    last = redis.Redis(host=cluster_nodes[-1].host, port=cluster_nodes[-1].port)
    last.config_set("maxmemory-policy", "volatile-lru")
    try:
        with pytest.raises(RedisSetupError, match="volatile-lru"):
            await LedgerRuntime(RedisConfig(url=cluster_nodes[0].url)).start()
    finally:
        last.config_set("maxmemory-policy", "noeviction")
        last.close()
