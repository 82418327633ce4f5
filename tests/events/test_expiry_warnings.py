"""Bucket-expiry warnings from the scheduled pass (``ocs renew``): one ``bundle_expiring``
event per bucket entering the tenant's window, whichever of two concurrent passes gets there
and however often the pass runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from balance.ledger import Ledger
from tests.balance.test_events import events_of
from tests.tariffs.catalogs import MINIMAL

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
CATALOG = (
    MINIMAL.replace("tenant: mini", "tenant: xw")
    + """\
notifications: {expiry_warning_days: 5}
bundles:
  - {id: month, fee: 0, validity: P1M, priority: 5, on_exhaust: payg,
     allowances: [{name: data, service: data, amount: 1000}]}
subscribers:
  opening_balance: 1
  bundles: [month]
  entries:
    - {msisdn: "4915100000071"}
    - {msisdn: "4915100000072"}
"""
)
SUBSCRIBERS = ("4915100000071", "4915100000072")


def test_two_concurrent_passes_warn_once_per_bucket(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "xw.yaml"
    path.write_text(CATALOG)
    base = ["--redis-url", redis_url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ocs = [sys.executable, "-m", "ocs"]
    loaded = subprocess.run(
        [*ocs, "catalog", "load", str(path), *base, "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    # A month's bundle ends 28 to 31 days after the load: 27 days on it is within 5 days.
    later = str(int(time.time()) + 27 * DAY)

    def passes(count: int) -> list[int]:
        runs = [
            subprocess.Popen([*ocs, "renew", "--now", later, "--json", "--tenant", "xw", *base],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(count)
        ]  # fmt: skip
        outs = [run.communicate(timeout=120) for run in runs]
        assert all(run.returncode == 0 for run in runs), outs
        return [json.loads(out)["xw"]["expiry_warnings"] for out, _ in outs]

    assert sum(passes(2)) == 2  # one per subscriber's bucket, by either pass
    assert passes(1) == [0]  # a later pass finds nothing new

    async def warned() -> list[tuple[str, str]]:
        client = aioredis.Redis.from_url(redis_url)
        ledger = Ledger(client, "xw")
        try:
            return [
                (sub, e.payload["kind"])
                for sub in SUBSCRIBERS
                for e in await events_of(ledger, sub)
                if e.type == "bundle_expiring"
            ]
        finally:
            await ledger.aclose()

    assert asyncio.run(warned()) == [(sub, "month.data") for sub in SUBSCRIBERS]
