"""Retention: which month partitions, or which tenants' rows in them, are past their time.

Pure (no database): the prune command feeds it the partitions, each tenant's retention and
``now``, and executes the plan it returns (usage/prune.py).

Retention N months keeps the current month and the N whole months before it: with N = 12 on
2026-12-06 everything from 2025-12-01 on stays; a month ending on or before that cut-off is
expired. All tenants share one table (row-level security), so a partition can only be dropped
when it is expired for every tenant; before that, the tenants it is expired for have their rows
deleted from it, partition by partition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum

import msgspec


class Partition(msgspec.Struct, frozen=True):
    name: str
    lo: datetime  # inclusive
    hi: datetime  # exclusive


class Mode(Enum):
    DROP = "drop"  # expired for every tenant: drop the partition
    DELETE_ONLY = "delete_only"  # delete the rows of ``tenants``
    DELETE_EXCEPT = "delete_except"  # delete every row but those of ``tenants``


class PruneAction(msgspec.Struct, frozen=True):
    partition: Partition
    mode: Mode
    tenants: tuple[str, ...] = ()

    def describe(self) -> str:
        name, month = self.partition.name, f"{self.partition.lo:%Y-%m}"
        if self.mode is Mode.DROP:
            return f"drop {name} ({month}): past retention for every tenant"
        if self.mode is Mode.DELETE_ONLY:
            return f"delete from {name} ({month}) the rows of {', '.join(self.tenants)}"
        kept = ", ".join(self.tenants) or "nobody"
        return f"delete from {name} ({month}) every tenant's rows but those of {kept}"


def cutoff(now: datetime, months: int) -> datetime:
    """The first instant kept under ``months`` of retention: the first day (UTC) of the month
    ``months`` before ``now``'s month."""
    if months < 1:
        raise ValueError(f"retention must be at least 1 month, got {months}")
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    utc = now.astimezone(UTC)
    index = utc.year * 12 + (utc.month - 1) - months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def plan_prune(
    partitions: Sequence[Partition],
    retention: Mapping[str, int],
    default_months: int,
    now: datetime,
) -> list[PruneAction]:
    """The actions that bring the store within retention, oldest partition first.

    ``retention``: the tenants with a retention of their own (months); every other tenant has
    ``default_months``.
    """
    default_cut = cutoff(now, default_months)
    cuts = {tenant: cutoff(now, months) for tenant, months in retention.items()}
    # The longest retention decides when a partition is nobody's any more.
    last_cut = min([default_cut, *cuts.values()])
    actions: list[PruneAction] = []
    for part in sorted(partitions, key=lambda p: p.lo):
        if part.hi <= last_cut:
            actions.append(PruneAction(part, Mode.DROP))
            continue
        expired = sorted(t for t, cut in cuts.items() if part.hi <= cut)
        kept = sorted(t for t, cut in cuts.items() if part.hi > cut)
        if part.hi <= default_cut:
            # Expired for every tenant on the default: keep only the longer-retention ones.
            actions.append(PruneAction(part, Mode.DELETE_EXCEPT, tuple(kept)))
        elif expired:
            actions.append(PruneAction(part, Mode.DELETE_ONLY, tuple(expired)))
    return actions
