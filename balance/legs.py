"""Priced legs of usage that crossed tariff boundaries: one piece per price, consecutive pieces
under the same price merged. Shared by online charging (ocs.charging.usage) and the offline
xDR import (usage.xdr.rate), so a call costs the same whichever way it arrives."""

from __future__ import annotations

from collections.abc import Callable

from balance.records import UsedLeg
from tariffs.rating import Rating

RateAt = Callable[[int], Rating]
"""Rates the usage as if it happened at the given epoch second (RatingError if not)."""

SPLITS_MAX = 16  # usage spanning more tariff boundaries than this is priced in 16 pieces


def append_leg(legs: list[UsedLeg], rating: Rating, units: int) -> None:
    """Add ``units`` at ``rating``'s price, merged into the last leg when it has that price."""
    if units <= 0:
        return
    if legs and legs[-1].leg_key == rating.price_key:
        last = legs[-1]
        legs[-1] = UsedLeg(last.leg_key, last.units + units, last.price)
    else:
        legs.append(UsedLeg(rating.price_key, units, rating.price))


def time_legs(seconds: int, end: int, rate_at: RateAt) -> list[UsedLeg]:
    """``seconds`` of usage ending at ``end``, split at tariff boundaries."""
    legs: list[UsedLeg] = []
    start = end - seconds
    for _ in range(SPLITS_MAX - 1):
        if start >= end:
            return legs
        rating = rate_at(start)
        change = rating.next_change_at
        if change is None or change >= end or change <= start:
            append_leg(legs, rating, end - start)
            return legs
        append_leg(legs, rating, change - start)
        start = change
    if start < end:
        append_leg(legs, rate_at(start), end - start)
    return legs


# Tariff-Change-Usage (RFC 4006 §8.21) of a Used-Service-Unit, as the values the wire carries.
UNIT_BEFORE_TARIFF_CHANGE, UNIT_AFTER_TARIFF_CHANGE, UNIT_INDETERMINATE = 0, 1, 2


def last_change_in(rate_at: RateAt, since: int, until: int) -> int | None:
    """The last tariff boundary in (since, until], or None: where a grant made since ``since``
    announced its Tariff-Time-Change (grants name one boundary and end before the next)."""
    found = None
    at = since
    for _ in range(SPLITS_MAX):
        change = rate_at(at).next_change_at
        if change is None or change <= at or change > until:
            return found
        found, at = change, change
    return found


def marked_legs(
    reports: list[tuple[int, int | None]], now: int, window_s: int, rate_at: RateAt
) -> list[UsedLeg]:
    """Used units reported per side of a tariff change: (units, Tariff-Change-Usage) pairs of
    one MSCC, at least one marked. Units before the change (and indeterminate ones: the tariff
    the grant was made at) are priced just before the boundary, units after it at the boundary;
    unmarked units at the report's time. ``window_s``: how long ago the grant that announced
    the boundary can have been made (validity + grace). No boundary in that window: every unit
    at the report's time."""
    boundary = last_change_in(rate_at, now - window_s, now)
    before_at = now if boundary is None else boundary - 1
    after_at = now if boundary is None else boundary
    before = sum(
        u for u, mark in reports if mark in (UNIT_BEFORE_TARIFF_CHANGE, UNIT_INDETERMINATE)
    )
    after = sum(u for u, mark in reports if mark == UNIT_AFTER_TARIFF_CHANGE)
    unmarked = sum(u for u, mark in reports if mark is None)
    legs: list[UsedLeg] = []
    append_leg(legs, rate_at(before_at), before)
    append_leg(legs, rate_at(after_at), after)
    append_leg(legs, rate_at(now), unmarked)
    return legs
