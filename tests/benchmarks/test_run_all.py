"""``make bench`` (``python -m benchmarks.run_all``) runs: every benchmark module is found and
the cheap ones complete on tiny sizes without touching the committed results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run_all import NAMES, Benchmark, main, run_one

ROOT = Path(__file__).resolve().parents[2]


def test_make_bench_entry_point_lists_every_benchmark() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_all", "--list"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    names = [line.split("\t")[0] for line in out.stdout.splitlines()]
    assert names == list(NAMES)
    modules = {p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert set(names) == modules  # a new bench_*.py must be added to run_all too


def test_quick_run_of_the_cheap_benchmarks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = ROOT / "benchmarks" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    assert main(["--quick", "--only", "codec,rating", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "codec          ok" in out and "rating         ok" in out
    assert (tmp_path / "codec.json").exists() and (tmp_path / "rating.json").exists()
    assert {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")} == before


def test_a_failing_benchmark_fails_the_run_without_hiding_the_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_one(Benchmark("broken", "json", ()), []) == 1  # json has no main()
    assert "broken: AttributeError" in capsys.readouterr().out
    assert run_one(Benchmark("absent", "benchmarks.no_such_bench", ()), []) == 1
    with pytest.raises(SystemExit, match="unknown benchmark nosuch"):
        main(["--only", "nosuch"])
