"""The fees of an immediate plan change, by the tenant's proration rule. Pure integer arithmetic.

An immediate change starts the new plan's cycle at the change (``ocs.plan_change``): a monthly
plan's anniversary becomes the day of the change, a calendar-month plan's first cycle ends on
the next 1st. Days are calendar days in the tenant's time zone, and **the day of the change
belongs to the new plan**:

- ``none``: the new plan's fee in full; nothing back for what is left of the old plan's cycle.
- ``daily``: the new plan's fee for the days from the change (inclusive) to its first cycle end,
  ``ceil(fee × days / days of that cycle)`` (for an anniversary, weekly or daily plan that is the
  whole fee), minus a credit for the old plan's unused days (from the change, inclusive, to its
  next renewal), ``floor(fee × unused / days of the old cycle)``. The charge is rounded up and
  the credit down, each to a micro-unit, so a change never gives back more than was paid.

The net (charge − credit) may be negative: the difference is credited to the balance.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import msgspec

from tariffs.model import Cycle, Proration


class ChangeFees(msgspec.Struct, frozen=True):
    """Micro-units: ``charge`` for the new plan, ``credit`` for the old plan's unused days."""

    charge: int
    credit: int

    @property
    def net(self) -> int:
        return self.charge - self.credit


def _local_date(epoch_s: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(epoch_s, zone).date()


def _days(start_s: int, end_s: int, zone: ZoneInfo) -> int:
    return (_local_date(end_s, zone) - _local_date(start_s, zone)).days


def new_cycle_start(cycle: Cycle, at_s: int, timezone: str) -> int:
    """Where the cycle that contains ``at_s`` began for a plan that starts at ``at_s``: the
    month's 1st for ``calendar_month``, ``at_s`` itself otherwise."""
    if cycle != "calendar_month":
        return at_s
    local = datetime.fromtimestamp(at_s, ZoneInfo(timezone))
    return int(local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp())


def change_fees(
    rule: Proration,
    *,
    now_s: int,
    timezone: str,
    new_fee: int,
    new_cycle: tuple[int, int] | None,
    old_fee: int,
    old_cycle: tuple[int, int] | None,
) -> ChangeFees:
    """The fees of changing plans at ``now_s``. ``new_cycle`` is the (start, end) of the new
    plan's first cycle, ``old_cycle`` the current cycle of the old plan (None: the plan does not
    recur, so it has no fee to prorate)."""
    if rule == "none":
        return ChangeFees(charge=new_fee if new_cycle is not None else 0, credit=0)
    zone = ZoneInfo(timezone)
    charge = 0
    if new_cycle is not None and new_fee > 0:
        start, end = new_cycle
        whole = max(1, _days(start, end, zone))
        used = min(whole, max(0, _days(now_s, end, zone)))
        charge = -(-new_fee * used // whole)  # ceiling
    credit = 0
    if old_cycle is not None and old_fee > 0:
        start, end = old_cycle
        whole = max(1, _days(start, end, zone))
        unused = min(whole, max(0, _days(now_s, end, zone)))
        credit = old_fee * unused // whole  # floor
    return ChangeFees(charge=charge, credit=credit)
