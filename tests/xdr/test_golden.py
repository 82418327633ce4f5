"""Golden files per service: each line's charge, legs and context exactly as expected.

The expected records are in ``golden/<service>.expected.json`` (regenerate with
``XDR_REGEN=1`` after a deliberate change, then read the diff). A few figures are also
asserted here by hand so the golden files cannot drift unnoticed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from balance.records import LedgerRecord
from tests.xdr.conftest import ACME_1, OPENING, Xdr

GOLDEN = Path(__file__).parent / "golden"


def render(record: LedgerRecord) -> dict[str, Any]:
    assert record.context is not None
    return {
        "op_id": record.op_id,
        "tenant": record.tenant,
        "subscriber": record.subscriber,
        "service": record.service,
        "rating_group": record.rating_group,
        "units": record.units,
        "retail": record.retail,
        "wholesale": record.wholesale,
        "leakage_units": record.leakage_units,
        "leakage_money": record.leakage_money,
        "buckets": [[b.bucket_id, b.units] for b in record.buckets],
        "legs": [[leg.leg_key, leg.units, leg.retail, leg.wholesale] for leg in record.legs],
        "context": {
            "source": record.context.source,
            "host_mno": record.context.host_mno,
            "msisdn": record.context.msisdn,
            "imsi": record.context.imsi,
            "started_at_s": record.context.started_at_s,
            "called": record.context.called,
            "visited_plmn": record.context.visited_plmn,
            "apn": record.context.apn,
            "rate_card_version": record.context.rate_card_version,
            "currency": record.context.currency,
            "source_ref": record.context.source_ref,
        },
    }


@pytest.mark.parametrize("service", ["data", "voice", "sms"])
async def test_golden(xdr: Xdr, service: str) -> None:
    path = xdr.tmp / f"{service}.csv"
    shutil.copy(GOLDEN / f"{service}.csv", path)
    result = await xdr.run(path)
    assert result.rejected == 0 and result.rejects_path is None
    records = sorted([*await xdr.usage("acme"), *await xdr.usage("globex")], key=lambda r: r.op_id)
    got = [render(r) for r in records]
    expected_path = GOLDEN / f"{service}.expected.json"
    if os.environ.get("XDR_REGEN"):
        expected_path.write_text(json.dumps(got, indent=1) + "\n", encoding="utf-8")
    assert got == json.loads(expected_path.read_text(encoding="utf-8"))
    totals = result.tenants
    assert sum(t.charged for t in totals.values()) == len(records)
    assert sum(t.retail for t in totals.values()) == sum(r.retail for r in records)
    assert sum(t.wholesale for t in totals.values()) == sum(r.wholesale for r in records)


async def test_golden_figures_by_hand(xdr: Xdr) -> None:
    path = xdr.tmp / "voice.csv"
    shutil.copy(GOLDEN / "voice.csv", path)
    await xdr.run(path)
    by_id = {r.op_id: r for r in await xdr.usage("acme")}
    # v-2: Tuesday 18:59 Berlin, 150 s to a German mobile: 60 s peak 0.09 + 90 s off-peak 0.05
    # per minute by the second after the first minute (as the online test of the same call).
    v2 = by_id["xdr:telco_de:v-2"]
    assert [(leg.units, leg.retail) for leg in v2.legs] == [(60, 90_000), (90, 75_000)]
    # v-4: UK via sip: URI, 0.10 connect fee + 61 s at 0.29/min = 0.394834; wholesale 0.050834.
    v4 = by_id["xdr:telco_de:v-4"]
    assert (v4.retail, v4.wholesale, v4.context.called) == (394_834, 50_834, "447700900123")  # type: ignore[union-attr]
    account = await xdr.account("acme", ACME_1)
    v1 = by_id["xdr:telco_de:v-1"]
    assert account.balance == OPENING - v1.retail - v2.retail
