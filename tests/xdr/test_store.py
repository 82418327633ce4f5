"""Beyond the ledger's idempotency TTL: the usage store (real PostgreSQL) says which records
were imported, so an overlapping file weeks later charges only what is new."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import pytest

from balance import keys
from ocs.cli import main
from tests.support.charging import DEMO_CATALOG
from tests.xdr.conftest import _DECODER, ACME_1, OPENING, Xdr, line
from usage.row import UsageRow
from usage.store import UsageStore
from usage.xdr.stored import StoredOps


async def export_to_store(xdr: Xdr, store: UsageStore, tenant: str) -> int:
    """What ``ocs export`` does for these records: stream entries → stored rows."""
    rows = []
    for shard in range(keys.VSHARDS):
        entries: Any = await xdr.client.xrange(keys.stream_key(keys.shard_prefix(tenant, shard)))
        for entry_id, fields in entries:
            record = _DECODER.decode(fields[b"r"])
            if record.kind != "usage" or record.context is None:
                continue
            rows.append(
                UsageRow(
                    tenant=tenant, vshard=shard, entry_id=entry_id.decode(), kind=record.kind,
                    source=record.context.source, op_id=record.op_id,
                    subscriber=record.subscriber, started_at_s=record.context.started_at_s,
                    ended_at_s=record.at_s, units=record.units, retail=record.retail,
                    wholesale=record.wholesale, source_ref=record.context.source_ref,
                    service=record.service, rating_group=record.rating_group,
                    called=record.context.called, visited_plmn=record.context.visited_plmn,
                )
            )  # fmt: skip
    return await store.store_batch(rows)


@pytest.mark.slow
async def test_store_recognises_records_the_ledger_forgot(
    xdr: Xdr, redis_url: str, store_url: str
) -> None:
    day = "2026-11-17"
    first = xdr.write(
        "a.csv", *(line(f"s{i}", "SMS-MO", f"{day} 10:0{i}:00", "1") for i in range(4))
    )
    await xdr.run(first)
    store = await UsageStore.open(store_url)
    try:
        assert await export_to_store(xdr, store, "acme") == 4
        assert await StoredOps(store)("acme", ["xdr:telco_de:s1", "xdr:telco_de:s9"]) == {
            "xdr:telco_de:s1"
        }
        assert await StoredOps(store)("globex", ["xdr:telco_de:s1"]) == set()
    finally:
        await store.close()
    # Weeks later: the ledger's idempotency entries have expired.
    for key in await xdr.client.keys("*:op:xdr:*"):
        await xdr.client.delete(key)
    overlap = xdr.write(
        "b.csv", *(line(f"s{i}", "SMS-MO", f"{day} 10:0{i}:00", "1") for i in range(2, 6))
    )
    args = [
        "xdr", "import", "--mno", "telco_de", "--catalog", str(DEMO_CATALOG), "--redis-url",
        redis_url, "--store-url", store_url, "--state-dir", str(xdr.tmp / "state"), "--json",
        str(overlap),
    ]  # fmt: skip
    assert await asyncio.to_thread(main, args) == 0
    account = await xdr.account("acme", ACME_1)
    assert account.balance == OPENING - 6 * 90_000  # s0..s5 once each
    op_ids = sorted(r.op_id for r in await xdr.usage("acme"))
    assert op_ids == [f"xdr:telco_de:s{i}" for i in range(6)]


@pytest.mark.slow
async def test_rerate_reports_the_difference_per_service_and_zone(
    xdr: Xdr, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    day = "2026-11-17"
    path = xdr.write(
        "p.csv",
        line("v1", "MOC", f"{day} 10:00:00", "61", called="+4915112345678"),  # peak, mobile
        line("v2", "MOC", f"{day} 21:00:00", "120", called="+4915112345678"),  # off-peak
        line("d1", "GPRS", f"{day} 10:00:00", str(1_048_576), vplmn="310260"),  # world data
        line("s1", "SMS-MO", f"{day} 10:00:00", "1"),
    )
    await xdr.run(path)
    store = await UsageStore.open(store_url)
    try:
        assert await export_to_store(xdr, store, "acme") == 4
    finally:
        await store.close()
    candidate = xdr.tmp / "candidate"
    shutil.copytree(DEMO_CATALOG, candidate)
    acme = candidate / "acme.yaml"
    text = acme.read_text(encoding="utf-8")
    text = text.replace("band: peak, price: 0.09,", "band: peak, price: 0.12,")
    text = text.replace(
        "{service: data, price: 5.00, cost: 1.80,", "{service: data, price: 4.00, cost: 1.80,"
    )
    acme.write_text(text, encoding="utf-8")
    args = [
        "xdr", "rerate", "--tenant", "acme", "--from", "2026-11-01", "--to", "2026-12-01",
        "--catalog", str(candidate), "--current", str(DEMO_CATALOG), "--store-url", store_url,
        "--json",
    ]  # fmt: skip
    assert await asyncio.to_thread(main, args) == 0
    report = json.loads(capsys.readouterr().out)
    lines = {(x["service"], x["zone"]): x for x in report["lines"]}
    voice = lines[("voice", "home")]
    # v1 peak 61 s: 0.09 -> 0.12 per minute by the second after 60 s: 0.0915 -> 0.122;
    # v2 off-peak 120 s at 0.05: unchanged 0.10.
    assert (voice["records"], voice["retail_now"], voice["retail_candidate"]) == (
        2,
        191_500,
        222_000,
    )
    assert voice["wholesale_now"] == voice["wholesale_candidate"]
    data = lines[("data", "world")]
    assert (data["retail_now"], data["retail_candidate"]) == (5_000_000, 4_000_000)
    assert data["margin_now"] - data["margin_candidate"] == 1_000_000
    sms = lines[("sms", "home")]
    assert sms["retail_now"] == sms["retail_candidate"] == sms["billed"] == 90_000
    assert report["unrated"] == {}
    assert (await xdr.account("acme", ACME_1)).balance == OPENING - 191_500 - 5_000_000 - 90_000
