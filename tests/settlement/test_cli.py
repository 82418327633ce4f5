"""``ocs settle`` end to end on the demo catalog: exit codes, file:line problems, the actor."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ocs.cli import main
from tests.settlement.conftest import at
from tests.settlement.usage_rows import usage
from usage.store import UsageStore

ROWS = [
    usage("acme", 1, "voice", at(3), 120, 24_000),
    usage("acme", 2, "data", at(4), 10 * 1048576, 20_000),
    usage("globex", 1, "sms", at(5), 1, 10_000),
]
INVOICE = (
    "day,service,zone,quantity,unit,amount,currency\n"
    "2026-01-03,voice,home,120,second,0.024,EUR\n"
    "2026-01-04,data,home,10485760,byte,0.02,EUR\n"
    "2026-01-05,sms,home,1,event,0.01,EUR\n"
    "2026-01-09,sms,world,2,event,0.10,EUR\n"
)


def _store(url: str) -> None:
    async def put() -> None:
        store = await UsageStore.open(url, pool_max=1)
        try:
            await store.store_batch(ROWS)
        finally:
            await store.close()

    asyncio.run(put())


def test_a_month_on_the_command_line(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(store_url)
    common = ["--store-url", store_url, "--actor", "alice"]

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["settle", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("open", "telco-de", "2026-01", *common)[0] == 0
    code, _out, err = run("reconcile", "telco-de", "2026-01", *common)
    assert code == 3 and "state open cannot reconcile" in err
    bad = tmp_path / "bad.csv"
    bad.write_text(INVOICE.replace("0.024", "zero"))
    code, _out, err = run("import-invoice", "telco-de", "2026-01", str(bad), *common)
    assert code == 2 and f"{bad}:2: amount:" in err
    good = tmp_path / "invoice.csv"
    good.write_text(INVOICE)
    code, out, _err = run("import-invoice", "telco-de", "2026-01", str(good), *common)
    assert code == 0 and "4 lines, total 0.154" in out
    code, out, _err = run("reconcile", "telco-de", "2026-01", *common)
    assert code == 0, out
    assert "adds up to the micro-unit" in out
    assert "unallocated" in out
    code, out, _err = run("exceptions", "telco-de", "2026-01", "--unallocated", *common)
    assert code == 0 and "missing_ours" in out and f"{good}:5" in out
    code, out, _err = run("dispute", "raise", "telco-de", "2026-01", *common)
    assert code == 0 and "unallocated missing_ours" in out
    dispute_id = out.split()[1].rstrip(":")
    assert run("dispute", "send", dispute_id, *common)[0] == 0
    code, out, _err = run("dispute", "accept", dispute_id, "--amount", "0.05", *common)
    assert code == 0 and "accepted" in out
    code, out, _err = run("dispute", "evidence", dispute_id, *common)
    assert code == 0 and out.startswith("discrepancy,level,kind") and "unallocated" in out
    code, out, _err = run("approve", "telco-de", "2026-01", *common)
    assert code == 0 and "adds up" in out
    statements = tmp_path / "statements"
    code, out, _err = run("statement", "acme", "2026-01", "--out", str(statements), *common)
    assert code == 0, _err
    assert sorted(p.name for p in statements.iterdir()) == [
        "acme-2026-01.csv",
        "acme-2026-01.html",
        "acme-2026-01.pdf",
    ]
    assert "globex" not in (statements / "acme-2026-01.html").read_text()
    code, out, _err = run("summary", "2026-01", "--json", *common)
    summary = json.loads(out)
    assert summary["mnos"][0]["unallocated"] == 100_000
    assert summary["mnos"][0]["payable"] == 154_000 - 50_000
    assert {o["tenant"]: o["statement_issued"] for o in summary["operators"]} == {
        "acme": True,
        "globex": False,
    }
    assert run("close", "telco-de", "2026-01", *common)[0] == 0
    code, out, _err = run("status", "telco-de", "2026-01", "--store-url", store_url)
    assert code == 0
    assert out.count("alice") == 6  # open, invoice, reconcile, dispute, approve, close
    code, _out, err = run("close", "telco-de", "2026-01", *common)
    assert code == 3 and "closed" in err


def test_catalog_problems_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "cat"
    (catalog / "wholesale").mkdir(parents=True)
    for name in ("acme.yaml", "globex.yaml"):
        (catalog / name).write_text(Path("examples/catalog", name).read_text())
    (catalog / "wholesale" / "x.yaml").write_text("host_mno: x\ncurrency: EUR\nservices: {}\n")
    assert main(["settle", "check", "--catalog", str(catalog)]) == 2
    err = capsys.readouterr().err
    assert f"{catalog}/wholesale/x.yaml:3: services: at least one service is needed" in err
