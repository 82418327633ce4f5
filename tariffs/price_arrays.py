"""``tariffs.price.retail`` and ``wholesale`` for arrays of usage (numpy int64), the same
integer formulas term for term, for the rows where no intermediate value can leave int64.

``safe`` says which rows those are: a caller prices the others with the scalar functions
(Python integers). Equality with the scalar functions is tested with generated prices and
usage (tests/tariffs/test_price_arrays.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tariffs.price import Price

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
# Every row whose result stays under 2**40 micro-units (1.1 million in the currency) is
# priced here; a chunk of up to 2**22 such rows then sums without leaving int64 either.
RESULT_MAX = 1 << 40


class PriceArrays:
    """The fields of ``prices`` as columns; ``take(index)`` gathers one price per row."""

    FIELDS = (
        "price_num", "price_den", "cost_num", "cost_den",
        "first_units", "step_units", "connect_fee", "min_charge",
    )  # fmt: skip

    def __init__(self, prices: list[Price]) -> None:
        self.columns = {
            name: np.array([getattr(p, name) for p in prices], dtype=np.int64)
            for name in self.FIELDS
        }

    def take(self, index: Ints) -> dict[str, Ints]:
        return {name: column[index] for name, column in self.columns.items()}


def _ceil_mul_div(units: Ints, num: Ints, den: Ints) -> Ints:
    whole, rest = np.divmod(units, den)
    return whole * num + -(-(rest * num) // den)


def _estimate(units: Ints, num: Ints, den: Ints) -> npt.NDArray[np.float64]:
    """An upper estimate of ``units * num / den`` in floating point (for the safe check)."""
    return (units.astype(np.float64) + 1.0) * (num.astype(np.float64) / den + 1.0)


def prices(p: dict[str, Ints], units: Ints) -> tuple[Ints, Ints, Bools]:
    """(retail, wholesale, safe) per row: ``retail(price_i, units_i)`` and
    ``wholesale(price_i, units_i)`` where ``safe``; other rows hold 0."""
    over = np.maximum(units - p["first_units"], 0)
    steps = -(-over // p["step_units"])
    # As rounded_units: 0 stays 0; up to the first increment; then whole increments.
    rounded = np.where(
        units <= p["first_units"], p["first_units"], p["first_units"] + steps * p["step_units"]
    )
    rounded = np.where(units > 0, rounded, 0)
    safe = (units == 0) | (
        (units > 0)
        & (_estimate(rounded, p["price_num"], p["price_den"]) + p["connect_fee"] + p["min_charge"]
           < RESULT_MAX)
        & (_estimate(units, p["cost_num"], p["cost_den"]) < RESULT_MAX)
        & (rounded.astype(np.float64) < RESULT_MAX)
    )  # fmt: skip
    units = np.where(safe, units, 0)
    rounded = np.where(safe, rounded, 0)
    money = _ceil_mul_div(rounded, p["price_num"], p["price_den"])
    retail = np.where(units > 0, p["connect_fee"] + np.maximum(p["min_charge"], money), 0)
    wholesale = np.where(units > 0, _ceil_mul_div(units, p["cost_num"], p["cost_den"]), 0)
    return retail, wholesale, safe
