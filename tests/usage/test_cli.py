"""``ocs usage`` and ``ocs store`` commands against a real store: output, files, exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ocs.cli import main
from ocs.embedded_postgres import EmbeddedPostgres
from tests.usage.rows import DEC_02, MAR_05, NOV_15, make_rows
from usage.store import UsageStore


def _seed(url: str) -> None:
    async def run() -> None:
        store = await UsageStore.open(url, pool_max=2)
        try:
            rows = []
            for tenant, first in (("alpha", 0), ("beta", 1000)):
                for i, when in enumerate((NOV_15, DEC_02, MAR_05)):
                    rows += make_rows(tenant, 4, first=first + 10 * i, ended_at_s=when)
            await store.store_batch(rows)
        finally:
            await store.close()

    asyncio.run(run())


@pytest.fixture
def seeded(store_url: str) -> str:
    _seed(store_url)
    return store_url


def test_store_migrate_and_status(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "migrate", "--store-url", seeded]) == 0
    assert capsys.readouterr().out.splitlines() == ["schema up to date", "tenant roles checked: 2"]
    assert main(["store", "status", "--store-url", seeded]) == 0
    out = capsys.readouterr().out
    assert "migration 0003_isolation: applied" in out
    assert "partition usage_records_202511: 2025-11-01 .. 2025-12-01" in out
    assert "tenant alpha: role ocs_t_alpha, retention default (24)" in out


def test_usage_totals(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["usage", "totals", "--store-url", seeded, "--tenant", "alpha", "--json"]
    assert main([*args, "--from", "2025-12-01", "--to", "2026-01-01"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert totals["tenant"] == "alpha" and totals["count"] == 4
    assert main([*args, "--from", "2025-13-01"]) == 2
    assert "--from: '2025-13-01' is not a date" in capsys.readouterr().err
    assert main(["usage", "totals", "--store-url", seeded, "--tenant", "nobody"]) == 1
    assert "unknown tenant 'nobody'" in capsys.readouterr().err


def test_retention_and_prune(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--store-url", seeded]
    assert main(["usage", "retention", *base, "--tenant", "alpha", "--months", "3"]) == 0
    assert capsys.readouterr().out.strip() == "alpha: 3 months"
    assert main(["usage", "retention", *base, "--tenant", "alpha", "--months", "0"]) == 2
    capsys.readouterr()
    prune = ["usage", "prune", *base, "--now", "2026-03-10"]
    assert main([*prune, "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "would: delete from usage_records_202511 (2025-11) the rows of alpha: 4 rows",
    ]
    assert main([*prune, "--archive", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        f"did: delete from usage_records_202511 (2025-11) the rows of alpha: 4 rows -> {tmp_path}"
        in out
    )
    assert main([*prune, "--archive", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main([*prune, "--retention-months", "1"]) == 0
    out = capsys.readouterr().out
    assert "drop usage_records_202511 (2025-11): past retention for every tenant: 4 rows" in out
    assert main(["usage", "retention", *base]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "alpha: 3 months",
        "beta: default (24 months)",
    ]


def test_commands_without_a_store_say_where_they_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OCS_STORE_URL", raising=False)
    assert main(["usage", "totals", "--tenant", "a", "--data-dir", str(tmp_path)]) == 2
    assert "no usage store to talk to" in capsys.readouterr().err


def test_migrate_recreates_a_missing_tenant_role(
    store_url: str, postgres_server: EmbeddedPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    """As after restoring a dump into another cluster: the database knows the tenant, the
    cluster has no role for it."""

    async def store_rows() -> None:
        store = await UsageStore.open(store_url, pool_max=1)
        try:
            await store.store_batch(make_rows("restored-t", 2))
        finally:
            await store.close()

    asyncio.run(store_rows())
    with postgres_server.superuser_connect() as conn:
        conn.execute('DROP ROLE "ocs_t_restored-t"')
    assert main(["store", "migrate", "--store-url", store_url]) == 0
    capsys.readouterr()
    args = ["usage", "totals", "--store-url", store_url, "--tenant", "restored-t", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 2
