"""Renewal cycles: when a recurring product's next cycle starts, in the tenant's time zone.

Pure functions of (cycle, anchor, instant). ``monthly`` renews on the subscriber's anniversary
day (the day of the month it joined; clamped to the month's last day, so a 31st renews on
28/29 February and on 31 March again); ``calendar_month`` on the 1st at 00:00; ``weekly`` and
``daily`` every 7 days / every day at the anchor's local time of day.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tariffs.model import Cycle


def _local(epoch_s: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(epoch_s, zone)


def _month_start(year: int, month: int, day: int, like: datetime) -> datetime:
    day = min(day, calendar.monthrange(year, month)[1])
    return like.replace(year=year, month=month, day=day)


def next_start(cycle: Cycle, anchor_s: int, after_s: int, timezone: str) -> int:
    """The first cycle start strictly after ``after_s`` of a product that started at
    ``anchor_s`` (a renewal that ran late schedules the next one after *now*: a missed cycle
    renews once, never once per missed cycle)."""
    zone = ZoneInfo(timezone)
    anchor = _local(anchor_s, zone)
    after = _local(max(after_s, anchor_s), zone)
    if cycle in ("daily", "weekly"):
        step = 1 if cycle == "daily" else 7
        days = (after.date() - anchor.date()).days // step * step
        candidate = anchor + timedelta(days=days)
        while int(candidate.timestamp()) <= after_s:
            candidate = (anchor + timedelta(days=days + step)).replace(tzinfo=zone)
            days += step
        return int(candidate.timestamp())
    if cycle == "calendar_month":
        anchor = anchor.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = after.year, after.month
    candidate = _month_start(year, month, anchor.day, anchor)
    while int(candidate.timestamp()) <= after_s or candidate <= anchor:
        month += 1
        if month > 12:
            year, month = year + 1, 1
        candidate = _month_start(year, month, anchor.day, anchor)
    return int(candidate.timestamp())
