"""The CLI around the charging core: ``ocs --version``, ``ocs config check``, no traceback when
the reader of stdout goes away, and the human units ``ocs account`` shows."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ocs.cli import EXIT_BROKEN_PIPE, main, package_version
from ocs.config import Config, load_config
from tariffs.display import format_bytes, format_instant, format_money, format_seconds, zone

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "catalog"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out == f"ocs {package_version()} (mvna-ocs)\n"
    assert package_version()[0].isdigit()  # the installed distribution's version


def test_config_check_prints_the_effective_config_as_toml_that_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCS_SIP_ENABLED", "false")
    path = tmp_path / "ocs.toml"
    path.write_text('[diameter]\norigin_host = "ocs.example.net"\nlisten_port = 3870\n')
    code, out, err = run(capsys, "config", "check", "--config", str(path))
    assert code == 0 and err == ""
    assert out.splitlines()[0].endswith("valid")
    assert 'origin_host = "ocs.example.net"' in out and "listen_port = 3870" in out
    assert "# path = (not set)" in out  # catalog.path has no value
    again = tmp_path / "effective.toml"
    again.write_text(out)
    tomllib.loads(out)
    assert load_config(again, environ={}) == load_config(path)
    code, out, _ = run(capsys, "config", "check", "--config", str(path), "--json")
    data = json.loads(out)
    assert data["diameter"]["listen_port"] == 3870 and data["sip"]["enabled"] is False
    assert set(data) == set(Config.__struct_fields__)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[diameter]\nwatchdog_interval_s = 30\n",
            "diameter.watchdog_interval_s: unknown key (section [diameter] has: listen_host,",
        ),
        ('[diameter]\nlisten_port = "x"\n', "diameter.listen_port: Expected `int`, got `str`"),
        ("[http]\nlisten_port = 70000\n", "http.listen_port: 70000 is not a TCP/UDP port"),
        ("[nosuch]\na = 1\n", "[nosuch]: unknown section (expected one of: diameter, http,"),
        ("[diameter\n", "not valid TOML"),
    ],
)
def test_config_check_names_the_key_at_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = run(capsys, "config", "check", "--config", str(path))
    assert code == 1 and out == ""
    assert err.startswith(f"ocs config check: {path}: ") and message in err
    code, out, err = run(capsys, "config", "check", "--config", str(path), "--json")
    assert code == 1 and err == "" and message in json.loads(out)["error"]["message"]


def test_config_check_of_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "config", "check", "--config", "/nonexistent/ocs.toml")
    assert code == 1 and err == "ocs config check: /nonexistent/ocs.toml: no such config file\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["catalog", "check", str(EXAMPLES)],
        ["--version"],
        ["config", "check", "--json"],
    ],
)
def test_no_traceback_when_the_reader_goes_away(argv: list[str]) -> None:
    """``ocs ... | head``: the reader closes its end before we write; we exit quietly."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ocs", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the interpreter has even started: every write fails
    err = process.stderr.read().decode()
    code = process.wait(timeout=60)
    # argparse's --version swallows the failed write itself (exit 0); ours exit 141 like `yes`.
    assert code == (0 if argv == ["--version"] else EXIT_BROKEN_PIPE)
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == ""


def test_human_units() -> None:
    assert format_bytes(1 << 30) == "1.00 GiB"
    assert format_bytes(1536) == "1.50 KiB"
    assert format_bytes(10 * (1 << 20)) == "10.00 MiB"
    assert format_bytes(512) == "512 B"
    assert format_seconds(6000) == "100 min"
    assert format_seconds(90) == "1 min 30 s"
    assert format_seconds(45) == "45 s"
    assert format_money(19_920_000, "EUR") == "19.92 EUR"
    assert format_money(-1_500_000, "") == "-1.50"
    berlin = zone("Europe/Berlin")
    assert format_instant(1_767_225_600, berlin) == "2026-01-01T01:00:00+01:00"  # 00:00 UTC
    assert format_instant(1_782_864_000, berlin) == "2026-07-01T02:00:00+02:00"
    assert format_instant(0, berlin) == "never"
    assert format_instant(1_767_225_600, zone("No/Such_Zone")) == "2026-01-01T00:00:00+00:00"


def test_open_reservations_in_human_units() -> None:
    import io

    from balance.records import Account, Bucket, Hold, RatingGroupState, SessionState
    from ocs.account_view import Context, account_json, account_tables, console

    mib = 1 << 20
    bucket = Bucket("data_1g.data#catalog", "data_1g.data", "bytes", 1 << 30, 10, 0.0, 10 * mib)
    group = RatingGroupState(
        rating_group=10,
        holds=(Hold("data_1g.data#catalog", 10 * mib, 0), Hold("", 50_000, 1)),
        legs=(),
        valid_until_s=1_767_225_600.0,
        granted_units=10 * mib,
    )
    account = Account(
        1, 0, 9_950_000, 0, 50_000, (bucket,), (SessionState("s;1", 0.0, (group,)),), 0
    )
    ctx = Context("EUR", "Europe/Berlin", {"data": "byte"}, {10: "byte", 20: "byte"})
    data = account_json("acme", "4917099000001", account, 1_767_225_000.0, ctx)
    (reservation,) = data["reservations"]
    assert reservation["granted_text"] == "10.00 MiB"
    assert reservation["valid_until"] == "2026-01-01T01:00:00+01:00"
    assert [h["amount_text"] for h in reservation["held"]] == ["10.00 MiB", "0.05 EUR"]
    out = io.StringIO()
    view = console(out)
    for table in account_tables(data):
        view.print(table)
    text = out.getvalue()
    assert "held          0.05 EUR" in text and "expires" in text and "never" in text
    assert "s;1" in text and "10.00 MiB" in text and "data_1g.data#catalog 10.00 MiB" in text
