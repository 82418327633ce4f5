"""One whole simulator run: population, ledger snapshot, traffic, verification, report.

This is what ``ocs sim`` and the benchmark call::

    outcome = simulate(scenario, redis_url=url, progress=True)
    outcome.report["verification"]["passed"]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console

from ocs.ledger_runtime import connect_admin
from sim.population import SimSubscriber
from sim.progress import LiveProgress
from sim.report import build_report, print_report, write_reports
from sim.runner import RunResult, load_run_population, new_run_id, run_traffic
from sim.scenario import Scenario
from sim.traffic import session_prefix
from sim.verify import LedgerSnapshot, Verification, snapshot, verify_run
from sim.verify_store import EXPORT_WAIT_S_DEFAULT
from tariffs.loader import load_catalog

# Reading the ledger before and after a run (a cluster client when the server runs on one).
VERIFY_TIMEOUT_S = 10.0


class SimOutcome(msgspec.Struct):
    result: RunResult
    verification: Verification | None
    report: dict[str, Any]

    @property
    def passed(self) -> bool:
        """Verified and agreeing (a run without verification never passes)."""
        return self.verification is not None and self.verification.passed


async def _snapshot(url: str, population: list[SimSubscriber]) -> LedgerSnapshot:
    client = await connect_admin(url, VERIFY_TIMEOUT_S)
    try:
        return await snapshot(client, population)
    finally:
        await client.aclose()


async def _verify(
    url: str,
    result: RunResult,
    before: LedgerSnapshot,
    population: list[SimSubscriber],
    store_url: str | None,
    export_wait_s: float,
) -> Verification:
    client = await connect_admin(url, VERIFY_TIMEOUT_S)
    try:
        return await verify_run(
            client,
            result.stats,
            before,
            population,
            session_prefix(result.run_id),
            store_url=store_url,
            export_wait_s=export_wait_s,
        )
    finally:
        await client.aclose()


def simulate(
    scenario: Scenario,
    *,
    redis_url: str | None,
    progress: bool | None = None,
    in_process: bool = False,
    json_path: Path | None = None,
    html_path: Path | None = None,
    console: Console | None = None,
    run_id: str | None = None,
    quiet: bool = False,
    store_url: str | None = None,
    export_wait_s: float = EXPORT_WAIT_S_DEFAULT,
) -> SimOutcome:
    """Run ``scenario``; verify against the ledger at ``redis_url`` when given (and, with
    ``store_url``, that the usage store holds the run's records once the exporter caught up).

    ``progress`` None: live progress only when stdout is a terminal. Must not be called from a
    thread with a running event loop (use ``asyncio.to_thread``).
    """
    console = console or Console()
    live = sys.stdout.isatty() if progress is None else progress
    population = load_run_population(scenario)
    before = asyncio.run(_snapshot(redis_url, population)) if redis_url else None
    run_id = run_id or new_run_id()
    target = scenario.session_rate() * scenario.ccrs_per_session()
    if live:
        with LiveProgress(
            console, None if scenario.load.concurrency else target, scenario.load.duration_s
        ) as view:
            result = run_traffic(
                scenario, population, run_id=run_id, in_process=in_process, progress=view.update
            )
    else:
        result = run_traffic(scenario, population, run_id=run_id, in_process=in_process)
    verification = None
    if redis_url and before is not None:
        verification = asyncio.run(
            _verify(redis_url, result, before, population, store_url, export_wait_s)
        )
    currencies = {t.id: t.currency for t in load_catalog(scenario.catalog).tenants}
    report = build_report(result, verification, currencies)
    write_reports(report, json_path, html_path)
    if not quiet:
        print_report(report, console)
    return SimOutcome(result, verification, report)
