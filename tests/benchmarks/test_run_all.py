"""``make bench`` runs ``benchmarks.run_all``: every benchmark must run to the end in its smoke
mode (tiny sizes, results under a temporary directory, never over benchmarks/results/)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import run_all

ROOT = Path(__file__).resolve().parents[2]


def test_make_bench_runs_run_all() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^bench:.*\n\t(.+)$", makefile, re.M)
    assert recipe is not None and "-m benchmarks.run_all" in recipe.group(1)


def test_every_benchmark_has_a_plan_in_every_mode() -> None:
    on_disk = {p.stem for p in (ROOT / "benchmarks").glob("bench_*.py")}
    for plans in (run_all.SMOKE, run_all.QUICK, run_all.FULL):
        assert set(plans) == on_disk


def test_unknown_benchmark_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_all.main(["--smoke", "--only", "bench_nosuch"])
    assert exit_info.value.code == 2
    assert "no benchmark named bench_nosuch" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(960)  # every benchmark in turn, each bounded by run_all
def test_smoke_run_of_every_benchmark(tmp_path: Path) -> None:
    results_before = {
        p.name: p.read_bytes() for p in (ROOT / "benchmarks" / "results").glob("*.json")
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_all", "--smoke", "--output-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,  # each benchmark is bounded at 180 s by run_all itself
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = done.stdout.split("benchmark              status", 1)[1]
    for name in run_all.SMOKE:
        assert re.search(rf"^{name}\s+ok\s", summary, re.M), summary
    for written in ("codec", "rating", "ledger", "e2e"):
        assert json.loads((tmp_path / f"{written}.json").read_text(encoding="utf-8"))
    results_after = {
        p.name: p.read_bytes() for p in (ROOT / "benchmarks" / "results").glob("*.json")
    }
    assert results_after == results_before, "a smoke run must not overwrite published figures"
