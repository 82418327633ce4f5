"""The simulator's HTML report: real plots as static SVG (time ticks, grid, log latency, target
line, shaded phases), tables with money in currency and data in human units, the seed used."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

import msgspec
import pytest

from sim.plots import Phases, is_self_contained, target_curve
from sim.report import build_report, render_html
from sim.runner import SEED_MAX, RunResult, with_seed
from sim.scenario import Load, Scenario
from sim.stats import RunStats, TenantTotals
from sim.verify import TenantCheck, Verification

GIB = 1 << 30


def synthetic_run(seed: int = 0) -> RunResult:
    """30 seconds: a 5 s ramp, steady until 25 s, then drain; one slow second at 12 s."""
    stats = RunStats()
    for second in range(30):
        for i in range(50 + (second * 10 if second < 5 else 50)):
            slow = 20_000 if second == 12 and i < 5 else 0
            stats.answered(second, 800 + (i % 7) * 300 + slow, 2001)
    totals = TenantTotals()
    totals.sessions, totals.ccrs = 100, 1200
    totals.used = {"data": 3 * GIB, "voice": 5400, "sms": 12}
    stats.tenants["acme"] = totals
    scenario = with_seed(Scenario(load=Load(rate=100, duration_s=25, ramp_s=5), seed=seed))
    return RunResult(
        run_id="r1",
        scenario=scenario,
        stats=stats,
        started_at=1_767_225_600.0,
        arrivals_s=25.0,
        elapsed_s=30.0,
        wall_cpu_s=0.1,
        workers=1,
    )


def verification(passed: bool = True) -> Verification:
    check = TenantCheck(
        "acme", {"data": 3 * GIB}, {}, {"data": 3 * GIB}, 12_340_000, 12_340_000, 900, 0, 0,
        [] if passed else ["retail 12.34 != balances 12.00"],
    )  # fmt: skip
    return Verification(tenants=[check], problems=[])


def test_the_seed_actually_used_is_recorded() -> None:
    drawn = with_seed(Scenario())
    assert 1 <= drawn.seed <= SEED_MAX
    assert with_seed(Scenario(seed=42)).seed == 42
    report = build_report(synthetic_run(seed=7), None)
    assert report["seed"] == 7 and report["scenario"]["seed"] == 7
    report = build_report(synthetic_run(), None)
    assert report["seed"] == report["scenario"]["seed"] != 0


def test_phases_and_the_target_line() -> None:
    phases = Phases(ramp_s=5, arrivals_s=25, elapsed_s=30)
    assert phases.spans() == [("ramp", 0, 5), ("steady", 5, 25), ("drain", 25, 30)]
    assert target_curve(100, phases) == [(0.0, 10.0), (5, 100), (25, 100)]
    assert target_curve(None, phases) == []
    no_ramp = Phases(ramp_s=0, arrivals_s=10, elapsed_s=10)
    assert no_ramp.spans() == [("steady", 0, 10)]


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg.*?</svg>", page, flags=re.S)]


def texts(svg: ET.Element) -> list[str]:
    return ["".join(e.itertext()).strip() for e in svg.iter() if e.tag.endswith("text")]


def test_page_has_real_plots_and_tables() -> None:
    page = render_html(build_report(synthetic_run(seed=99), verification(), {"acme": "EUR"}))
    throughput, latency = svgs(page)  # well-formed XML, exactly two plots
    labels = texts(throughput)
    assert {"0:00", "0:03", "0:15", "0:30"} <= set(labels)  # m:ss time ticks
    assert {"ramp", "steady", "drain", "answers/s", "target CCR/s"} <= set(labels)
    assert "time since start (m:ss)" in labels and "Throughput" in labels
    latency_labels = texts(latency)
    assert {"p50", "p99", "milliseconds", "Latency per second (log scale)"} <= set(latency_labels)
    assert {"2", "10", "20"} <= set(latency_labels)  # log decades labelled plainly
    # Grid lines and shaded phases are drawn (matplotlib gives each artist an id).
    ids = {e.get("id", "") for e in throughput.iter()}
    assert any(i.startswith("xtick") for i in ids) and any(i.startswith("patch") for i in ids)
    assert "seed 99" in page and "replay: the same scenario with --seed 99" in page
    assert "<td>data 3.00 GiB, sms 12 events, voice 90 min</td>" in page
    assert "<td class='n'>12.34 EUR</td>" in page
    assert "<span class='pass'>PASS</span>" in page
    assert "<td>load.ramp_s</td><td>5</td>" in page  # the scenario as a table
    assert "{" not in page.split("</style>", 1)[1].split("<svg", 1)[0]  # no JSON dumps


def test_page_is_self_contained_and_stable() -> None:
    report = build_report(synthetic_run(seed=5), verification(passed=False), {"acme": "EUR"})
    page = render_html(report)
    assert is_self_contained(page)
    assert "<script" not in page and "cdn" not in page.lower()
    assert "<span class='fail'>FAIL</span>" in page and "retail 12.34 != balances 12.00" in page
    assert render_html(report) == page  # no timestamps or random ids in the SVG


def test_without_matplotlib_the_page_says_how_to_get_the_plots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    page = render_html(build_report(synthetic_run(seed=1), None))
    assert "pip install &#x27;mvna-ocs[report]&#x27;" in page and "<svg" not in page
    assert "<td>r1</td>" in page  # the tables are still there


def test_report_json_round_trips() -> None:
    report = build_report(synthetic_run(seed=3), verification(), {"acme": "EUR"})
    assert msgspec.json.decode(msgspec.json.encode(report))["currencies"] == {"acme": "EUR"}
    assert time.gmtime(report["started_at"]).tm_year == 2026
