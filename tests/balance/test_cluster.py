"""The ledger suite against a local Redis Cluster the test starts (3 primaries, a replica
each): every script's keys share one hash tag, so the same code runs unchanged through
``RedisCluster``, and its calls go over one pipelined connection per primary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoPermissionError

from balance import keys
from balance.ledger import Ledger
from balance.tenants import provision_tenant, tenant_password
from ocs.charging.notifications import AccountNotice, NoticeListener, publish_notice
from ocs.config import RedisConfig
from ocs.embedded_redis import EmbeddedRedis
from ocs.ledger_runtime import LedgerRuntime, RedisSetupError
from tests.balance import scenarios
from tests.support.redis_cluster import LocalCluster

MASTERS = 3
NOTICE_TRIES = 30
NOTICE_WAIT_S = 1.0


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """3 primaries with a replica each, on loopback."""
    try:
        local = LocalCluster(tmp_path_factory.mktemp("cluster"), primaries=MASTERS, replicas=1)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def cluster_nodes(local_cluster: LocalCluster) -> list[EmbeddedRedis]:
    """The current primaries (a failover in a test swaps roles)."""
    return local_cluster.primaries()


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


def _command_calls(nodes: list[EmbeddedRedis], command: str) -> int:
    total = 0
    for node in nodes:
        client = redis.Redis(host=node.host, port=node.port)
        stats = client.info("commandstats").get(f"cmdstat_{command}", {})
        total += int(stats.get("calls", 0)) if isinstance(stats, dict) else 0
        client.close()
    return total


async def _charge(ledger: Ledger, subscribers: list[str], session: str, numbers: range) -> None:
    """CCR number ``n`` of one session per subscriber, all subscribers at once: CCR-I, then
    CCR-Us each reporting 10 units used and asking for 10 more; each must be granted."""
    for number in numbers:
        item = scenarios.rg(requested=10, used=None if number == 0 else 10)
        results = await asyncio.gather(
            *(
                ledger.credit_control(
                    s,
                    f"{session}-{s}",
                    f"{session}-{s}:{number}",
                    [item],
                    now_s=scenarios.NOW + number,
                    request_kind=1 if number == 0 else 2,
                    request_number=number,
                )
                for s in subscribers
            )
        )
        assert all(r.items[0].granted_units == 10 for r in results)


async def test_calls_go_over_one_pipelined_connection_per_primary(
    cluster: RedisCluster, cluster_nodes: list[EmbeddedRedis]
) -> None:
    ledger = Ledger(cluster, "acme", sessions_max=8)
    subscribers = [f"49170991{n:05d}" for n in range(30)]
    await asyncio.gather(
        *(ledger.provision_account(s, balance=10**9, now_s=scenarios.NOW) for s in subscribers)
    )
    await _charge(ledger, subscribers, "s", range(2))  # slot table, connections, library
    before = _command_calls(cluster_nodes, "fcall"), _command_calls(cluster_nodes, "evalsha")
    await _charge(ledger, subscribers, "s", range(2, 7))
    after = _command_calls(cluster_nodes, "fcall"), _command_calls(cluster_nodes, "evalsha")
    fcalls, evalshas = after[0] - before[0], after[1] - before[1]
    # redis-py's cluster path sends EVALSHA; the lean connections FCALL.
    assert fcalls >= 0.9 * 5 * len(subscribers) and evalshas <= 0.1 * 5 * len(subscribers)
    await ledger.aclose()


async def test_charging_follows_a_failover(
    cluster: RedisCluster, local_cluster: LocalCluster
) -> None:
    """A replica takes over mid-load: calls on the old primary's connection meet MOVED (or a
    closed connection), go through redis-py once, and the slot table follows; nothing is
    refused, and every grant is in the balance exactly once."""
    ledger = Ledger(cluster, "acme", sessions_max=8)
    subscribers = [f"49170992{n:05d}" for n in range(30)]
    await asyncio.gather(
        *(ledger.provision_account(s, balance=10**9, now_s=scenarios.NOW) for s in subscribers)
    )
    await _charge(ledger, subscribers, "s", range(2))
    refreshes = ledger._scripts._cluster.refreshes  # type: ignore[union-attr]
    replica = local_cluster.replicas_of_cluster()[0]
    failover = asyncio.ensure_future(asyncio.to_thread(local_cluster.failover, replica))
    number = 2
    while not failover.done():
        await _charge(ledger, subscribers, "s", range(number, number + 1))
        number += 1
    await failover
    local_cluster.wait_ready()
    await _charge(ledger, subscribers, "s", range(number, number + 3))
    assert ledger._scripts._cluster.refreshes > refreshes  # type: ignore[union-attr]
    for subscriber in subscribers:
        account = await ledger.query(subscriber)
        usage = [r for r in await scenarios.records_of(ledger, subscriber) if r.kind == "usage"]
        usage = [r for r in usage if r.subscriber == subscriber]
        assert len({r.op_id for r in usage}) == len(usage) == number + 2  # none lost or doubled
        assert account.balance + account.held_money == 10**9 - sum(r.retail for r in usage)
    await ledger.aclose()


async def test_notices_stay_in_one_shard(
    cluster: RedisCluster, local_cluster: LocalCluster
) -> None:
    """Catalog and directory notices use sharded pub/sub on a cluster: a plain PUBLISH would be
    carried to every node of the cluster."""
    received: asyncio.Queue[AccountNotice] = asyncio.Queue()

    async def handler(notice: AccountNotice) -> None:
        await received.put(notice)

    listener = NoticeListener(cluster, handler, log=structlog.get_logger())
    listener.start()
    try:
        notice = None
        for _ in range(NOTICE_TRIES):  # the listener subscribes in the background
            await publish_notice(cluster, "acme", "", "catalog")
            try:
                notice = await asyncio.wait_for(received.get(), NOTICE_WAIT_S)
                break
            except TimeoutError:
                continue
        assert notice == AccountNotice("acme", "", "catalog")
    finally:
        await listener.stop()
    assert _command_calls(local_cluster.nodes, "publish") == 0
    assert _command_calls(local_cluster.nodes, "spublish") >= 1


async def test_a_moved_answer_refreshes_the_slot_table(
    cluster: RedisCluster, cluster_nodes: list[EmbeddedRedis]
) -> None:
    """The lean connection's slot table says the wrong primary (as after a resharding): the
    call is answered MOVED, runs once on the right primary, and the table is asked for anew."""
    ledger = Ledger(cluster, "acme", sessions_max=8)
    subscriber = "4917099300001"
    await ledger.provision_account(subscriber, balance=10**6, now_s=scenarios.NOW)
    await _charge(ledger, [subscriber], "s", range(2))
    lanes = ledger._scripts._cluster
    assert lanes is not None and not lanes.stale
    key = keys.account_key(keys.subscriber_prefix("acme", subscriber), subscriber)
    slot = key_slot(key.encode())
    right = lanes._slots[slot]
    wrong = next((n.host, n.port) for n in cluster_nodes if (n.host, n.port) != right)
    lanes._slots[slot] = wrong
    refreshes = lanes.refreshes
    await _charge(ledger, [subscriber], "s", range(2, 4))
    assert lanes.refreshes > refreshes and lanes._slots[slot] == right
    usage = [r for r in await scenarios.records_of(ledger, subscriber) if r.kind == "usage"]
    assert len([r for r in usage if r.subscriber == subscriber]) == 3  # CCR-Us 1..3, once each
    await ledger.aclose()
