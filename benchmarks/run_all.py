"""Run every benchmark in turn: what ``make bench`` does.

Each benchmark is its own module with a ``main(argv)`` that measures against a baseline taken in
the same run and writes ``benchmarks/results/<name>.json``. This runs them one after the other
(never in parallel: they would measure each other), continues past a failure, prints a summary
and exits 1 if any failed.

    .venv/bin/python -m benchmarks.run_all [--only codec,rating] [--quick] [--list]

``--quick`` runs each on tiny sizes and writes to ``--output-dir`` (default a temporary
directory), so the committed results are not replaced by figures of no value: it checks that
the benchmarks still run, not how fast anything is.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec


class Benchmark(msgspec.Struct, frozen=True):
    name: str
    module: str
    # Arguments of a quick run; ``{out}`` is replaced by the output directory.
    quick: tuple[str, ...]
    needs: tuple[str, ...] = ()  # commands it runs (checked before, named if missing)


BENCHMARKS = (
    Benchmark(
        "codec",
        "benchmarks.bench_codec",
        ("--number", "2", "--repeats", "5", "--output", "{out}/codec.json"),
    ),
    Benchmark(
        "rating",
        "benchmarks.bench_rating",
        ("--prefixes", "2000", "--events", "2000", "--output", "{out}/rating.json"),
    ),
    Benchmark(
        "ledger",
        "benchmarks.bench_ledger",
        ("--clients", "2", "--requests", "200", "--rounds", "1", "--output", "{out}/ledger.json"),
        needs=("redis-server", "redis-benchmark"),
    ),
    Benchmark(
        "sip_transport",
        "benchmarks.bench_sip_transport",
        ("--requests", "300", "--repeats", "1", "--no-write"),
    ),
    Benchmark(
        "server",
        "benchmarks.bench_server",
        ("--sessions", "40", "--repeat", "1"),
        needs=("redis-server",),
    ),
    Benchmark(
        "e2e",
        "benchmarks.bench_e2e",
        (
            "--start-rate",
            "50",
            "--step-s",
            "1",
            "--budget-s",
            "20",
            "--processes",
            "2",
            "--ceiling-rounds",
            "1",
            "--no-profile",
            "--output",
            "{out}/e2e.json",
        ),
        needs=("redis-server", "redis-benchmark"),
    ),
    Benchmark(
        "store",
        "benchmarks.bench_store",
        (
            "--records",
            "2000",
            "--batch",
            "500",
            "--rounds",
            "1",
            "--formats",
            "csv",
            "--no-fsync",
            "--output",
            "{out}/store.json",
        ),
    ),
    Benchmark(
        "api",
        "benchmarks.bench_api",
        ("--rate", "100", "--seconds", "2", "--output", "{out}/api.json"),
        needs=("redis-server",),
    ),
)
NAMES = tuple(b.name for b in BENCHMARKS)


def _missing(benchmark: Benchmark) -> list[str]:
    import shutil

    return [command for command in benchmark.needs if shutil.which(command) is None]


def run_one(benchmark: Benchmark, argv: Sequence[str]) -> int:
    """The benchmark's exit code; an exception is reported and counts as a failure."""
    missing = _missing(benchmark)
    if missing:
        print(f"{benchmark.name}: needs {', '.join(missing)} (make deps installs them)")
        return 2
    try:
        main: Callable[[list[str]], int | None] = importlib.import_module(benchmark.module).main
        code = main(list(argv))
    except SystemExit as exc:  # argparse and the benchmarks' own exits
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # one broken benchmark must not hide the others' results
        print(f"{benchmark.name}: {type(exc).__name__}: {exc}")
        return 1
    return code or 0


def _selected(only: str | None) -> list[Benchmark]:
    if not only:
        return list(BENCHMARKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise SystemExit(
            f"run_all: unknown benchmark {', '.join(unknown)} (have: {', '.join(NAMES)})"
        )
    return [b for b in BENCHMARKS if b.name in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated, of: {', '.join(NAMES)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check they still run")
    parser.add_argument("--output-dir", type=Path, help="--quick results (default: a temp dir)")
    parser.add_argument("--list", action="store_true", help="print the benchmarks and exit")
    args = parser.parse_args(argv)
    selected = _selected(args.only)
    if args.list:
        for benchmark in selected:
            print(f"{benchmark.name}\t{benchmark.module}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-quick-") as tmp:
        out = args.output_dir or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        outcomes: list[tuple[str, int, float]] = []
        for benchmark in selected:
            argv_one = [a.replace("{out}", str(out)) for a in benchmark.quick] if args.quick else []
            print(f"== {benchmark.name} ({benchmark.module} {' '.join(argv_one)})", flush=True)
            started = time.monotonic()
            code = run_one(benchmark, argv_one)
            outcomes.append((benchmark.name, code, time.monotonic() - started))
            sys.stdout.flush()
    print("== summary")
    for name, code, seconds in outcomes:
        print(f"{name:<14} {'ok' if code == 0 else f'FAILED (exit {code})':<18} {seconds:7.1f} s")
    return 0 if all(code == 0 for _, code, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
