"""Run every benchmark one after the other: ``make bench`` (``--quick``), the suite's smoke run
(``--smoke``), or the full runs that produced the published figures (``--full``).

``--quick`` and ``--smoke`` write their JSON results under ``--output-dir`` (default
``var/bench/``), never over ``benchmarks/results/``: their short runs are too noisy to replace
the published figures. ``--full`` runs each benchmark with its own defaults, which write
``benchmarks/results/<name>.json`` (about 15 minutes on 2 vCPUs; bench_e2e alone ~5).

Exit status: 0 when every benchmark ran and exited 0, 1 otherwise (the summary names which).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> arguments per mode; ``out`` is the results file the short modes write to.
Plan = Callable[[Path], list[str]]

SMOKE: dict[str, Plan] = {
    "bench_codec": lambda out: ["--number", "5", "--repeats", "10", "--output", str(out)],
    "bench_rating": lambda out: ["--prefixes", "2000", "--events", "5000", "--output", str(out)],
    "bench_ledger": lambda out: [
        *("--clients", "4", "--requests", "200", "--rounds", "1"),
        *("--output", str(out)),
    ],
    "bench_cluster": lambda out: [
        *("--clients", "8", "--requests", "200", "--rounds", "1", "--output", str(out))
    ],
    "bench_sip_transport": lambda out: [
        *("--requests", "500", "--window", "8", "--repeats", "1", "--no-write")
    ],
    "bench_server": lambda out: ["--sessions", "100", "--repeat", "1"],
    "bench_store": lambda out: [
        *("--records", "2000", "--batch", "500", "--rounds", "1", "--export-records", "2000"),
        *("--formats", "csv", "--no-fsync", "--output", str(out)),
    ],
    "bench_export": lambda out: [
        *("--records", "2000", "--batch", "500", "--rounds", "1", "--skip-load"),
        *("--output", str(out)),
    ],
    "bench_xdr": lambda out: [
        *("--records", "2000", "--subscribers", "50", "--rounds", "1"),
        *("--ceiling-requests", "500", "--output", str(out)),
    ],
    "bench_renew": lambda out: ["--subscribers", "300", "--output", str(out)],
    "bench_instructions": lambda out: [
        *("--ccrs", "20", "--warmup", "10", "--repeat", "1", "--no-profile", "--no-redis"),
        *("--out", str(out)),
    ],
    "bench_settle": lambda out: ["--records", "20000", "--output", str(out)],
    "bench_api": lambda out: ["--rate", "100", "--seconds", "2", "--output", str(out)],
    "bench_e2e": lambda out: [
        *("--start-rate", "200", "--step-s", "1", "--budget-s", "4", "--processes", "1"),
        *("--p99-attempts", "1", "--ceiling-rounds", "1", "--no-profile"),
        *("--output", str(out)),
    ],
    "bench_dispatch": lambda out: [
        *("--events", "100", "--rounds", "1", "--concurrency", "8", "--output", str(out))
    ],
    "bench_thresholds": lambda out: [
        *("--clients", "4", "--requests", "200", "--rounds", "1", "--output", str(out))
    ],
}

QUICK: dict[str, Plan] = {
    "bench_codec": lambda out: ["--repeats", "60", "--output", str(out)],
    "bench_rating": lambda out: [
        *("--prefixes", "50000", "--events", "200000", "--output", str(out))
    ],
    "bench_ledger": lambda out: ["--requests", "3000", "--rounds", "2", "--output", str(out)],
    "bench_cluster": lambda out: ["--requests", "2000", "--rounds", "1", "--output", str(out)],
    "bench_sip_transport": lambda out: ["--requests", "10000", "--repeats", "1", "--no-write"],
    "bench_server": lambda out: ["--sessions", "1000", "--repeat", "2"],
    "bench_xdr": lambda out: ["--records", "20000", "--rounds", "1", "--output", str(out)],
    "bench_renew": lambda out: ["--subscribers", "10000", "--output", str(out)],
    "bench_settle": lambda out: ["--records", "200000", "--output", str(out)],
    "bench_api": lambda out: ["--rate", "100", "--seconds", "2", "--output", str(out)],
    "bench_export": lambda out: [
        *("--records", "20000", "--rounds", "1", "--sim-s", "20", "--output", str(out))
    ],
    "bench_store": lambda out: [
        *("--records", "50000", "--rounds", "2", "--export-records", "100000"),
        *("--output", str(out)),
    ],
    "bench_instructions": lambda out: [
        "--ccrs",
        "100",
        "--warmup",
        "50",
        "--repeat",
        "1",
        "--out",
        str(out),
    ],
    "bench_e2e": lambda out: [
        *("--budget-s", "45", "--processes", "1", "--ceiling-rounds", "1", "--no-profile"),
        *("--output", str(out)),
    ],
    "bench_dispatch": lambda out: ["--events", "1000", "--rounds", "2", "--output", str(out)],
    "bench_thresholds": lambda out: [
        *("--requests", "2000", "--rounds", "2", "--output", str(out))
    ],
}

FULL: dict[str, Plan] = {name: (lambda out: []) for name in QUICK}


def run_one(name: str, args: list[str], timeout_s: float) -> tuple[int, float, str]:
    """(exit status, seconds, last output line) of ``python -m benchmarks.<name> args``."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return 124, time.monotonic() - started, f"timed out after {timeout_s:.0f} s"
    output = (done.stdout + done.stderr).strip()
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    last = output.splitlines()[-1] if output else ""
    return done.returncode, time.monotonic() - started, last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny runs: does each one work?")
    mode.add_argument("--quick", action="store_true", help="short runs (the default)")
    mode.add_argument("--full", action="store_true", help="published figures' runs")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only these")
    parser.add_argument("--timeout-s", type=float, default=0, help="per benchmark; 0: by mode")
    args = parser.parse_args(argv)
    plans, timeout_s = (
        (SMOKE, 180.0) if args.smoke else (FULL, 3600.0) if args.full else (QUICK, 900.0)
    )
    timeout_s = args.timeout_s or timeout_s
    names = [n for n in plans if not args.only or n in args.only]
    unknown = set(args.only or ()) - set(plans)
    if unknown:
        parser.error(f"no benchmark named {', '.join(sorted(unknown))} (have: {', '.join(plans)})")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    summary: list[tuple[str, int, float, str]] = []
    for name in names:
        print(f"== {name}", flush=True)
        out = args.output_dir / f"{name.removeprefix('bench_')}.json"
        status, seconds, last = run_one(name, plans[name](out), timeout_s)
        summary.append((name, status, seconds, last))
    print("\nbenchmark              status   seconds  last line")
    for name, status, seconds, last in summary:
        verdict = "ok" if status == 0 else f"FAIL {status}"
        print(f"{name:<22} {verdict:<8} {seconds:7.1f}  {last[:90]}")
    return 0 if all(status == 0 for _, status, _, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
