"""``ocs report exceptions``: the stored records behind the exception alerts of one day."""

from __future__ import annotations

import asyncio
import json

import pytest

from ocs.cli import main
from tests.usage.rows import DEC_02, make_row
from usage.store import UsageStore


def _seed(url: str) -> None:
    async def run() -> None:
        store = await UsageStore.open(url, pool_max=2)
        try:
            await store.store_batch([
                make_row("rep", 1, ended_at_s=DEC_02, leakage_money=0),  # clean
                make_row("rep", 2, ended_at_s=DEC_02, leakage_money=250_000),
                make_row("rep", 3, ended_at_s=DEC_02, leakage_money=0, retail=10, wholesale=99),
                make_row("rep", 4, ended_at_s=DEC_02, leakage_money=0, kind="expiry"),
                make_row("rep", 5, ended_at_s=DEC_02, leakage_money=0, reason="auto-end"),
                make_row("rep", 6, ended_at_s=DEC_02 + 86_400, leakage_money=9),  # next day
            ])  # fmt: skip
        finally:
            await store.close()

    asyncio.run(run())


def test_lists_each_exception_with_its_reason(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(store_url)
    args = ["report", "exceptions", "--store-url", store_url, "--tenant", "rep"]
    assert main([*args, "--day", "2025-12-02", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["why"] for r in data["records"]] == [
        ["leakage"], ["wholesale_above_retail"], ["tcc_release"], ["auto_ended"]
    ]  # fmt: skip
    assert data["summary"]["leakage_money"] == 250_000
    assert main([*args, "--day", "2025-12-02"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tenant rep, 2025-12-02 (UTC): 4 exception record(s); leakage 0.25")
    assert main([*args, "--day", "2025-12-32"]) == 2
    assert "--day: '2025-12-32' is not a date" in capsys.readouterr().err
