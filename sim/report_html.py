"""The report as one self-contained HTML page: summary, plots, scenario, per-tenant figures and
the verification, as tables; money in the tenant currency, units in human form.

Everything is in the page (inline SVG and CSS, no script, nothing fetched), so it can be mailed
or archived as a single file.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from sim.plots import Phases, PlotsUnavailable, latency_svg, throughput_svg
from tariffs.display import format_money, format_units

# The unit of what the simulator reports per service (its ``used`` and the records' units).
SERVICE_UNITS = {"data": "bytes", "voice": "seconds", "sip": "seconds", "sms": "events"}
CSS = (
    "body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}"
    "table{border-collapse:collapse;margin:8px 0 20px}"
    "th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}"
    "figure{margin:8px 0 20px}"
)


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(
    header: Iterable[str] | None, rows: Iterable[Iterable[object]], numeric: set[int]
) -> str:
    head = "" if header is None else "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='n'>{_e(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _units(used: Mapping[str, int]) -> str:
    return ", ".join(
        f"{service} {format_units(units, SERVICE_UNITS.get(service, 'events'))}"
        for service, units in sorted(used.items())
    )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            rows.append((name, ", ".join(str(v) for v in value) or "-"))
        else:
            rows.append((name, str(value)))
    return rows


def _ms(us: int) -> str:
    return f"{us / 1000:,.2f} ms"


def _summary(report: dict[str, Any]) -> str:
    throughput, latency, cpu = report["throughput"], report["latency_us"], report["cpu"]
    started = datetime.fromtimestamp(report["started_at"], UTC).isoformat(timespec="seconds")
    target = throughput["target_ccr_per_s"]
    rows = [
        ("run", report["run_id"]),
        ("seed", f"{report['seed']} (replay: the same scenario with --seed {report['seed']})"),
        ("started", started),
        ("elapsed", f"{report['elapsed_s']:.1f} s ({report['arrivals_s']:.1f} s arrivals)"),
        (
            "answers/s",
            f"{throughput['steady_answers_per_s']:,.1f} steady, "
            f"{throughput['answers_per_s']:,.1f} overall"
            + (f"; target {target:,.1f} CCR/s" if target else ""),
        ),
        ("answers", f"{throughput['answers']:,} of {throughput['ccr_sent']:,} CCRs sent"),
        (
            "latency",
            "  ".join(f"{k} {_ms(v)}" for k, v in latency.items() if k.startswith("p"))
            + f"  max {_ms(latency['max'])}",
        ),
        ("Result-Codes", ", ".join(f"{k}: {v:,}" for k, v in report["result_codes"].items())),
        ("errors", ", ".join(f"{k}: {v:,}" for k, v in report["errors"].items()) or "none"),
        (
            "simulator CPU",
            f"{cpu['workers_cpu_s']:.1f} s workers + {cpu['parent_cpu_s']:.1f} s parent = "
            f"{cpu['cores_used']:.2f} of {cpu['machine_cores']} cores",
        ),
    ]
    return _table(None, rows, set())


def _plots(report: dict[str, Any]) -> str:
    scenario = report["scenario"]
    phases = Phases(
        ramp_s=float(scenario["load"]["ramp_s"]),
        arrivals_s=float(report["arrivals_s"]),
        elapsed_s=float(report["elapsed_s"]),
    )
    rows = report["per_second"]
    try:
        throughput = throughput_svg(rows, phases, report["throughput"]["target_ccr_per_s"], "CCR")
        latency = latency_svg(rows, phases)
    except PlotsUnavailable as exc:
        return f"<p><i>{_e(exc)}</i></p>"
    return f"<figure>{throughput}</figure><figure>{latency}</figure>"


def _tenants(report: dict[str, Any]) -> str:
    rows = [
        (
            name,
            f"{totals['sessions']:,}",
            f"{totals['ccrs']:,}",
            _units(totals["used"]),
            _units(totals["uncertain"]) or "-",
        )
        for name, totals in report["tenants"].items()
    ]
    header = ("tenant", "sessions", "requests", "used", "unanswered (uncertain)")
    return _table(header, rows, {1, 2})


def _verification(report: dict[str, Any]) -> str:
    verification = report["verification"]
    if verification is None:
        return "<p>Skipped (no Redis to read the ledger from).</p>"
    currencies = report.get("currencies", {})
    rows = []
    for check in verification["tenants"]:
        currency = currencies.get(check["tenant"], "")
        rows.append(
            (
                check["tenant"],
                _units(check["sim_used"]),
                _units(check["record_units"]),
                format_money(check["record_retail"], currency),
                format_money(check["balance_decrease"], currency),
                f"{check['charge_records']:,}",
                f"{check['duplicate_charges']:,}",
                "PASS" if check["passed"] else "FAIL: " + "; ".join(check["problems"]),
            )
        )
    header = ("tenant", "units reported", "units in records", "retail charged",
              "balances fell by", "charge records", "duplicate charges", "result")  # fmt: skip
    problems = "".join(f"<li class='fail'>{_e(p)}</li>" for p in verification["problems"])
    return _table(header, rows, {3, 4, 5, 6}) + (f"<ul>{problems}</ul>" if problems else "")


def render_html(report: dict[str, Any]) -> str:
    verification = report["verification"]
    if verification is None:
        verdict = "<span>not run</span>"
    elif verification["passed"]:
        verdict = "<span class='pass'>PASS</span>"
    else:
        verdict = "<span class='fail'>FAIL</span>"
    scenario_rows = _flatten(msgspec.to_builtins(report["scenario"]))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>ocs sim {_e(report['run_id'])}</title><style>{CSS}</style></head><body>"
        f"<h1>ocs sim run {_e(report['run_id'])}</h1>"
        f"<p>Verification: {verdict} &middot; seed {_e(report['seed'])}</p>"
        f"<h2>Summary</h2>{_summary(report)}"
        f"<h2>Over time</h2>{_plots(report)}"
        f"<h2>Per tenant</h2>{_tenants(report)}"
        f"<h2>Verification</h2>{_verification(report)}"
        f"<h2>Scenario</h2>{_table(('setting', 'value'), scenario_rows, set())}"
        "</body></html>"
    )
