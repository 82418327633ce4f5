"""A local Redis Cluster on loopback for tests and benchmarks: N primaries, optionally one
replica each, started with ``redis-cli --cluster create``; manual failover on request."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from ocs.embedded_redis import EmbeddedRedis

READY_TIMEOUT_S = 60.0  # a safety net: on a loaded box the cluster bus takes its time
# A replica is never refused promotion for lagging (a manual failover waits for it anyway).
NODE_ARGS = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-replica-validity-factor", "0")  # fmt: skip


class LocalCluster:
    def __init__(self, base: Path, *, primaries: int = 3, replicas: int = 0) -> None:
        if shutil.which("redis-cli") is None:
            raise RuntimeError("redis-cli is needed to create the cluster")
        self.replicas = replicas
        self.nodes = [
            EmbeddedRedis(base / f"n{i}", extra_args=NODE_ARGS)
            for i in range(primaries * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                ["redis-cli", "--cluster", "create",
                 *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                check=True, capture_output=True, timeout=READY_TIMEOUT_S,
            )  # fmt: skip
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def client(self, node: EmbeddedRedis) -> redis.Redis:
        return redis.Redis(host=node.host, port=node.port, socket_timeout=10)

    def role(self, node: EmbeddedRedis) -> str:
        client = self.client(node)
        try:
            return str(client.info("replication")["role"])
        finally:
            client.close()

    def primaries(self) -> list[EmbeddedRedis]:
        return [n for n in self.nodes if self.role(n) == "master"]

    def replicas_of_cluster(self) -> list[EmbeddedRedis]:
        return [n for n in self.nodes if self.role(n) == "slave"]

    def wait_ready(self) -> None:
        """Every node says cluster_state:ok and every replica has finished its first sync."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        for node in self.nodes:
            client = self.client(node)
            try:
                while not self._ready(client):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node {node.port} did not get ready")
                    time.sleep(0.1)
            finally:
                client.close()

    @staticmethod
    def _ready(client: redis.Redis) -> bool:
        state = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        if b"cluster_state:ok" not in state:
            return False
        info = client.info("replication")
        return info["role"] == "master" or info.get("master_link_status") == "up"

    def failover(self, replica: EmbeddedRedis) -> None:
        """``CLUSTER FAILOVER`` on ``replica`` (the coordinated manual failover: the primary
        stops writes, the replica catches up, then takes over), and wait until it is primary."""
        client = self.client(replica)
        try:
            client.execute_command("CLUSTER", "FAILOVER")  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + READY_TIMEOUT_S
            while client.info("replication")["role"] != "master":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica {replica.port} did not take over")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
