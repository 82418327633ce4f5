"""Grant sizing: how many units to offer before the ledger caps the grant by what the account's
buckets and money cover (``tariffs.price.affordable_units``) and sets the final-unit flag.

Rule: the requested units (or the service's default grant when the request names none, or
asks for 0), at most the service's max grant, rounded *up* to the rate's increments (a 30 s
request on a 60 s first increment is offered 60 s: those seconds are paid anyway) unless that
passes the max grant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tariffs.price import Price, rounded_units

if TYPE_CHECKING:  # tariffs.rating sizes each rating's default grant with size_grant
    from tariffs.rating import Rating


def size_grant(
    requested_units: int | None, default_units: int, max_units: int, price: Price | None = None
) -> int:
    """Units to offer for one request, before the ledger's cap (see module docstring)."""
    units = (
        requested_units if requested_units is not None and requested_units > 0 else default_units
    )
    units = min(units, max_units)
    if price is not None:
        rounded = rounded_units(price, units)
        if rounded <= max_units:
            units = rounded
    return max(units, 0)


def size_grant_for(rating: Rating, requested_units: int | None) -> int:
    """``size_grant`` with the service's default and max grant and the rated price."""
    if requested_units is None or requested_units <= 0:
        return rating.default_grant  # the same size_grant, made once with the rating
    return size_grant(
        requested_units, rating.default_grant_units, rating.max_grant_units, rating.price
    )


def is_final_grant(granted_units: int, coverable_units: int) -> bool:
    """True when the grant uses up everything the buckets and money cover (``-1``: unbounded):
    the answer then carries Final-Unit-Indication with the tenant's action."""
    return coverable_units != -1 and granted_units >= coverable_units
