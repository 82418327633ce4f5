"""kill -9 in the middle of an import, then the same import again: the ledger ends exactly
where one uninterrupted import leaves it (balances, retail, wholesale, leakage to the
micro-unit) and no record is on the streams twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from balance import keys
from balance.ledger import _ACCOUNT_DECODER
from tests.support.charging import DEMO_CATALOG, TUESDAY_10_BERLIN, demo_directory
from tests.xdr.conftest import _DECODER, HEADER, Xdr
from usage.xdr.importer import FileImport, ImportOptions

RECORDS = 12_000
ROOT = Path(__file__).resolve().parents[2]


def big_file(path: Path) -> Path:
    """SMS and short calls of 50 subscribers of two tenants, most past their balance."""
    lines = []
    for i in range(RECORDS):
        tenant_digit = "0" if i % 2 else "1"  # acme 4917099..., globex 4917199...
        msisdn = f"4917{tenant_digit}99000{(i // 2) % 25:03d}"
        if i % 3:
            fields = [f"k{i}", "", msisdn, "SMS-MO", "2026-11-17 10:00:00", "1", "+4915112345678"]
        else:
            fields = [f"k{i}", "", msisdn, "MOC", "2026-11-17 18:58:30", str(i % 90),
                      "+4915112345678"]  # fmt: skip
        lines.append(";".join([*fields, "", ""]))
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


async def snapshot(client: aioredis.Redis) -> tuple[dict[str, int], dict[str, int], Counter[str]]:
    balances: dict[str, int] = {}
    sums = {"retail": 0, "wholesale": 0, "leakage": 0, "units": 0}
    ops: Counter[str] = Counter()
    for tenant in ("acme", "globex"):
        for shard in range(keys.VSHARDS):
            prefix = keys.shard_prefix(tenant, shard)
            entries: Any = await client.xrange(keys.stream_key(prefix))
            for _, fields in entries:
                record = _DECODER.decode(fields[b"r"])
                if record.kind != "usage":
                    continue
                ops[record.op_id] += 1
                sums["retail"] += record.retail
                sums["wholesale"] += record.wholesale
                sums["leakage"] += record.leakage_money
                sums["units"] += record.units
    names: Any = await client.keys("*:a:*")
    for key in names:
        raw: Any = await client.get(key)
        balances[key.decode()] = _ACCOUNT_DECODER.decode(raw).balance
    return balances, sums, ops


@pytest.mark.slow
async def test_kill_9_mid_import_then_again_is_exact(xdr: Xdr, redis_url: str) -> None:
    path = big_file(xdr.tmp / "big.csv")
    # Reference: one uninterrupted import.
    reference = await FileImport(
        path, xdr.mapping, xdr.rater, ImportOptions(mno="telco_de", batch_size=200),
        ledger_for=xdr.ledger, manifests=None, now=xdr.clock,
    ).run()  # fmt: skip
    expected = await snapshot(xdr.client)
    assert reference.rejected == 0
    assert sum(t.leakage for t in reference.tenants.values()) > 0  # some ran out of money
    assert sum(expected[2].values()) == RECORDS

    # The same on a fresh ledger, killed part-way, then run again.
    await xdr.client.flushall()
    await demo_directory(xdr.client, TUESDAY_10_BERLIN)
    baseline = await xdr.client.dbsize()
    state = xdr.tmp / "state"
    command = [
        sys.executable, "-m", "ocs", "xdr", "import", "--mno", "telco_de",
        "--catalog", str(DEMO_CATALOG), "--redis-url", redis_url, "--state-dir", str(state),
        "--batch-size", "50", str(path),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while await xdr.client.dbsize() - baseline < RECORDS // 10:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = await snapshot(xdr.client)
    assert 0 < sum(partial[2].values()) < RECORDS  # killed in the middle
    assert not (state / "manifests").exists()  # an unfinished import leaves no manifest

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    got = await snapshot(xdr.client)
    assert max(got[2].values()) == 1  # no record twice
    assert got[2].keys() == expected[2].keys()
    assert got[1] == expected[1]  # retail, wholesale, leakage, units to the micro-unit
    assert got[0] == expected[0]  # every balance
