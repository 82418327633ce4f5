"""``ocs catalog check`` / ``ocs catalog load`` on the demo and on broken catalogs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from balance.ledger import Ledger
from ocs.cli import main
from tests.tariffs.catalogs import MINIMAL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"


def test_check_demo_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "check", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "acme: EUR, 3 services" in out and "200 subscribers" in out
    assert "plans [payg, data10], add-ons [roam_world_500m, minutes_100]" in out
    assert out.endswith(f"{EXAMPLES}: valid, 2 tenants\n")


def test_check_broken_catalog_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("price: 0.10", "price: -0.10") + "colour: red\n")
    assert main(["catalog", "check", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{bad}:14: rates[0].price: -0.10 is negative; prices and fees must be >= 0",
        f"{bad}:16: colour: unknown key (expected one of: addons, bundles, context_defaults, "
        "country_code, currency, destinations, final_unit, home_zone, idempotency_window, "
        "international_prefix, national_prefix, notifications, plan_change, plans, "
        "provisioning_hold, rate_cards, rates, renewal, services, "
        "status, subscribers, tariff_switch, tenant, time_bands, timezone, topup_max, version, "
        "zones)",
    ]
    assert "2 problems; catalog refused" in captured.err


def test_load_refuses_a_broken_catalog_before_touching_redis(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenant: [\n")
    assert main(["catalog", "load", str(bad), "--redis-url", "redis://127.0.0.1:1/0"]) == 1


def test_load_unreachable_redis_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "load", str(EXAMPLES), "--redis-url", "redis://127.0.0.1:1/0"]) == 2
    assert "unavailable" in capsys.readouterr().err


def test_load_installs_tenants_subscribers_balances_bundles_and_acl(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("0123456789abcdef-deployment-secret\n")
    # A data dir of its own: a local `ocs serve`'s var/redis (and its secret) is not this test's.
    args = ["catalog", "load", str(EXAMPLES), "--redis-url", redis_url]
    args += ["--data-dir", str(tmp_path / "no-local-server")]
    assert main([*args, "--tenant-secret-file", str(secret)]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "acme: 200 subscribers installed, 0 already present; ACL user set",
        "globex: 200 subscribers installed, 0 already present; ACL user set",
    ]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert {"ocs-t-acme", "ocs-t-globex"} <= set(client.acl_users())
    finally:  # ACL users outlive FLUSHALL: leave the shared server as we found it
        client.acl_deluser("ocs-t-acme", "ocs-t-globex")
        client.close()

    async def account(tenant: str, subscriber: str) -> tuple[int, list[tuple[str, int]]]:
        from redis.asyncio import Redis

        connection = Redis.from_url(redis_url)
        try:
            stored = await Ledger(connection, tenant).query(subscriber)
        finally:
            await connection.aclose()
        return stored.balance, [(b.kind, b.remaining) for b in stored.buckets]

    balance, buckets = asyncio.run(account("acme", "4917099000042"))
    assert balance == 10_000_000
    assert buckets == [("data_1g.data", 1 << 30)]
    # Loading again installs nothing twice.
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[3] == (
        "acme: 0 subscribers installed, 200 already present; ACL user not set (no secret)"
    )
