"""The run's report: a JSON document, a terminal table (rich) and a self-contained HTML page:
throughput and latency plots (``sim.plots``, static SVG inline: no script, no network), the
scenario and the verification as tables, money in the tenant currency, data in KiB/MiB/GiB and
time in minutes. The seed the run used is recorded, so a failing run can be replayed with
``--seed``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from sim.report_html import render_html
from sim.runner import RunResult
from sim.verify import Verification

PERCENTILES = (0.5, 0.9, 0.99, 0.999)


def steady_window(result: RunResult) -> tuple[int, int]:
    """Whole seconds of the run after the ramp and before arrivals stopped: [first, last)."""
    first = math.ceil(result.scenario.load.ramp_s)
    last = max(first + 1, math.floor(result.arrivals_s))
    return first, last


def build_report(
    result: RunResult,
    verification: Verification | None,
    currencies: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``currencies``: each tenant's currency (from the catalog), for money in the page."""
    stats = result.stats
    series = [
        {
            "second": second,
            "answers": hist.total,
            "p50_us": hist.percentile(0.5),
            "p99_us": hist.percentile(0.99),
        }
        for second, hist in sorted(stats.per_second.items())
    ]
    first, last = steady_window(result)
    steady = [row["answers"] for row in series if first <= row["second"] < last]
    span = max(1, last - first)
    answers = stats.answers
    ccr_sent = sum(stats.sent[k] for k in ("I", "U", "T", "E"))
    target_ccr = result.scenario.session_rate() * result.scenario.ccrs_per_session()
    workers_cpu = stats.cpu_s
    tenants = {name: totals.to_wire() for name, totals in sorted(stats.tenants.items())}
    return {
        "run_id": result.run_id,
        "seed": result.scenario.seed,
        "currencies": dict(sorted((currencies or {}).items())),
        "session_prefix": f"sim-{result.run_id}-",
        "started_at": result.started_at,
        "arrivals_s": round(result.arrivals_s, 3),
        "elapsed_s": round(result.elapsed_s, 3),
        "workers": result.workers,
        "scenario": msgspec.to_builtins(result.scenario),
        "throughput": {
            "answers": answers,
            "ccr_sent": ccr_sent,
            "answers_per_s": round(answers / max(result.arrivals_s, 1e-9), 1),
            "steady_answers_per_s": round(sum(steady) / span, 1),
            "steady_window_s": [first, last],
            "target_ccr_per_s": None if result.scenario.load.concurrency else round(target_ccr, 1),
        },
        "latency_us": {
            **stats.latency.percentiles(PERCENTILES),
            "max": stats.latency.max_us,
            "count": stats.latency.total,
        },
        "latency_histogram": stats.latency.to_wire(),
        "result_codes": dict(sorted(stats.results.items())),
        "errors": dict(stats.errors),
        "sent": dict(stats.sent),
        "sessions": dict(stats.sessions),
        "server_requests": dict(stats.server_requests),
        "tenants": tenants,
        "per_second": series,
        "cpu": {
            "workers_cpu_s": round(workers_cpu, 3),
            "parent_cpu_s": round(result.wall_cpu_s, 3),
            "cores_used": round((workers_cpu + result.wall_cpu_s) / max(result.elapsed_s, 1e-9), 3),
            "machine_cores": os.cpu_count(),
        },
        "verification": verification.to_json() if verification is not None else None,
    }


def _ms(us: int) -> str:
    return f"{us / 1000:.2f}"


def print_report(report: dict[str, Any], console: Console) -> None:
    throughput, latency, cpu = report["throughput"], report["latency_us"], report["cpu"]
    table = Table(title=f"ocs sim run {report['run_id']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    target = throughput["target_ccr_per_s"]
    table.add_row("elapsed", f"{report['elapsed_s']:.1f} s ({report['arrivals_s']:.1f} s arrivals)")
    table.add_row("seed", f"{report['seed']} (replay with --seed {report['seed']})")
    table.add_row(
        "answers/s",
        f"{throughput['steady_answers_per_s']:,.0f} steady, {throughput['answers_per_s']:,.0f} "
        f"overall" + (f" (target {target:,.0f} CCR/s)" if target else ""),
    )
    table.add_row(
        "latency ms",
        "  ".join(f"{k} {_ms(v)}" for k, v in latency.items() if k.startswith("p"))
        + f"  max {_ms(latency['max'])}",
    )
    table.add_row(
        "Result-Codes", ", ".join(f"{k}: {v:,}" for k, v in report["result_codes"].items())
    )
    table.add_row("errors", ", ".join(f"{k}: {v}" for k, v in report["errors"].items()) or "none")
    table.add_row("sent", ", ".join(f"{k}: {v:,}" for k, v in sorted(report["sent"].items())))
    table.add_row(
        "sessions", ", ".join(f"{k}: {v:,}" for k, v in sorted(report["sessions"].items()))
    )
    table.add_row(
        "simulator CPU",
        f"{cpu['workers_cpu_s']:.1f} s in workers + {cpu['parent_cpu_s']:.1f} s parent = "
        f"{cpu['cores_used']:.2f} of {cpu['machine_cores']} cores",
    )
    console.print(table)
    tenants = Table(title="per tenant")
    for column in ("tenant", "sessions", "requests", "used", "unanswered"):
        tenants.add_column(column)
    for name, totals in report["tenants"].items():
        tenants.add_row(
            name,
            f"{totals['sessions']:,}",
            f"{totals['ccrs']:,}",
            ", ".join(f"{k} {v:,}" for k, v in sorted(totals["used"].items())),
            ", ".join(f"{k} {v:,}" for k, v in sorted(totals["uncertain"].items())) or "-",
        )
    console.print(tenants)
    verification = report["verification"]
    if verification is None:
        console.print("verification: skipped (no Redis to read the ledger from)")
        return
    checks = Table(title="verification")
    for column in ("tenant", "units reported", "units in records", "retail", "balances fell",
                   "result"):  # fmt: skip
        checks.add_column(column)
    for check in verification["tenants"]:
        checks.add_row(
            check["tenant"],
            ", ".join(f"{k} {v:,}" for k, v in sorted(check["sim_used"].items())),
            ", ".join(f"{k} {v:,}" for k, v in sorted(check["record_units"].items())),
            f"{check['record_retail']:,}",
            f"{check['balance_decrease']:,}",
            "PASS" if check["passed"] else "FAIL: " + "; ".join(check["problems"]),
        )
    console.print(checks)
    store = verification.get("store")
    if store is not None:
        console.print(
            f"usage store: {store['records']:,} records of the run read from PostgreSQL; "
            f"streams {'trimmed' if store['trimmed'] else 'NOT trimmed'} "
            f"(waited {store['waited_s']:.1f} s for the exporter)"
        )
        for problem in store["problems"]:
            console.print(f"[red]{problem}[/red]")
    for problem in verification["problems"]:
        console.print(f"[red]{problem}[/red]")
    console.print("[bold green]PASS[/]" if verification["passed"] else "[bold red]FAIL[/]")


def write_reports(report: dict[str, Any], json_path: Path | None, html_path: Path | None) -> None:
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(report), encoding="utf-8")
