"""``ocs up``: embedded Redis and PostgreSQL, ``ocs serve`` and ``ocs export`` as children; a
simulator run is charged, exported and verified in the store; SIGTERM stops everything."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocs.embedded_redis import free_tcp_port
from sim.simulate import simulate
from tests.sim.test_end_to_end import CATALOG, short_scenario
from tests.support.http import get_json


@pytest.fixture
def base() -> Iterator[Path]:
    # Not pytest's 0700 tmp_path: as root the private PostgreSQL runs as `postgres`.
    path = Path(tempfile.mkdtemp(prefix="ocs-test-up-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], urls: list[str], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ocs up exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if all(get_json(url).get("status") in ("ok", "degraded") for url in urls):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"ocs up not ready: {log.read_text()[-3000:]}")


def test_up_charges_exports_and_stops_cleanly(base: Path) -> None:
    diameter, http, sip, export = (free_tcp_port() for _ in range(4))
    log = base / "up.log"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "ocs", "up", "--catalog", CATALOG,
            "--redis-data-dir", str(base / "redis"), "--store-data-dir", str(base / "pg"),
            "--diameter-listen", f"127.0.0.1:{diameter}", "--http-listen", f"127.0.0.1:{http}",
            "--sip-listen", f"127.0.0.1:{sip}", "--export-listen", f"127.0.0.1:{export}",
            "--log-level", "warning",
        ],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=base,
    )  # fmt: skip
    try:
        _wait_ready(
            proc,
            [f"http://127.0.0.1:{http}/healthz", f"http://127.0.0.1:{export}/healthz"],
            log,
        )
        redis_url = (base / "redis" / "redis.url").read_text().strip()
        store_url = (base / "pg" / "store.url").read_text().strip()
        scenario = short_scenario(
            diameter,
            mix={"data": 0.6, "voice": 0.2, "sms": 0.2},
            target={"diameter_port": diameter, "sip_port": sip,
                    "http_url": f"http://127.0.0.1:{http}"},
        )  # fmt: skip
        outcome = simulate(
            scenario, redis_url=redis_url, store_url=store_url, export_wait_s=60,
            progress=False, json_path=base / "r.json", html_path=base / "r.html", quiet=True,
        )  # fmt: skip
        verification = outcome.report["verification"]
        assert outcome.passed, json.dumps(verification, indent=1)
        store = verification["store"]
        assert store["trimmed"] and store["records"] > 0 and store["problems"] == []
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{export}/metrics", timeout=5).read()
        assert b"ocs_export_records_stored_total" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log.read_text()[-3000:]
    # The databases went with it (their URL files are removed on stop).
    assert not (base / "redis" / "redis.url").exists()
    assert not (base / "pg" / "store.url").exists()


def test_the_store_password_is_not_logged() -> None:
    from ocs.commands.up import _without_password

    assert _without_password("postgresql://ocs:s3cret@127.0.0.1:5/ocs") == (
        "postgresql://ocs:***@127.0.0.1:5/ocs"
    )
    assert _without_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
