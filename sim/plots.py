"""The report's plots, drawn with matplotlib into static SVG (no script, no network).

Two time series over the run's seconds, each with the ramp / steady / drain phases shaded, a grid
and m:ss time ticks: answers per second against the target rate, and latency percentiles per
second on a log scale (one slow second does not flatten the rest).

matplotlib is imported only here and only when a page is rendered: the simulator's hot loop and
``ocs serve`` never load it. It is the optional ``report`` extra (``pip install
'mvna-ocs[report]'``, part of ``dev``); without it the HTML report says how to get it.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

import msgspec

PHASE_COLOURS = {"ramp": "#fdd9a0", "steady": "#cfe8cf", "drain": "#d9d9ef"}
SERIES_COLOURS = {"answers": "#2ca02c", "target": "#555555", "p50": "#1f77b4", "p99": "#d62728"}
FIGURE_SIZE_IN = (9.0, 3.4)


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


class Phases(msgspec.Struct, frozen=True):
    """Seconds of the run where arrivals ramp up, hold steady, and stop (drain)."""

    ramp_s: float
    arrivals_s: float
    elapsed_s: float

    def spans(self) -> list[tuple[str, float, float]]:
        spans = [
            ("ramp", 0.0, min(self.ramp_s, self.arrivals_s)),
            ("steady", min(self.ramp_s, self.arrivals_s), self.arrivals_s),
            ("drain", self.arrivals_s, self.elapsed_s),
        ]
        return [(name, start, end) for name, start, end in spans if end > start]


def target_curve(
    rate: float | None, phases: Phases, ramp_floor: float = 0.1
) -> list[tuple[float, float]]:
    """The offered rate over time: a linear ramp from ``ramp_floor`` of ``rate`` (the
    simulator's ramp starts at 10 %), then flat until arrivals stop, then none."""
    if not rate:
        return []
    points = []
    if phases.ramp_s > 0:
        points.append((0.0, rate * ramp_floor))
        points.append((min(phases.ramp_s, phases.arrivals_s), rate))
    else:
        points.append((0.0, rate))
    points.append((phases.arrivals_s, rate))
    return points


def _mmss(seconds: float, _position: object = None) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _log_label(value: float, _position: object = None) -> str:
    """Log-axis labels at 1, 2 and 5 of each decade, written plainly (``20``, not 2×10¹)."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value))
    return f"{value:g}" if round(mantissa, 6) in (1.0, 2.0, 5.0) else ""


def _figure() -> tuple[Any, Any]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # the optional `report` extra
        raise PlotsUnavailable(
            "the HTML report's plots need matplotlib: pip install 'mvna-ocs[report]'"
        ) from exc
    figure = Figure(figsize=FIGURE_SIZE_IN, layout="constrained")
    return figure, figure.add_subplot()


def _axes_common(axes: Any, phases: Phases, title: str, y_label: str) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    for name, start, end in phases.spans():
        axes.axvspan(start, end, color=PHASE_COLOURS[name], alpha=0.6, lw=0, label=name)
    axes.set_xlim(0, max(phases.elapsed_s, 1.0))
    axes.xaxis.set_major_locator(MaxNLocator(nbins=10, steps=[1, 2, 3, 5, 6, 10]))
    axes.xaxis.set_major_formatter(FuncFormatter(_mmss))
    axes.set_xlabel("time since start (m:ss)")
    axes.set_ylabel(y_label)
    axes.set_title(title, loc="left", fontsize=11, fontweight="bold")
    axes.grid(True, which="major", color="#bbbbbb", lw=0.6)
    axes.grid(True, which="minor", color="#e3e3e3", lw=0.4)
    axes.set_axisbelow(True)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _svg(figure: Any) -> str:
    """The figure as an inline ``<svg>`` element: text kept as text, no XML prologue, no
    metadata, ids stable from run to run."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ocs-sim-report"}):
        figure.savefig(
            buffer,
            format="svg",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def throughput_svg(
    rows: list[dict[str, Any]], phases: Phases, target_rate: float | None, unit: str
) -> str:
    """Answers per second, with the target rate (the offered load) as a dashed line."""
    figure, axes = _figure()
    seconds = [row["second"] + 0.5 for row in rows]  # a second's count sits mid-second
    axes.plot(seconds, [row["answers"] for row in rows], color=SERIES_COLOURS["answers"],
              lw=1.4, label="answers/s")  # fmt: skip
    target = target_curve(target_rate, phases)
    if target:
        axes.plot([x for x, _ in target], [y for _, y in target], color=SERIES_COLOURS["target"],
                  lw=1.2, ls="--", label=f"target {unit}/s")  # fmt: skip
    axes.set_ylim(bottom=0)
    _axes_common(axes, phases, "Throughput", "answers per second")
    return _svg(figure)


def latency_svg(rows: list[dict[str, Any]], phases: Phases) -> str:
    """Per-second p50 and p99 in milliseconds, log scale."""
    figure, axes = _figure()
    seconds = [row["second"] + 0.5 for row in rows if row["answers"]]
    for key, label in (("p50_us", "p50"), ("p99_us", "p99")):
        values = [max(row[key], 1) / 1000 for row in rows if row["answers"]]
        axes.plot(seconds, values, color=SERIES_COLOURS[label], lw=1.4, label=label,
                  marker="." if len(values) < 30 else None)  # fmt: skip
    axes.set_yscale("log")
    from matplotlib.ticker import FuncFormatter

    axes.yaxis.set_major_formatter(FuncFormatter(_log_label))
    axes.yaxis.set_minor_formatter(FuncFormatter(_log_label))
    _axes_common(axes, phases, "Latency per second (log scale)", "milliseconds")
    return _svg(figure)


_EXTERNAL = re.compile(r"""(?:href|src)\s*=\s*["'](?!#)""")


def is_self_contained(svg: str) -> bool:
    """No reference to anything outside the page (namespaces are names, not fetches)."""
    return "<script" not in svg and not _EXTERNAL.search(svg)
