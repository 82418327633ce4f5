"""File drop plug-in: batched CSV files with manifests, written through the dispatcher."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
from pathlib import Path

import redis.asyncio as aioredis

from balance.ledger import Ledger
from ocs.dispatch_config import DispatchConfig, PluginSpec
from ocs.dispatcher import Dispatcher
from ocs.plugins import find_factory

NOW = 1_700_000_000.0


async def test_events_land_in_csv_batches_with_manifests(redis_url: str, tmp_path: Path) -> None:
    client = aioredis.Redis.from_url(redis_url)
    ledger = Ledger(client, "files")
    subs = [f"49170990600{n:02d}" for n in range(6)]
    for s in subs:
        await ledger.provision_account(s, balance=0, now_s=NOW)
        await ledger.block(s, now_s=NOW + 1, reason="port-out")
    drop = tmp_path / "drop"
    plugin = find_factory("file_drop")({"directory": str(drop), "interval_s": 0.2})
    config = DispatchConfig(
        plugins=(PluginSpec("files", "file_drop", frozenset({"files"})),),
        poll_s=0.05,
        scan_every_s=0.5,
    )
    dispatcher = Dispatcher(client, config, {"files": plugin}, consumer="f")
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    rows: list[dict[str, str]] = []
    for _ in range(600):  # bounded wait: 60 s
        rows = []
        for manifest_path in sorted(drop.glob("*.manifest.json")):
            manifest = json.loads(manifest_path.read_text())
            data = (drop / manifest["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == manifest["sha256"]
            batch = list(csv.DictReader(data.decode().splitlines()))
            assert len(batch) == manifest["rows"] and batch[0]["id"] == manifest["first_id"]
            rows += batch
        if len(rows) >= 12:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await task
    await plugin.aclose()
    await client.aclose()
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12
    for s in subs:  # per subscriber in order: created before blocked
        assert [r["type"] for r in rows if r["subscriber"] == s] == ["created", "blocked"]
    blocked = next(r for r in rows if r["type"] == "blocked")
    assert json.loads(blocked["payload"])["reason"] == "port-out"
    assert not list(drop.glob("*.tmp"))
