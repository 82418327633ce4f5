"""The simulator's money verification passes while plan renewals charge the same subscribers.

``ocs renew`` runs as its own process (as ``ocs up`` and ``ocs-renew.service`` run it) once
the simulated traffic has reached the ledger, renewing the demo catalog's plans a cycle ahead:
the renewal fees and fresh buckets land between the simulator's opening and closing balances,
and the verification must account for them (the renewal records) and still find every
micro-unit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sim.simulate import simulate
from tests.sim.test_end_to_end import CATALOG, short_scenario
from tests.support.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
ONE_CYCLE_AHEAD_S = 40 * 86_400


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "ocs", redis_url=redis_url, catalog=CATALOG)
    process.start()
    yield process
    process.stop()


def _traffic_reached_the_ledger(client: redis.Redis) -> bool:
    return any(client.xlen(key) for key in client.scan_iter(match="{t:acme:*}:cdr", count=1000))


@pytest.mark.timeout(300)
def test_verification_passes_with_renewals_during_the_run(
    server: ServerProcess, redis_url: str, tmp_path: Path
) -> None:
    renewed: dict[str, object] = {}

    def renew_once_traffic_flows() -> None:
        client = redis.Redis.from_url(redis_url)
        try:
            deadline = time.monotonic() + WAIT_S
            while not _traffic_reached_the_ledger(client) and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            client.close()
        later = str(int(time.time()) + ONE_CYCLE_AHEAD_S)
        done = subprocess.run(
            [sys.executable, "-m", "ocs", "renew", "--now", later, "--json",
             "--redis-url", redis_url],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        renewed["code"], renewed["out"], renewed["err"] = done.returncode, done.stdout, done.stderr

    renewer = threading.Thread(target=renew_once_traffic_flows)
    renewer.start()
    scenario = short_scenario(
        server.diameter_port,
        load={"rate": 40, "duration_s": 3.0, "drain_s": 15},
        mix={"data": 0.7, "voice": 0.2, "sms": 0.1},
    )
    outcome = simulate(
        scenario, redis_url=redis_url, progress=False,
        json_path=tmp_path / "r.json", html_path=tmp_path / "r.html", quiet=True,
    )  # fmt: skip
    renewer.join(timeout=180)
    assert renewed.get("code") == 0, renewed
    counts = json.loads(str(renewed["out"]))
    assert counts["acme"]["applied"] > 0, counts  # plan fees charged during the run
    assert outcome.passed, json.dumps(outcome.report["verification"], indent=1)
