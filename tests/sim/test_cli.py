"""``ocs sim`` exit codes for what an operator gets wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocs.cli import main
from ocs.embedded_redis import free_tcp_port


def test_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--no-verify", "--roaming", "2"]) == 2
    assert "roaming_share must be within 0..1" in capsys.readouterr().err


def test_bad_mix_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--no-verify", "--mix", "1,2"]) == 2
    assert "--mix: four numbers" in capsys.readouterr().err


def test_unreadable_scenario_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("load: [1, 2\n")
    assert main(["sim", "--no-verify", "--scenario", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_no_redis_to_verify_against_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OCS_REDIS_URL", raising=False)
    assert main(["sim", "--redis-data-dir", str(tmp_path)]) == 2
    assert "--no-verify" in capsys.readouterr().err


def test_unreachable_server_means_the_run_did_not_happen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_tcp_port()
    args = ["sim", "--no-verify", "--diameter", f"127.0.0.1:{port}", "--workers", "1",
            "--duration", "1", "--json", str(tmp_path / "r.json"),
            "--html", str(tmp_path / "r.html")]  # fmt: skip
    assert main(args) == 3
    assert "could not take place" in capsys.readouterr().err
