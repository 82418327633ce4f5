"""Safe catalog operations: per-tenant ``ocs catalog load`` (``--tenant``, ``--remove``,
``--dry-run``), the catalog difference, and a server started with a catalog that differs from
the stored one (kept unless ``catalog.replace``)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from ocs.app import OcsApp
from ocs.catalog_diff import Counts, diff_catalogs
from ocs.catalog_diff import _rate_rows as _diff_rows
from ocs.catalog_store import (
    CATALOG_KEY,
    CatalogChanged,
    read_stored,
    stored_catalog,
    write_catalog,
)
from ocs.cli import main
from ocs.config import load_config
from tariffs.loader import load_catalog, load_texts, read_sources
from tariffs.model import Catalog

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
ACME = (EXAMPLES / "acme.yaml").read_text()
GLOBEX = (EXAMPLES / "globex.yaml").read_text()


def _rate_rows(name: str) -> int:
    """Rate rows of a demo tenant as the difference counts them (the demo catalog grows)."""
    text = (EXAMPLES / f"{name}.yaml").read_text()
    tenant = load_texts([(f"{name}.yaml", text)]).tenants[0]
    return len(_diff_rows(tenant))


ACME_ROWS = _rate_rows("acme")
GLOBEX_ROWS = _rate_rows("globex")
INITECH = (
    GLOBEX.replace("globex", "initech")
    .replace("4917199", "4917299")
    .replace("26201991", "26201992")
)
ACME_RANGE_END = 'msisdn_first: "4917099000000", msisdn_last: "4917099000099"}'


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(directory: Path, **texts: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


def stored_ids(url: str) -> list[str]:
    catalog = asyncio.run(_stored(url))
    return [] if catalog is None else sorted(t.id for t in catalog.tenants)


async def _stored(url: str):  # type: ignore[no-untyped-def]
    client = aioredis.Redis.from_url(url)
    try:
        return await stored_catalog(client)
    finally:
        await client.aclose()


def load_args(url: str, tmp_path: Path) -> tuple[str, ...]:
    return ("--redis-url", url, "--data-dir", str(tmp_path / "no-local-server"))


# -- the difference ------------------------------------------------------------------------------


def test_diff_counts_tenants_rate_rows_and_subscribers() -> None:
    old = load_texts([("acme.yaml", ACME), ("globex.yaml", GLOBEX)])
    # subscribers is the file's last section: an entries list appended joins it
    acme2 = (
        (ACME + '  entries:\n    - {msisdn: "4917099100000", opening_balance: 1}\n')
        .replace("price: 0.29, cost: 0.05}", "price: 0.25, cost: 0.05}")  # one row changed
        .replace(
            "      - {service: sms, zone: home, price: 0.09, cost: 0.01}\n", ""
        )  # one row removed
        .replace('msisdn_last: "4917099000099"', 'msisdn_last: "4917099000089"')  # 10 fewer
        .replace('imsi_last: "262019900000099"', 'imsi_last: "262019900000089"')
        .replace("currency: EUR", "currency: CHF")
    )
    new = load_texts([("acme.yaml", acme2), ("other.yaml", INITECH)])
    diff = diff_catalogs(old, new)
    by_id = {t.tenant: t for t in diff.tenants}
    assert by_id["acme"].status == "changed"
    assert by_id["acme"].rates == Counts(added=0, removed=1, changed=1)
    assert by_id["acme"].subscribers == Counts(added=1, removed=10, changed=0)
    assert by_id["acme"].settings == ("currency", "plans")  # plans carry the changed rows
    assert by_id["globex"].status == "removed"
    assert by_id["globex"].subscribers == Counts(removed=200)
    assert by_id["initech"].status == "added"
    assert by_id["initech"].rates.added == GLOBEX_ROWS
    assert diff.lines()[0] == "tenants: 1 added, 1 removed, 1 changed"
    assert diff.changed


def test_diff_of_subscriber_terms_without_expanding_ranges() -> None:
    old = load_texts([("acme.yaml", ACME)])
    # Same numbers, but the IMSIs shift by one from the 51st on: 50 subscribers changed.
    split = ACME.replace(
        ACME_RANGE_END.replace("4917099000099", "4917099000099"),
        'msisdn_first: "4917099000000", msisdn_last: "4917099000049"}\n'
        '    - {imsi_first: "262019900000051", imsi_last: "262019900000100",\n'
        '       msisdn_first: "4917099000050", msisdn_last: "4917099000099"}',
    ).replace('imsi_last: "262019900000099"', 'imsi_last: "262019900000049"')
    new = load_texts([("acme.yaml", split)])
    acme = diff_catalogs(old, new).tenants[0]
    assert acme.subscribers == Counts(changed=50)
    assert not diff_catalogs(old, load_texts([("elsewhere/acme.yaml", ACME)])).changed


# -- ocs catalog load ----------------------------------------------------------------------------


def test_load_of_one_tenant_keeps_the_others(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = load_args(redis_url, tmp_path)
    assert run(capsys, "catalog", "load", str(EXAMPLES), *base)[0] == 0
    only_acme = write(tmp_path / "onlyacme", acme=ACME.replace("price: 5.00,", "price: 4.00,"))
    code, out, _ = run(capsys, "catalog", "load", str(only_acme), *base)
    assert code == 0
    assert out.splitlines() == [
        "tenants: 1 changed, 1 unchanged",
        "~ acme: changed; rate rows +0 -0 ~1; subscribers +0 -0 ~0; settings changed: plans",
        "  globex: unchanged",
        "acme: 0 subscribers installed, 200 already present; ACL user not set (no secret)",
    ]
    assert stored_ids(redis_url) == ["acme", "globex"]


def test_tenant_option_picks_tenants_of_the_files(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = load_args(redis_url, tmp_path)
    code, out, _ = run(capsys, "catalog", "load", str(EXAMPLES), "--tenant", "globex", *base)
    assert code == 0 and out.splitlines()[-1].startswith("globex: 200 subscribers installed")
    assert stored_ids(redis_url) == ["globex"]
    code, _, err = run(capsys, "catalog", "load", str(EXAMPLES), "--tenant", "nosuch", *base)
    assert code == 1 and "--tenant nosuch: not in the files given" in err
    assert "acme, globex" in err


def test_a_tenant_leaves_only_with_remove(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = load_args(redis_url, tmp_path)
    assert run(capsys, "catalog", "load", str(EXAMPLES), *base)[0] == 0
    code, _, err = run(capsys, "catalog", "load", "--remove", "nosuch", *base)
    assert code == 1 and "--remove nosuch: no such tenant" in err
    code, _, err = run(capsys, "catalog", "load", str(EXAMPLES), "--remove", "acme", *base)
    assert code == 2 and "both loaded and removed" in err
    code, out, _ = run(capsys, "catalog", "load", "--remove", "globex", *base)
    assert code == 0
    assert f"- globex: removed; rate rows +0 -{GLOBEX_ROWS} ~0; subscribers +0 -200 ~0" in out
    assert out.splitlines()[-1] == "globex: removed from the catalog (its accounts stay in Redis)"
    assert stored_ids(redis_url) == ["acme"]
    # Its accounts are still there: loading it again finds them.
    code, out, _ = run(capsys, "catalog", "load", str(EXAMPLES / "globex.yaml"), *base)
    assert "globex: 0 subscribers installed, 200 already present" in out


def test_dry_run_prints_the_difference_and_changes_nothing(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = load_args(redis_url, tmp_path)
    code, out, _ = run(capsys, "catalog", "load", str(EXAMPLES), "--dry-run", *base)
    assert code == 0
    assert out.splitlines() == [
        "tenants: 2 added",
        f"+ acme: added; rate rows +{ACME_ROWS} -0 ~0; subscribers +200 -0 ~0",
        f"+ globex: added; rate rows +{GLOBEX_ROWS} -0 ~0; subscribers +200 -0 ~0",
        "dry run: nothing changed",
    ]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0  # no catalog, no account
    finally:
        client.close()
    assert run(capsys, "catalog", "load", str(EXAMPLES), *base)[0] == 0
    before = redis.Redis.from_url(redis_url).hgetall(CATALOG_KEY)
    code, out, _ = run(capsys, "catalog", "load", "--remove", "acme", "--dry-run", *base)
    assert code == 0 and "- acme: removed" in out
    assert redis.Redis.from_url(redis_url).hgetall(CATALOG_KEY) == before


def test_a_load_overlapping_a_kept_tenant_is_refused(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = load_args(redis_url, tmp_path)
    assert run(capsys, "catalog", "load", str(EXAMPLES / "globex.yaml"), *base)[0] == 0
    # acme claims globex's numbers: valid alone, refused together with the stored globex.
    clash = ACME.replace("4917099000000", "4917199000000").replace("4917099000099", "4917199000099")
    clash = clash.replace("262019900000000", "262019910000000").replace(
        "262019900000099", "262019910000099"
    )
    path = write(tmp_path / "clash", acme=clash)
    code, out, err = run(capsys, "catalog", "load", str(path), *base)
    assert code == 1 and "overlaps" in out and "the catalog after this load" in err
    assert stored_ids(redis_url) == ["globex"]


def test_older_layout_is_read_and_a_concurrent_change_is_detected(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            sources, _ = read_sources(EXAMPLES)
            await client.hset(CATALOG_KEY, mapping=dict(sources))  # field = file name
            stored = await read_stored(client)
            assert stored is not None
            assert sorted(stored.sources_by_tenant()) == ["acme", "globex"]
            await client.hset(CATALOG_KEY, "x", "changed meanwhile")
            with pytest.raises(CatalogChanged):
                await write_catalog(client, sources, expected=stored)
            await client.hdel(CATALOG_KEY, "x")
            await write_catalog(client, sources, expected=stored)
            fields = await client.hgetall(CATALOG_KEY)
            assert sorted(fields) == [b"acme", b"globex"]
            assert json.loads(fields[b"acme"])["file"].endswith("acme.yaml")
        finally:
            await client.aclose()

    asyncio.run(scenario())


# -- ocs serve with --catalog and a stored catalog -----------------------------------------------


def start_catalog(
    capsys: pytest.CaptureFixture[str], redis_url: str, path: Path, *, replace: bool = False
) -> tuple[Catalog, list[dict[str, Any]], list[str]]:
    """What ``ocs serve --catalog PATH`` does at start-up: the catalog it serves, its JSON log
    lines and the plain-text lines it printed."""
    config = load_config(
        overrides={
            "redis": {"url": redis_url},
            "catalog": {"path": str(path), "replace": replace},
        },
        environ={},
    )

    async def scenario() -> Catalog:
        app = OcsApp(config)
        await app._start_ledger()
        try:
            return await app._load_catalog()
        finally:
            await app.ledger.stop()

    capsys.readouterr()
    catalog = asyncio.run(scenario())
    err = capsys.readouterr().err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    banner = [line for line in err.splitlines() if line and not line.startswith("{")]
    return catalog, logs, banner


def test_serve_keeps_a_differing_stored_catalog_and_says_so(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = load_args(redis_url, tmp_path)
    extra = write(tmp_path / "loaded", initech=INITECH)
    combined = tmp_path / "combined"
    shutil.copytree(EXAMPLES, combined)
    (combined / "initech.yaml").write_text((extra / "initech.yaml").read_text())
    # Start-up with nothing stored: the files are installed and stored.
    catalog, _, banner = start_catalog(capsys, redis_url, EXAMPLES)
    assert banner == []
    assert [t.id for t in catalog.tenants] == ["acme", "globex"]
    # An operator loads a third tenant ...
    assert run(capsys, "catalog", "load", str(extra), *base)[0] == 0
    # ... and a restart with the demo catalog keeps it, logging the difference as an error.
    catalog, logs, banner = start_catalog(capsys, redis_url, EXAMPLES)
    assert banner[0] == (
        f"ocs serve: the catalog stored in Redis differs from {EXAMPLES}; serving the stored "
        "one, unchanged:"
    )
    assert (
        f"    - initech: removed; rate rows +0 -{GLOBEX_ROWS} ~0; subscribers +0 -200 ~0" in banner
    )
    assert "--catalog-replace" in banner[-1]
    assert sorted(t.id for t in catalog.tenants) == ["acme", "globex", "initech"]
    (event,) = [e for e in logs if e["event"] == "catalog_differs_from_stored"]
    assert event["level"] == "error"
    removed = f"- initech: removed; rate rows +0 -{GLOBEX_ROWS} ~0; subscribers +0 -200 ~0"
    assert removed in event["difference"]
    assert stored_ids(redis_url) == ["acme", "globex", "initech"]
    # The same catalog as stored: no complaint.
    catalog, logs, banner = start_catalog(capsys, redis_url, combined)
    assert banner == []
    assert not [e for e in logs if e["event"] == "catalog_differs_from_stored"]
    # Told to, it replaces the stored catalog.
    catalog, logs, _ = start_catalog(capsys, redis_url, EXAMPLES, replace=True)
    assert [e["event"] for e in logs if e["level"] == "warning"] == ["catalog_replacing_stored"]
    assert stored_ids(redis_url) == ["acme", "globex"]
    assert [t.id for t in load_catalog(EXAMPLES).tenants] == [t.id for t in catalog.tenants]


@pytest.mark.slow
def test_make_run_restart_keeps_a_loaded_tenant(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's scenario with real `ocs serve` processes: a tenant loaded into a running
    deployment (served at once), then a restart with the demo catalog (`make run`): still served
    with its balance; only --catalog-replace goes back to the files."""
    from tests.support.server_process import ServerProcess

    extra = write(tmp_path / "loaded", initech=INITECH)
    base = load_args(redis_url, tmp_path)

    def serve(*extra_args: str) -> ServerProcess:
        process = ServerProcess(
            tmp_path / "ocs", redis_url=redis_url, catalog=str(EXAMPLES), extra_args=extra_args
        )
        process.start(timeout_s=60)
        return process

    server = serve()
    try:
        assert run(capsys, "catalog", "load", str(extra), *base)[0] == 0
        code, _, _ = run(capsys, "account", "topup", "--redis-url", redis_url, "4917299000042",
                         "9.92")  # fmt: skip
        assert code == 0
        deadline = time.monotonic() + 30  # the running server reloads on the catalog notice
        while server.health()["tenants"] != ["acme", "globex", "initech"]:
            assert time.monotonic() < deadline, server.health()
            time.sleep(0.1)
    finally:
        assert server.stop() == 0
    server = serve()
    try:
        assert server.health()["tenants"] == ["acme", "globex", "initech"]
        assert "differs from" in server.log_text()
    finally:
        assert server.stop() == 0
    code, out, _ = run(capsys, "account", "show", "--redis-url", redis_url, "4917299000042")
    assert code == 0 and "19.92 EUR" in out
    server = serve("--catalog-replace")
    try:
        assert server.health()["tenants"] == ["acme", "globex"]
    finally:
        assert server.stop() == 0


def test_tenants_loaded_from_files_of_the_same_name_stay_apart(
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = load_args(redis_url, tmp_path)
    for tenant, text in (("acme", ACME), ("globex", GLOBEX)):
        directory = write(tmp_path / tenant, tenant=text)  # both files are "tenant.yaml"
        monkeypatch.chdir(directory)
        assert run(capsys, "catalog", "load", "tenant.yaml", *base)[0] == 0
    stored = asyncio.run(_stored(redis_url))
    assert [(t.id, t.source) for t in stored.tenants] == [
        ("acme", "tenant.yaml"),
        ("globex", "tenant.yaml"),
    ]
    code, out, _ = run(capsys, "catalog", "load", "--remove", "acme", "--dry-run", *base)
    assert code == 0 and "  globex: unchanged" in out


def test_replace_makes_the_files_the_whole_catalog(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = load_args(redis_url, tmp_path)
    assert run(capsys, "catalog", "load", str(EXAMPLES), *base)[0] == 0
    only_acme = write(tmp_path / "onlyacme", acme=ACME)
    code, out, _ = run(capsys, "catalog", "load", str(only_acme), "--replace", "--dry-run", *base)
    assert code == 0 and "- globex: removed" in out and stored_ids(redis_url) == ["acme", "globex"]
    code, out, _ = run(capsys, "catalog", "load", str(only_acme), "--replace", *base)
    assert code == 0 and out.splitlines()[-1].startswith("globex: removed from the catalog")
    assert stored_ids(redis_url) == ["acme"]
    code, _, err = run(capsys, "catalog", "load", "--replace", "--remove", "acme", *base)
    assert code == 2 and "--replace makes PATH the whole catalog" in err


def test_a_stored_catalog_that_no_longer_validates_is_replaced_only_when_told(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = load_args(redis_url, tmp_path)
    client = redis.Redis.from_url(redis_url)
    try:  # e.g. a currency a newer release no longer accepts
        bad = json.dumps({"file": "old/acme.yaml", "text": ACME.replace("EUR", "XXX")})
        client.hset(CATALOG_KEY, "acme", bad)
    finally:
        client.close()
    code, out, err = run(capsys, "catalog", "load", str(EXAMPLES / "globex.yaml"), *base)
    assert code == 1 and "old/acme.yaml:" in out and "--replace PATH replaces it" in err
    code, out, _ = run(capsys, "catalog", "load", str(EXAMPLES), "--replace", *base)
    assert code == 0 and stored_ids(redis_url) == ["acme", "globex"]
