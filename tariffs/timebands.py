"""Time bands: which band a moment falls in, in the tenant's local time, and when it next changes.

A band is a set of weekdays and a local ``from``–``to`` window (``to`` may be ``24:00``; a window
with ``from`` after ``to`` crosses midnight into the next day). One band may be the default,
filling every minute the others leave. The week is compiled into segments of minute-of-week, so
finding the band is a bisect; the next change is the next segment's local wall time converted
back to UTC by ``zoneinfo`` (so daylight-saving changes move it by an hour, as they should).

DST edge: a boundary inside a spring-forward gap (e.g. 02:30 on the night clocks jump from 02:00
to 03:00) takes effect at the instant ``zoneinfo`` gives that non-existent wall time (fold=0),
i.e. up to an hour late; boundaries should not be put inside a DST gap.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimeBand(msgspec.Struct, frozen=True):
    """A named band: on ``days`` (0 = Monday) from ``start_minute`` to ``end_minute`` local time."""

    name: str
    days: tuple[int, ...] = ()
    start_minute: int = 0
    end_minute: int = MINUTES_PER_DAY
    default: bool = False


def band_windows(band: TimeBand) -> list[tuple[int, int]]:
    """The band's half-open minute-of-week windows (a midnight-crossing window is split)."""
    windows: list[tuple[int, int]] = []
    for day in band.days:
        base = day * MINUTES_PER_DAY
        if band.start_minute < band.end_minute:
            windows.append((base + band.start_minute, base + band.end_minute))
        else:
            windows.append((base + band.start_minute, base + MINUTES_PER_DAY))
            next_base = ((day + 1) % 7) * MINUTES_PER_DAY
            if band.end_minute > 0:
                windows.append((next_base, next_base + band.end_minute))
    return windows


def describe_minute(minute_of_week: int) -> str:
    day, minute = divmod(minute_of_week, MINUTES_PER_DAY)
    return f"{WEEKDAYS[day % 7]} {minute // 60:02d}:{minute % 60:02d}"


def find_overlaps(bands: Iterable[TimeBand]) -> list[tuple[str, str, int]]:
    """Pairs of bands that claim the same minute: (band, other band, first shared minute)."""
    tagged = sorted(
        (start, end, band.name)
        for band in bands
        if not band.default
        for start, end in band_windows(band)
    )
    found: list[tuple[str, str, int]] = []
    seen: set[tuple[str, str]] = set()
    for index, (start, end, name) in enumerate(tagged):
        for other_start, _other_end, other in tagged[index + 1 :]:
            if other_start >= end:
                break
            pair = (name, other) if name <= other else (other, name)
            if pair not in seen:
                seen.add(pair)
                found.append((name, other, max(start, other_start)))
    return found


def first_gap(bands: Iterable[TimeBand]) -> int | None:
    """The first minute of the week no non-default band covers, or None if all are covered."""
    windows = sorted(w for band in bands if not band.default for w in band_windows(band))
    covered_to = 0
    for start, end in windows:
        if start > covered_to:
            return covered_to
        covered_to = max(covered_to, end)
    return covered_to if covered_to < MINUTES_PER_WEEK else None


class BandSchedule:
    """The compiled week of one tenant. Not shared across threads (a one-entry memo inside)."""

    __slots__ = ("_bands", "_starts", "_tz", "memo")

    def __init__(self, bands: Sequence[TimeBand], tz: ZoneInfo) -> None:
        default = next((b.name for b in bands if b.default), None)
        owner: list[str | None] = [default] * MINUTES_PER_WEEK
        for band in bands:
            if band.default:
                continue
            for start, end in band_windows(band):
                owner[start:end] = [band.name] * (end - start)
        starts: list[int] = []
        names: list[str] = []
        for minute, name in enumerate(owner):
            if name is None:
                raise ValueError(f"no time band covers {describe_minute(minute)}")
            if not names or names[-1] != name:
                starts.append(minute)
                names.append(name)
        self._starts = tuple(starts)
        self._bands = tuple(names)
        self._tz = tz
        # (valid_from, valid_until or -1 for never, band): the last answer, valid for every
        # moment in [valid_from, valid_until). Callers on a hot path may test it themselves.
        self.memo: tuple[int, int, str] = (1, 0, "")

    def band_at(self, now: int) -> tuple[str, int | None]:
        """The band at epoch second ``now`` and the epoch second it next changes (None: never)."""
        valid_from, valid_until, band = self.memo
        if valid_from <= now and (now < valid_until or valid_until == -1):
            return band, None if valid_until == -1 else valid_until
        band, change = self._compute(now)
        self.memo = (now, -1 if change is None else change, band)
        return band, change

    def _compute(self, now: int) -> tuple[str, int | None]:
        starts, names = self._starts, self._bands
        if len(names) == 1:
            return names[0], None
        local = datetime.fromtimestamp(now, self._tz)
        minute = local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute
        index = bisect_right(starts, minute) - 1
        band = names[index]
        if index + 1 < len(starts):
            next_minute = starts[index + 1]
        elif names[0] == band:  # the last segment runs on into next week's first one
            next_minute = MINUTES_PER_WEEK + starts[1]
        else:
            next_minute = MINUTES_PER_WEEK
        wall = local.replace(second=0, microsecond=0, tzinfo=None) + timedelta(
            minutes=next_minute - minute
        )
        change = int(wall.replace(tzinfo=self._tz).timestamp())
        if change <= now:  # only inside a DST fold; never report a change in the past
            change = now + 60 - now % 60
        return band, change
