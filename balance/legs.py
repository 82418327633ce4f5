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
