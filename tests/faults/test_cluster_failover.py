"""Redis Cluster end to end: ``ocs serve`` charges against a local cluster of 3 primaries and
3 replicas (``redis.wait_replicas = 1``) while ``ocs sim`` sends data, voice and SMS traffic;
mid-run a replica takes over its primary (``CLUSTER FAILOVER``). The simulator's own ledger
verification must PASS: every unit it was told was committed is in the records once, the
balances moved by exactly the records' money, and no operation was charged twice; charging
carries on on the promoted replica. No timing is assumed: the failover waits for traffic to
have reached the cluster, and the test checks that charging went on after it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ocs.embedded_redis import EmbeddedRedis
from tests.support.redis_cluster import LocalCluster
from tests.support.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
CATALOG = str(ROOT / "examples" / "catalog")
SIM_DURATION_S = 25  # arrivals; the failover happens inside it even on a slow box
PROGRESS_CALLS = 40  # ledger calls seen on the cluster before the failover, and after it
STEP_TIMEOUT_S = 60.0  # safety nets only


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    try:
        local = LocalCluster(tmp_path / "cluster", primaries=3, replicas=1)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    local.start()
    try:
        yield local
    finally:
        local.stop()


def _calls(node: EmbeddedRedis) -> int:
    """Ledger script calls a node has run (FCALL on the lean connections, EVALSHA otherwise)."""
    client = redis.Redis(host=node.host, port=node.port, socket_timeout=10)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("fcall", "evalsha")
    )


def _wait_for_calls(nodes: list[EmbeddedRedis], more_than: int, sim: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while sum(_calls(n) for n in nodes) <= more_than:
        assert sim.poll() is None, "the simulator ended before the cluster saw the traffic"
        assert time.monotonic() < deadline, "no ledger calls reached the cluster"
        time.sleep(0.1)


def test_sim_passes_through_a_cluster_failover(cluster: LocalCluster, tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "serve",
        redis_url=cluster.url,
        catalog=CATALOG,
        extra_args=["--log-level", "info"],
        env={"OCS_REDIS_WAIT_REPLICAS": "1", "OCS_REDIS_WAIT_TIMEOUT_MS": "500"},
    )
    server.start(timeout_s=STEP_TIMEOUT_S)
    report = tmp_path / "report.json"
    try:
        sim = subprocess.Popen(
            [sys.executable, "-m", "ocs", "sim",
             "--diameter", f"127.0.0.1:{server.diameter_port}",
             "--sip", f"127.0.0.1:{server.sip_port}",
             "--http", f"http://127.0.0.1:{server.http_port}",
             "--redis-url", cluster.url, "--no-store",
             "--duration", str(SIM_DURATION_S), "--rate", "20", "--mix", "2,1,1,0",
             "--update-interval", "1", "--workers", "1", "--seed", "11",
             "--progress", "off", "--json", str(report), "--html", str(tmp_path / "r.html")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            _wait_for_calls(cluster.nodes, PROGRESS_CALLS, sim)
            replica = cluster.replicas_of_cluster()[0]
            cluster.failover(replica)
            # Charging goes on, on the promoted replica too (its shard's sessions move there).
            promoted_before = _calls(replica)
            deadline = time.monotonic() + STEP_TIMEOUT_S
            while _calls(replica) <= promoted_before + PROGRESS_CALLS:
                assert sim.poll() is None, "the simulator ended before charging was seen again"
                assert time.monotonic() < deadline, "no charging on the promoted replica"
                time.sleep(0.1)
            output, _ = sim.communicate(timeout=SIM_DURATION_S + 5 * STEP_TIMEOUT_S)
        finally:
            if sim.poll() is None:
                sim.kill()
                sim.wait()
        assert sim.returncode == 0, output[-4000:] + server.log_text()
        summary = json.loads(report.read_text())
        verification = summary["verification"]
        assert verification["passed"], verification
        print(
            f"\ncluster failover: Result-Codes {summary['result_codes']}, "
            f"errors {summary['errors']}, sent {summary['sent']}"
        )
        checks = verification["tenants"]
        assert checks and all(c["charge_records"] > 0 for c in checks), checks
        assert server.health()["status"] in ("ok", "degraded")
    finally:
        assert server.stop() == 0, server.log_text()
