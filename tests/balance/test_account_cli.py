"""``ocs account`` against a real Redis: table and JSON output, exit codes, amount parsing."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from balance.ledger import Ledger
from ocs.catalog_store import store_catalog
from ocs.cli import main
from ocs.commands.account import UsageError, format_amount, parse_amount

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
ACME_1, ACME_2, ACME_3 = "4917099000001", "4917099000002", "4917099000003"
GLOBEX_1 = "4917199000001"


def store(url: str, **texts: str) -> None:
    """Store the demo catalog (with ``texts`` replacing files by tenant) without creating any
    account, as if the accounts had not been installed yet."""
    sources = [
        (str(path), texts.get(path.stem, path.read_text()))
        for path in sorted(EXAMPLES.glob("*.yaml"))
    ]

    async def write() -> None:
        client = aioredis.Redis.from_url(url)
        try:
            await store_catalog(client, sources)
        finally:
            await client.aclose()

    asyncio.run(write())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_amounts_at_the_edge() -> None:
    assert parse_amount("5.00") == 5_000_000
    assert parse_amount("0.000001") == 1
    assert parse_amount("-1.25", signed=True) == -1_250_000
    for bad in ("abc", "1.0000001", "-5", "0", "nan", "inf", "1e12"):
        with pytest.raises(UsageError):
            parse_amount(bad)
    assert format_amount(5_000_000) == "5.00"
    assert format_amount(-1_500_000) == "-1.50"
    assert format_amount(1_234_567) == "1.234567"


def test_account_lifecycle(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store(redis_url)
    base = ("--tenant", "acme", "--redis-url", redis_url)
    code, _, _ = run(capsys, "account", "create", *base, ACME_1, "--balance", "2.50")
    assert code == 0
    code, out, _ = run(capsys, "account", "topup", *base, ACME_1, "5.00")
    assert code == 0 and "7.50" in out
    code, out, _ = run(
        capsys, "account", "adjust", *base, ACME_1, "-0.25", "--reason", "goodwill fix"
    )
    assert code == 0
    code, out, _ = run(capsys, "account", "block", *base, ACME_1, "--json")
    data = json.loads(out)
    assert code == 0 and data["state"] == "blocked" and data["balance_micro"] == 7_250_000
    code, out, _ = run(capsys, "account", "unblock", *base, ACME_1)
    assert code == 0 and "active" in out
    code, out, _ = run(capsys, "account", "show", *base, ACME_1, "--json")
    assert json.loads(out)["balance"] == "7.25"


def test_errors_are_specific(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store(redis_url)
    base = ("--tenant", "acme", "--redis-url", redis_url)
    code, _, err = run(capsys, "account", "show", *base, ACME_2)
    assert code == 1 and f"no account for subscriber '{ACME_2}'" in err and "5030" in err
    code, _, err = run(capsys, "account", "topup", *base, ACME_2, "1.00")
    assert code == 1 and "5030" in err
    code, _, err = run(capsys, "account", "topup", *base, ACME_2, "1.0000001")
    assert code == 2 and "6 decimal places" in err
    run(capsys, "account", "create", *base, ACME_2, "--balance", "1.00")
    code, _, err = run(capsys, "account", "adjust", *base, ACME_2, "-2.00", "--reason", "oops")
    assert code == 1 and "below the credit limit" in err
    code, _, err = run(capsys, "account", "create", *base, ACME_2)
    assert code == 1 and "already has an account" in err
    code, _, err = run(capsys, "account", "show", "--tenant", "a*", "--redis-url", redis_url, "x")
    assert code == 2 and "tenant id" in err


def test_create_refuses_what_could_never_be_charged(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ("--redis-url", redis_url)
    code, _, err = run(capsys, "account", "create", "--tenant", "acme", *url, ACME_1)
    assert code == 1 and "no catalog is stored in Redis" in err
    store(redis_url)
    code, _, err = run(capsys, "account", "create", "--tenant", "nosuch", *url, ACME_1)
    assert code == 1 and "unknown tenant 'nosuch' (the catalog has: acme, globex)" in err
    code, _, err = run(capsys, "account", "create", "--tenant", "acme", *url, "4917055555555")
    assert code == 1 and "no subscriber range or entry of tenant 'acme' covers" in err
    assert "could never reach this account" in err
    code, _, err = run(capsys, "account", "create", "--tenant", "acme", *url, GLOBEX_1)
    assert code == 1 and f"'{GLOBEX_1}' belongs to tenant 'globex', not 'acme'" in err
    code, _, err = run(capsys, "account", "topup", "--tenant", "nosuch", *url, ACME_1, "1")
    assert code == 1 and "unknown tenant 'nosuch'" in err
    # Without --tenant, in the +49 form or by IMSI: the catalog names the owner and the
    # canonical MSISDN the ledger keys the account by.
    code, out, _ = run(capsys, "account", "create", *url, "+49 170 99000003", "--json")
    assert code == 0 and json.loads(out)["tenant"] == "acme"
    assert json.loads(out)["subscriber"] == ACME_3
    code, out, _ = run(capsys, "account", "show", *url, "262019900000003", "--json")
    assert code == 0 and json.loads(out)["subscriber"] == ACME_3
    code, _, err = run(capsys, "account", "show", *url, "4917055555555")
    assert code == 1 and "in no tenant's subscriber ranges or entries; give --tenant" in err


def test_topup_has_a_per_tenant_maximum(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store(redis_url)
    base = ("--tenant", "acme", "--redis-url", redis_url)
    assert run(capsys, "account", "create", *base, ACME_1)[0] == 0
    code, _, err = run(capsys, "account", "topup", *base, ACME_1, "1e9")
    assert code == 1
    assert (
        "top-up 1000000000.00 EUR is more than tenant 'acme''s maximum single top-up of "
        "1000.00 EUR (catalog field topup_max)"
    ) in err
    assert run(capsys, "account", "topup", *base, ACME_1, "1000")[0] == 0
    acme = (
        (EXAMPLES / "acme.yaml")
        .read_text()
        .replace("\ncurrency: EUR\n", "\ncurrency: EUR\ntopup_max: 50.00\n")
    )
    store(redis_url, acme=acme)
    code, _, err = run(capsys, "account", "topup", *base, ACME_1, "50.01")
    assert code == 1 and "maximum single top-up of 50.00 EUR" in err
    code, out, _ = run(capsys, "account", "topup", *base, ACME_1, "50", "--json")
    assert code == 0 and json.loads(out)["balance"] == "1050.00"


def test_topup_op_id_credits_once(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store(redis_url)
    base = ("--tenant", "acme", "--redis-url", redis_url)
    assert run(capsys, "account", "create", *base, ACME_1)[0] == 0
    for attempt in range(3):  # the operator's script retried after a timeout
        code, out, _ = run(capsys, "account", "topup", *base, ACME_1, "5", "--op-id", "T-1001")
        assert code == 0
        assert ("already applied" in out) == (attempt > 0)
    code, out, _ = run(capsys, "account", "show", *base, ACME_1, "--json")
    assert json.loads(out)["balance_micro"] == 5_000_000
    code, _, err = run(capsys, "account", "topup", *base, ACME_1, "6", "--op-id", "T-1001")
    assert code == 1 and "op id 'T-1001' was already used for a different operation" in err
    code, _, err = run(capsys, "account", "topup", *base, ACME_1, "6", "--op-id", "no spaces")
    assert code == 2 and "--op-id 'no spaces'" in err
    # Another key credits again; the same key on another account is that account's own.
    assert run(capsys, "account", "topup", *base, ACME_1, "5", "--op-id", "T-1002")[0] == 0
    code, out, _ = run(capsys, "account", "show", *base, ACME_1, "--json")
    assert json.loads(out)["balance_micro"] == 10_000_000


def test_json_errors(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store(redis_url)
    code, out, err = run(
        capsys, "account", "show", "--redis-url", redis_url, "--json", "4917055555555"
    )
    assert code == 1 and err == ""
    error = json.loads(out)["error"]
    assert error["kind"] == "refused" and error["exit_code"] == 1
    code, out, _ = run(capsys, "account", "show", "--redis-url", redis_url, "--json", ACME_1)
    error = json.loads(out)["error"]
    assert code == 1 and error["kind"] == "UnknownAccount" and error["result_code"] == 5030
    code, out, _ = run(
        capsys, "account", "topup", "--redis-url", redis_url, "--json", ACME_1, "abc"
    )
    assert code == 2 and json.loads(out)["error"]["kind"] == "usage"


def test_no_redis_is_a_clear_error(
    tmp_path: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OCS_REDIS_URL", raising=False)
    code, _, err = run(
        capsys, "account", "show", "--tenant", "acme", "--data-dir", str(tmp_path), "x"
    )
    assert code == 1 and "--redis-url" in err and "OCS_REDIS_URL" in err


def load_demo(url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ("catalog", "load", str(EXAMPLES), "--redis-url", url, "--data-dir", str(tmp_path))
    assert run(capsys, *args)[0] == 0


def test_show_is_a_table_in_currency_human_units_and_the_tenant_time_zone(
    redis_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    load_demo(redis_url, capsys, tmp_path)
    code, out, _ = run(
        capsys, "account", "topup", "--redis-url", redis_url, "+4917099000042", "9.92"
    )
    assert code == 0
    code, out, _ = run(capsys, "account", "show", "--redis-url", redis_url, "262019900000042")
    assert code == 0
    lines = [line.rstrip() for line in out.splitlines()]
    assert "tenant        acme" in lines and "subscriber    4917099000042" in lines
    assert "IMSI          262019900000042" in lines
    assert "balance       19.92 EUR" in lines and "time zone     Europe/Berlin" in lines
    (bucket,) = [line for line in lines if "data_1g.data" in line]
    assert re.search(
        r"1\.00 GiB\s+0 B\s+10\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00\s+live", bucket
    )
    assert "1073741824" not in out  # no raw bytes, no epoch seconds
    data = json.loads(run(capsys, "account", "show", "--redis-url", redis_url, ACME_1, "--json")[1])
    assert data["buckets"][0]["remaining"] == 1 << 30
    assert data["buckets"][0]["remaining_text"] == "1.00 GiB"
    assert data["currency"] == "EUR" and data["balance_text"] == "10.00 EUR"


def test_history_shows_usage_and_admin_records_newest_first(
    redis_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    load_demo(redis_url, capsys, tmp_path)
    url = ("--redis-url", redis_url)
    assert run(capsys, "account", "topup", *url, ACME_1, "5", "--op-id", "PAY-7")[0] == 0

    async def refund() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await Ledger(client, "acme").refund(
                ACME_1, "r-1", amount=250_000, reason="dropped session", now_s=time.time(),
                session_id="s-1", service="data", units=1536, bucket_id="data_1g.data#catalog",
            )  # fmt: skip
        finally:
            await client.aclose()

    asyncio.run(refund())
    assert run(capsys, "account", "topup", *url, ACME_2, "1")[0] == 0  # same shard or not
    code, out, _ = run(capsys, "account", "history", *url, ACME_1)
    assert code == 0
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    assert lines[0] == f"acme {ACME_1}: latest 4 records"
    kinds = [line.split()[1] for line in lines[3:]]
    assert kinds == ["refund", "topup", "bucket", "provision"]
    assert "1.50 KiB" in lines[3] and "0.25 EUR" in lines[3] and "15.25 EUR" in lines[3]
    assert "session s-1" in lines[3]
    assert "5.00 EUR" in lines[4] and "op cli:PAY-7" in lines[4]
    assert "1.00 GiB" in lines[5]
    code, out, _ = run(capsys, "account", "history", *url, ACME_1, "--limit", "1", "--json")
    (record,) = json.loads(out)["records"]
    assert record["kind"] == "refund" and record["units"] == 1536
    assert record["money_delta_micro"] == 250_000 and record["balance_after_micro"] == 15_250_000
    code, _, err = run(capsys, "account", "history", *url, ACME_1, "--limit", "0")
    assert code == 2 and "--limit 0" in err
    code, _, err = run(capsys, "account", "history", "--tenant", "acme", *url, "4917055555555")
    assert code == 1 and "5030" in err


def test_list_and_search(
    redis_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    load_demo(redis_url, capsys, tmp_path)
    url = ("--redis-url", redis_url)
    code, out, _ = run(capsys, "account", "list", *url, "--match", "491709900004*")
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("acme")]
    assert [row[1] for row in rows] == [f"49170990000{n}" for n in range(40, 50)]
    assert rows[0][2:5] == ["active", "10.00", "EUR"]
    assert out.rstrip().endswith("10 accounts")
    code, out, _ = run(capsys, "account", "list", *url, "--limit", "150", "--json")
    data = json.loads(out)
    assert len(data["accounts"]) == 150 and data["more"] is True
    assert {a["tenant"] for a in data["accounts"]} == {"acme", "globex"}
    code, out, _ = run(capsys, "account", "list", *url, "--tenant", "globex", "--limit", "500")
    assert out.rstrip().endswith("200 accounts")
    code, _, err = run(capsys, "account", "list", *url, "--tenant", "nosuch")
    assert code == 1 and "unknown tenant 'nosuch'" in err
    code, out, _ = run(capsys, "account", "list", *url, "--match", "*0042", "--json")
    assert [a["subscriber"] for a in json.loads(out)["accounts"]] == [
        "4917099000042",
        "4917099500042",  # the data10 plan's range
        "4917199000042",
        "4917199500042",
    ]


def test_history_walk_is_bounded(
    redis_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from ocs.account_records import account_history

    load_demo(redis_url, capsys, tmp_path)  # ACME_1: provision and bucket records

    async def walk(limit: int, scan_max: int) -> tuple[list[str], bool]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            entries, truncated = await account_history(
                client, "acme", ACME_1, limit, scan_max=scan_max
            )
        finally:
            await client.aclose()
        return [e.record.kind for e in entries], truncated

    assert asyncio.run(walk(10, 1000)) == (["bucket", "provision"], False)
    assert asyncio.run(walk(1, 1000)) == (["bucket"], False)
    assert asyncio.run(walk(10, 1)) == (["bucket"], True)  # stopped after one entry


def test_config_file_gives_redis_and_how_long_an_op_id_is_remembered(
    redis_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import redis as sync_redis

    from balance import keys

    store(redis_url)
    config = tmp_path / "ocs.toml"
    config.write_text(f'[redis]\nurl = "{redis_url}"\n[ledger]\nidempotency_ttl_s = 86400\n')
    base = ("--tenant", "acme", "--config", str(config))
    assert run(capsys, "account", "create", *base, ACME_1)[0] == 0
    assert run(capsys, "account", "topup", *base, ACME_1, "5", "--op-id", "T-9")[0] == 0
    client = sync_redis.Redis.from_url(redis_url)
    try:
        op_key = keys.op_key(keys.subscriber_prefix("acme", ACME_1), "cli:T-9")
        assert 3600 < client.ttl(op_key) <= 86400
    finally:
        client.close()
    config.write_text("[ledger]\nidempotency_ttl = 1\n")
    code, _, err = run(capsys, "account", "show", *base, ACME_1)
    assert code == 2 and "idempotency_ttl" in err
