"""Live progress on a terminal (rich): elapsed, achieved vs target rate, answers by Result-Code,
p50/p99 latency, errors. Nothing is drawn when stdout is not a terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from sim.stats import RunStats


class LiveProgress:
    def __init__(self, console: Console, target_per_s: float | None, duration_s: float) -> None:
        self.console = console
        self.target = target_per_s
        self.duration_s = duration_s
        self._live: Live | None = None
        self._last_answers = 0
        self._last_elapsed = 0.0

    def __enter__(self) -> LiveProgress:
        self._live = Live(self._table(None), console=self.console, refresh_per_second=4)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(self, snapshot: dict[str, Any]) -> None:
        if self._live is not None:
            self._live.update(self._table(snapshot))

    def _table(self, snapshot: dict[str, Any] | None) -> Table:
        table = Table(title="ocs sim", show_header=False, min_width=60)
        table.add_column("what", style="bold")
        table.add_column("value")
        if snapshot is None:
            table.add_row("status", "connecting…")
            return table
        stats: RunStats = snapshot["stats"]
        elapsed = float(snapshot["elapsed_s"])
        answers = stats.answers
        window = max(elapsed - self._last_elapsed, 1e-6)
        rate = (answers - self._last_answers) / window
        self._last_answers, self._last_elapsed = answers, elapsed
        phase = "draining" if snapshot["draining"] else "running"
        table.add_row("elapsed", f"{elapsed:6.1f} s of {self.duration_s:g} s ({phase})")
        target = f" / target {self.target:,.0f}" if self.target else ""
        table.add_row("answers/s", f"{rate:,.0f}{target}")
        table.add_row("answers", f"{answers:,}")
        table.add_row(
            "Result-Codes",
            ", ".join(f"{k}: {v:,}" for k, v in sorted(stats.results.items())) or "-",
        )
        table.add_row(
            "latency",
            f"p50 {stats.latency.percentile(0.5) / 1000:.2f} ms  "
            f"p99 {stats.latency.percentile(0.99) / 1000:.2f} ms",
        )
        errors = stats.error_count
        table.add_row(
            "errors",
            f"[red]{errors:,}[/red] " + ", ".join(f"{k}: {v}" for k, v in stats.errors.items())
            if errors
            else "0",
        )
        return table
