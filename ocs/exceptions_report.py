"""Which stored records are exceptions (seed 001's leakage), and why: pure, over export rows.

- ``leakage``: usage reported but not covered by credit (``leakage_units`` / ``leakage_money``);
- ``wholesale_above_retail``: the record cost the MVNO more than it was sold for;
- ``tcc_release``: a reservation released by Tcc supervision (``kind`` expiry);
- ``auto_ended``: a SIP call ended by the auto-end sweep (``reason`` auto-end).

Rating failures (5031) have no record: nothing was charged; they are counted on ``ocs serve``'s
/metrics (``ocs_cc_rating_failures_total``), not listed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from usage.sql import EXPORT_COLUMNS

AUTO_END_REASON = "auto-end"  # ocs.sip_charging.accounting.AUTO_END_CAUSE
REASONS = ("leakage", "wholesale_above_retail", "tcc_release", "auto_ended")
_INDEX = {name: i for i, name in enumerate(EXPORT_COLUMNS)}


def reasons_of(row: Sequence[Any]) -> list[str]:
    def get(name: str) -> Any:
        return row[_INDEX[name]]

    out = []
    if (get("leakage_money") or 0) > 0 or (get("leakage_units") or 0) > 0:
        out.append("leakage")
    if (get("wholesale") or 0) > (get("retail") or 0):
        out.append("wholesale_above_retail")
    if get("kind") == "expiry":
        out.append("tcc_release")
    if AUTO_END_REASON in (get("reason") or ""):
        out.append("auto_ended")
    return out


def exceptions(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """The exception rows, each as a dict of the columns an operator reads, with its reasons."""
    out = []
    for row in rows:
        why = reasons_of(row)
        if not why:
            continue
        item = {name: row[_INDEX[name]] for name in (
            "ended_at", "vshard", "entry_id", "kind", "subscriber", "service", "session_id",
            "units", "retail", "wholesale", "leakage_units", "leakage_money", "reason",
        )}  # fmt: skip
        item["ended_at"] = item["ended_at"].isoformat() if item["ended_at"] else None
        item["why"] = why
        out.append(item)
    return out


def summary(items: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(REASONS, 0)
    counts["leakage_money"] = 0
    for item in items:
        for why in item["why"]:
            counts[why] += 1
        counts["leakage_money"] += int(item["leakage_money"] or 0)
    return counts
