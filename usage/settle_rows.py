"""The figures settlement keeps and passes around in the store layer: a period's row, a
reconciliation's result, the identity as JSON, and the SQL that names a period's records
(``settlement_records`` with the period's facts as constants)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import psycopg
from psycopg import sql

from settlement.errors import SettlementError
from settlement.periods import PeriodState, check_month, next_month
from settlement.reconcile import Identity
from tariffs.errors import Problem
from tariffs.model import Catalog


class PeriodRow(msgspec.Struct, frozen=True):
    id: int
    host_mno: str
    month: str
    state: PeriodState
    invoice_file: str
    detail_services: tuple[str, ...]
    cutoff: datetime | None
    identity: Identity | None


class ReconcileResult(msgspec.Struct, frozen=True):
    period: PeriodRow
    identity: Identity
    records: int
    rate_checks: int
    match_rounds: int
    summary: list[tuple[str, str, str, bool, int, int]]  # owner, level, kind, over, count, Σ
    steps: dict[str, float] = {}  # seconds per step (the benchmark reports them)


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in the MNO's time zone."""
    zone = ZoneInfo(timezone)
    nxt = next_month(check_month(month))
    start = datetime(int(month[:4]), int(month[5:7]), 1, tzinfo=zone)
    end = datetime(int(nxt[:4]), int(nxt[5:7]), 1, tzinfo=zone)
    return start, end


def identity_json(identity: Identity) -> str:
    return json.dumps(
        {
            "invoice_total": identity.invoice_total,
            "allocated": identity.allocated,
            "unallocated": identity.unallocated,
            "disputed": identity.disputed,
            "tolerated": identity.tolerated,
            "balanced": identity.balanced,
        },
        sort_keys=True,
    )


def identity_of(value: Any) -> Identity | None:
    if not value:
        return None
    data = value if isinstance(value, dict) else json.loads(value)
    return Identity(
        int(data["invoice_total"]),
        {str(k): int(v) for k, v in data["allocated"].items()},
        int(data["unallocated"]),
        int(data["disputed"]),
        int(data["tolerated"]),
    )


def records_call(facts: tuple[Any, ...] | list[Any]) -> sql.Composed:
    """``settlement_records(...)`` with a period's facts (a PERIOD_FACTS row without its id,
    state) as literal constants: the planner inlines the function and prunes partitions."""
    (_pid, mno, _state, tz, start, end, cutoff, prev_cutoff, home, default,
     plmns, plmn_zones, mccs, mcc_zones) = facts  # fmt: skip
    if cutoff is None:
        raise SettlementError(f"period {mno}: not reconciled yet (no cutoff)")
    values = [
        sql.Literal(mno), sql.Literal(tz), sql.Literal(start), sql.Literal(end),
        sql.Literal(cutoff), sql.SQL("NULL::timestamptz") if prev_cutoff is None
        else sql.Literal(prev_cutoff), sql.Literal(home), sql.Literal(default),
        sql.SQL("{}::text[]").format(sql.Literal(list(plmns))),
        sql.SQL("{}::text[]").format(sql.Literal(list(plmn_zones))),
        sql.SQL("{}::text[]").format(sql.Literal(list(mccs))),
        sql.SQL("{}::text[]").format(sql.Literal(list(mcc_zones))),
    ]  # fmt: skip
    return sql.SQL("settlement_records({})").format(sql.SQL(", ").join(values))


def with_records(template: str, records: sql.Composable) -> sql.Composed:
    return sql.SQL(template).format(records=records)  # type: ignore[arg-type]


def imsi_owners(tenants: Catalog) -> dict[str, list[Any]]:
    """The catalog's IMSI ranges and entries as SQL arrays (owner of an MNO-only record)."""
    out: dict[str, list[Any]] = {
        "range_first": [],
        "range_last": [],
        "range_digits": [],
        "range_tenants": [],
        "entry_imsis": [],
        "entry_tenants": [],
    }
    for tenant in tenants.tenants:
        for rng in tenant.ranges:
            out["range_first"].append(int(rng.imsi_first))
            out["range_last"].append(int(rng.imsi_last))
            out["range_digits"].append(len(rng.imsi_first))
            out["range_tenants"].append(tenant.id)
        for entry in tenant.entries:
            if entry.imsi:
                out["entry_imsis"].append(entry.imsi)
                out["entry_tenants"].append(tenant.id)
    return out


class Clock:
    """Seconds per step of a reconciliation, for the benchmark and the operator's log."""

    def __init__(self, steps: dict[str, float]) -> None:
        self.steps = steps
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.steps[name] = round(self.steps.get(name, 0.0) + now - self.last, 3)
        self.last = now


def copy_problem(file: str, exc: psycopg.Error) -> Problem:
    """COPY's own error (e.g. a row with too many fields) at its line."""
    context = getattr(exc.diag, "context", "") or ""
    found = re.search(r"line (\d+)", context)
    line = int(found.group(1)) if found else 0
    message = (exc.diag.message_primary or str(exc)).strip()
    return Problem(file, line, "(row)", message)
