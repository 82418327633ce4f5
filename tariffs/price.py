"""The integer price of usage: the contract between rating (which builds a ``Price``) and the
ledger (whose Lua scripts apply it and must agree with these functions exactly).

Money is in micro-units of the tenant currency. A rate is a reduced fraction
``num / den`` micro-units per unit of usage (byte, second, event), so "5.00 EUR per MiB" is
``5_000_000 / 1_048_576`` = ``78125 / 16384`` and every result is exact.

Redis Lua computes in IEEE doubles (exact integers up to 2**53), so each formula here is written
the way the Lua computes it: no intermediate product exceeds ``num * den`` or the operands
themselves. ``Price.check()`` refuses fractions where ``num * den`` would not fit.

Rounding rules (stated here once, tested in tests/tariffs/test_price.py):
- usage rounds *up* to the first increment, then to whole increments after it;
- retail money rounds *up* to the micro-unit; wholesale cost rounds *up* on the raw units
  (the host operator's own increments are not modelled);
- the connect fee and minimum charge apply once, when usage is above zero;
- a session is charged *cumulatively*: each report pays ``retail(total_after) -
  retail(total_before)``, so splitting usage into several reports costs exactly what one report
  of the sum costs (bound: 0 micro-units) while one Price applies.
"""

from __future__ import annotations

from math import gcd

import msgspec

LUA_EXACT_MAX = 2**53


class PriceError(ValueError):
    """A price that cannot be applied exactly (negative, zero increment, too fine a fraction)."""


class Price(msgspec.Struct, frozen=True, cache_hash=True):
    """What usage of one service leg costs, retail and wholesale, in integers.

    ``cache_hash``: the ledger's CCR body tells prices apart by value (a dict keyed by price,
    several lookups per CCR) and a catalog's prices live as long as it does: hashed once."""

    price_num: int
    price_den: int
    cost_num: int
    cost_den: int
    first_units: int = 0
    step_units: int = 1
    connect_fee: int = 0
    min_charge: int = 0

    def check(self) -> None:
        if self.price_den <= 0 or self.cost_den <= 0:
            raise PriceError("price and cost denominators must be positive")
        if min(self.price_num, self.cost_num, self.connect_fee, self.min_charge) < 0:
            raise PriceError("prices, costs and fees must not be negative")
        if self.first_units < 0 or self.step_units <= 0:
            raise PriceError("first increment must be >= 0 and increment > 0")
        if self.price_num * self.price_den >= LUA_EXACT_MAX:
            raise PriceError("retail rate fraction too fine to apply exactly (num*den >= 2**53)")
        if self.cost_num * self.cost_den >= LUA_EXACT_MAX:
            raise PriceError("wholesale rate fraction too fine to apply exactly (num*den >= 2**53)")


def rate_fraction(amount_micro: int, per_units: int) -> tuple[int, int]:
    """``amount_micro`` per ``per_units`` units as a reduced fraction (num, den)."""
    if per_units <= 0:
        raise PriceError("a rate must be per a positive number of units")
    if amount_micro == 0:
        return 0, 1
    divisor = gcd(amount_micro, per_units)
    return amount_micro // divisor, per_units // divisor


def rounded_units(price: Price, units: int) -> int:
    """Usage after increments: 0 stays 0; up to the first increment; then whole increments."""
    if units <= 0:
        return 0
    if units <= price.first_units:
        return price.first_units
    over = units - price.first_units
    steps = -(-over // price.step_units)
    return price.first_units + steps * price.step_units


def _ceil_mul_div(units: int, num: int, den: int) -> int:
    """ceil(units * num / den) without a product above max(units, num * den)."""
    whole, rest = divmod(units, den)
    return whole * num + -(-(rest * num) // den)


def retail(price: Price, units: int) -> int:
    """Retail micro-units for ``units`` of usage in one session leg (0 for no usage)."""
    if units <= 0:
        return 0
    money = _ceil_mul_div(rounded_units(price, units), price.price_num, price.price_den)
    return price.connect_fee + max(price.min_charge, money)


def wholesale(price: Price, units: int) -> int:
    """Wholesale micro-units the aggregator owes the host operator for ``units``."""
    if units <= 0:
        return 0
    return _ceil_mul_div(units, price.cost_num, price.cost_den)


def retail_delta(price: Price, used_before: int, used_now: int) -> int:
    """What a report that takes a leg from ``used_before`` to ``used_now`` units pays."""
    return retail(price, used_now) - retail(price, used_before)


def affordable_units(price: Price, used_before: int, money: int) -> int:
    """The most units beyond ``used_before`` that ``money`` pays for, in whole increments.

    The answer ``n`` satisfies ``retail_delta(price, used_before, used_before + n) <= money`` and
    is the largest such ``n`` that ends on an increment boundary (what a grant should be).
    Unbounded (free) usage returns ``-1``.
    """
    if money < 0:
        return 0
    if price.price_num == 0 and price.connect_fee == 0 and price.min_charge == 0:
        return -1
    base = retail(price, used_before)
    budget = base + money
    if price.price_num == 0:
        # Only fees: once paid, usage is free; if unpaid, either all or nothing.
        if used_before > 0:
            return -1
        return -1 if budget >= price.connect_fee + price.min_charge else 0
    # Largest rounded total R with connect + max(min, ceil(R*num/den)) <= budget.
    spendable = budget - price.connect_fee
    if spendable < price.min_charge or spendable < 0:
        return 0
    whole, rest = divmod(spendable, price.price_num)
    max_rounded = whole * price.price_den + (rest * price.price_den) // price.price_num
    # Snap down to an increment boundary that usage can actually reach.
    rounded_before = rounded_units(price, used_before)
    if max_rounded < max(price.first_units, 1):
        return 0
    if max_rounded <= price.first_units:
        total = price.first_units
    else:
        steps = (max_rounded - price.first_units) // price.step_units
        total = price.first_units + steps * price.step_units
    if total <= rounded_before:
        # Usage already paid up to rounded_before; the slack up to it is free to use.
        return max(0, rounded_before - used_before)
    return total - used_before
