"""Inline SVG charts for the dashboards: no script, no external asset, escaped labels."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477")
WIDTH, HEIGHT, PAD = 640, 220, 44


def _fmt(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{int(value)}"


def bar_chart(title: str, bars: Sequence[tuple[str, float]], *, unit: str = "") -> str:
    """Horizontal-axis bars, one per label (negative values drawn below the axis)."""
    if not bars:
        return f"<p class='empty'>{escape(title)}: no data in this period</p>"
    top = max(max(v for _, v in bars), 0.0)
    bottom = min(min(v for _, v in bars), 0.0)
    span = (top - bottom) or 1.0
    plot_h = HEIGHT - 2 * PAD
    zero_y = PAD + plot_h * top / span
    step = (WIDTH - 2 * PAD) / len(bars)
    parts = [_open(title)]
    for i, (label, value) in enumerate(bars):
        h = plot_h * abs(value) / span
        y = zero_y - h if value >= 0 else zero_y
        x = PAD + i * step + step * 0.15
        parts.append(
            f"<rect x='{x:.1f}' y='{y:.1f}' width='{step * 0.7:.1f}' height='{h:.1f}' "
            f"fill='{PALETTE[i % len(PALETTE)]}'><title>{escape(label)}: {_fmt(value)} "
            f"{escape(unit)}</title></rect>"
            f"<text x='{x + step * 0.35:.1f}' y='{HEIGHT - PAD + 16}' text-anchor='middle'>"
            f"{escape(label)}</text>"
            f"<text x='{x + step * 0.35:.1f}' y='{y - 4:.1f}' text-anchor='middle' "
            f"class='v'>{_fmt(value)}</text>"
        )
    parts.append(
        f"<line x1='{PAD}' x2='{WIDTH - PAD}' y1='{zero_y:.1f}' y2='{zero_y:.1f}' stroke='#888'/>"
    )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, series: dict[str, list[tuple[str, float]]], *, unit: str = "") -> str:
    """One line per series over the shared, sorted x labels (e.g. days)."""
    labels = sorted({x for points in series.values() for x, _ in points})
    if not labels:
        return f"<p class='empty'>{escape(title)}: no data in this period</p>"
    top = max((v for points in series.values() for _, v in points), default=1.0) or 1.0
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = plot_w / max(len(labels) - 1, 1)
    where = {label: PAD + i * step for i, label in enumerate(labels)}
    parts = [_open(title)]
    parts.append(
        f"<text x='4' y='{PAD}' class='v'>{_fmt(top)} {escape(unit)}</text>"
        f"<line x1='{PAD}' x2='{WIDTH - PAD}' y1='{HEIGHT - PAD}' y2='{HEIGHT - PAD}' "
        "stroke='#888'/>"
        f"<text x='{PAD}' y='{HEIGHT - PAD + 16}'>{escape(labels[0])}</text>"
        f"<text x='{WIDTH - PAD}' y='{HEIGHT - PAD + 16}' text-anchor='end'>"
        f"{escape(labels[-1])}</text>"
    )
    for i, (name, points) in enumerate(sorted(series.items())):
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(
            f"{where[x]:.1f},{HEIGHT - PAD - plot_h * v / top:.1f}" for x, v in sorted(points)
        )
        parts.append(
            f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{coords}'>"
            f"<title>{escape(name)}</title></polyline>"
            f"<text x='{WIDTH - PAD + 4}' y='{PAD + 14 * i}' fill='{colour}'>{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _open(title: str) -> str:
    return (
        f"<svg class='chart' role='img' aria-label='{escape(title)}' viewBox='0 0 {WIDTH + 60} "
        f"{HEIGHT}' width='{WIDTH + 60}' height='{HEIGHT}' xmlns='http://www.w3.org/2000/svg'>"
        f"<text x='{PAD}' y='18' class='t'>{escape(title)}</text>"
    )
