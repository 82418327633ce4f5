"""How ``ocs account`` shows ledger figures to a person: money in the tenant currency, data in
KiB/MiB/GiB, time in minutes, instants as ISO 8601 in the tenant's time zone (the formatting
itself is ``tariffs.display``, shared with the simulator's report).

The JSON output keeps the raw integers beside the formatted text so scripts never parse a human
string.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from balance.records import Account, LedgerRecord
from tariffs.display import (
    format_amount,
    format_instant,
    format_money,
    format_units,
    zone,
)


def console(file: Any = None) -> Console:
    """Tables to stdout; piped, rich would wrap at 80 columns, so allow wide lines there."""
    out = Console(file=file, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out = Console(file=file, highlight=False, soft_wrap=False, width=200)
    return out


def _table(title: str | None, *columns: str, right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", no_wrap=True)
    return table


def account_tables(data: dict[str, Any]) -> list[Table]:
    """The account (``_account_json`` of ``ocs account``) as rich tables."""
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    for label, key in (
        ("tenant", "tenant"),
        ("subscriber", "subscriber"),
        ("IMSI", "imsi"),
        ("state", "state"),
        ("balance", "balance_text"),
        ("held", "held_text"),
        ("available", "available_text"),
        ("credit limit", "credit_limit_text"),
        ("time zone", "timezone"),
    ):
        if data.get(key):
            summary.add_row(label, str(data[key]))
    tables = [summary]
    if data["buckets"]:
        buckets = _table(
            "buckets",
            "bucket",
            "remaining",
            "held",
            "priority",
            "expires",
            "status",
            right=("remaining", "held", "priority"),
        )
        for b in data["buckets"]:
            buckets.add_row(
                b["kind"],
                b["remaining_text"],
                b["held_text"],
                str(b["priority"]),
                b["expires"],
                "live" if b["live"] else "expired",
            )
        tables.append(buckets)
    if data["reservations"]:
        held = _table(
            "open reservations",
            "session",
            "rating group",
            "granted",
            "valid until",
            "held from",
            right=("rating group", "granted"),
        )
        for r in data["reservations"]:
            held.add_row(
                r["session_id"],
                str(r["rating_group"]),
                r["granted_text"],
                r["valid_until"],
                ", ".join(f"{h['bucket_id']} {h['amount_text']}" for h in r["held"]),
            )
        tables.append(held)
    return tables


def history_table(rows: list[dict[str, Any]]) -> Table:
    table = _table(
        None,
        "time",
        "kind",
        "service",
        "units",
        "money",
        "balance after",
        "detail",
        right=("units", "money", "balance after"),
    )
    for row in rows:
        table.add_row(
            row["time"],
            row["kind"],
            row["service"],
            row["units_text"],
            row["money_text"],
            row["balance_after_text"],
            row["detail"],
        )
    return table


def list_table(rows: list[dict[str, Any]]) -> Table:
    table = _table(
        None,
        "tenant",
        "subscriber",
        "state",
        "balance",
        "buckets",
        "open sessions",
        right=("balance", "buckets", "open sessions"),
    )
    for row in rows:
        table.add_row(
            row["tenant"],
            row["subscriber"],
            row["state"],
            row["balance_text"],
            str(row["buckets"]),
            str(row["sessions"]),
        )
    return table


class Context:
    """What the catalog says about the tenant, for display: currency, time zone, units."""

    def __init__(
        self,
        currency: str = "",
        timezone: str | None = None,
        units: dict[str, str] | None = None,
        rating_group_units: dict[int, str] | None = None,
    ) -> None:
        self.currency = currency
        self.timezone = timezone or "UTC"
        self.tz = zone(timezone)
        self.units = units or {}  # service name → byte / second / event
        self.rating_group_units = rating_group_units or {}  # Rating-Group → its service's unit

    def granted(self, rating_group: int, units: int) -> str:
        unit = self.rating_group_units.get(rating_group)
        return format_units(units, unit) if unit else str(units)

    def money(self, micro: int) -> str:
        return format_money(micro, self.currency)

    def instant(self, epoch_s: float) -> str:
        return format_instant(epoch_s, self.tz)


def account_json(
    tenant: str,
    subscriber: str,
    account: Account,
    now_s: float,
    ctx: Context,
    imsi: str | None = None,
) -> dict[str, Any]:
    """The account with raw integers (``*_micro``, units) and their human forms (``*_text``)."""
    bucket_units = {b.id: b.unit for b in account.buckets}
    return {
        "tenant": tenant,
        "subscriber": subscriber,
        "imsi": imsi,
        "currency": ctx.currency,
        "timezone": ctx.timezone,
        "state": account.state.value,
        "balance": format_amount(account.balance),
        "balance_micro": account.balance,
        "balance_text": ctx.money(account.balance),
        "held": format_amount(account.held_money),
        "held_micro": account.held_money,
        "held_text": ctx.money(account.held_money),
        "credit_limit": format_amount(account.credit_limit),
        "credit_limit_micro": account.credit_limit,
        "credit_limit_text": ctx.money(account.credit_limit),
        "buckets": [
            {
                "id": b.id,
                "kind": b.kind,
                "unit": b.unit,
                "remaining": b.remaining,
                "remaining_text": format_units(b.remaining, b.unit, ctx.currency),
                "held": b.held,
                "held_text": format_units(b.held, b.unit, ctx.currency),
                "priority": b.priority,
                "expires_at_s": b.expires_at_s,
                "expires": ctx.instant(b.expires_at_s),
                "live": b.live(now_s),
            }
            for b in account.buckets
        ],
        "reservations": [
            {
                "session_id": s.session_id,
                "rating_group": g.rating_group,
                "granted_units": g.granted_units,
                "granted_text": ctx.granted(g.rating_group, g.granted_units),
                "valid_until_s": g.valid_until_s,
                "valid_until": ctx.instant(g.valid_until_s),
                "held": [
                    {
                        "bucket_id": h.bucket_id or "balance",
                        "amount": h.amount,
                        "amount_text": ctx.money(h.amount)
                        if h.is_money
                        else format_units(h.amount, bucket_units.get(h.bucket_id, "events")),
                    }
                    for h in g.holds
                ],
            }
            for s in account.sessions
            for g in s.rating_groups
            if g.holds
        ],
    }


def _detail(record: LedgerRecord) -> str:
    parts = []
    if record.reason and record.kind != "bucket":
        parts.append(record.reason)
    if record.session_id:
        parts.append(f"session {record.session_id}")
    elif record.op_id:
        parts.append(f"op {record.op_id}")
    if record.rating_group >= 0 and record.session_id:
        parts.append(f"rg {record.rating_group}")
    return "; ".join(parts)


def history_json(entry_id: str, record: LedgerRecord, ctx: Context) -> dict[str, Any]:
    unit = ctx.units.get(record.service, "")
    if record.kind == "bucket" and not unit:
        unit = record.reason  # a bucket record's reason is the bucket's unit (bytes, seconds)
    return {
        "entry_id": entry_id,
        "at_s": record.at_s,
        "time": ctx.instant(record.at_s),
        "kind": record.kind,
        "service": record.service,
        "rating_group": record.rating_group,
        "units": record.units,
        "units_text": format_units(record.units, unit)
        if record.units and unit
        else (str(record.units) if record.units else ""),
        "money_delta_micro": record.money_delta,
        "money_text": ctx.money(record.money_delta) if record.money_delta else "",
        "retail_micro": record.retail,
        "wholesale_micro": record.wholesale,
        "balance_after_micro": record.balance_after,
        "balance_after_text": ctx.money(record.balance_after),
        "session_id": record.session_id,
        "op_id": record.op_id,
        "reason": record.reason,
        "detail": _detail(record),
    }


def list_json(tenant: str, subscriber: str, account: Account, ctx: Context) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "subscriber": subscriber,
        "state": account.state.value,
        "balance_micro": account.balance,
        "balance_text": ctx.money(account.balance),
        "buckets": len(account.buckets),
        "sessions": len(account.sessions),
    }
