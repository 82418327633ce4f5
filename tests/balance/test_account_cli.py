"""``ocs account`` against a real Redis: table and JSON output, exit codes, amount parsing."""

from __future__ import annotations

import json

import pytest

from ocs.cli import main
from ocs.commands.account import UsageError, format_amount, parse_amount


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
    base = ("--tenant", "acme", "--redis-url", redis_url)
    code, _, _ = run(capsys, "account", "create", *base, "4917001", "--balance", "2.50")
    assert code == 0
    code, out, _ = run(capsys, "account", "topup", *base, "4917001", "5.00")
    assert code == 0 and "balance       7.50" in out
    code, out, _ = run(
        capsys, "account", "adjust", *base, "4917001", "-0.25", "--reason", "goodwill fix"
    )
    assert code == 0
    code, out, _ = run(capsys, "account", "block", *base, "4917001", "--json")
    data = json.loads(out)
    assert code == 0 and data["state"] == "blocked" and data["balance_micro"] == 7_250_000
    code, out, _ = run(capsys, "account", "unblock", *base, "4917001")
    assert code == 0 and "active" in out
    code, out, _ = run(capsys, "account", "show", *base, "4917001", "--json")
    assert json.loads(out)["balance"] == "7.25"


def test_errors_are_specific(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("--tenant", "acme", "--redis-url", redis_url)
    code, _, err = run(capsys, "account", "show", *base, "nobody")
    assert code == 1 and "no subscriber 'nobody'" in err and "5030" in err
    code, _, err = run(capsys, "account", "topup", *base, "nobody", "1.00")
    assert code == 1 and "5030" in err
    code, _, err = run(capsys, "account", "topup", *base, "nobody", "1.0000001")
    assert code == 2 and "6 decimal places" in err
    run(capsys, "account", "create", *base, "x", "--balance", "1.00")
    code, _, err = run(capsys, "account", "adjust", *base, "x", "-2.00", "--reason", "oops")
    assert code == 1 and "below the credit limit" in err
    code, _, err = run(capsys, "account", "create", *base, "x")
    assert code == 1 and "already has an account" in err
    code, _, err = run(capsys, "account", "show", "--tenant", "a*", "--redis-url", redis_url, "x")
    assert code == 2 and "tenant id" in err


def test_no_redis_is_a_clear_error(
    tmp_path: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OCS_REDIS_URL", raising=False)
    code, _, err = run(
        capsys, "account", "show", "--tenant", "acme", "--data-dir", str(tmp_path), "x"
    )
    assert code == 1 and "--redis-url" in err and "OCS_REDIS_URL" in err
