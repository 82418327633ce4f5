"""The int64 array prices equal the scalar ``retail`` / ``wholesale`` wherever they claim to
(``safe``), for any price the catalog accepts and any usage."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tariffs.price import LUA_EXACT_MAX, Price, retail, wholesale
from tariffs.price_arrays import RESULT_MAX, PriceArrays, prices


@st.composite
def checked_prices(draw: st.DrawFn) -> Price:
    den = draw(st.integers(1, 1 << 26))
    num = draw(st.integers(0, (LUA_EXACT_MAX - 1) // den))
    cost_den = draw(st.integers(1, 1 << 26))
    cost_num = draw(st.integers(0, (LUA_EXACT_MAX - 1) // cost_den))
    price = Price(
        num, den, cost_num, cost_den,
        first_units=draw(st.integers(0, 1 << 20)), step_units=draw(st.integers(1, 1 << 20)),
        connect_fee=draw(st.integers(0, 10_000_000)), min_charge=draw(st.integers(0, 10_000_000)),
    )  # fmt: skip
    price.check()
    return price


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(checked_prices(), st.integers(0, 2**48)), min_size=1, max_size=40))
def test_array_prices_equal_the_scalar_functions(rows: list[tuple[Price, int]]) -> None:
    table = PriceArrays([price for price, _ in rows])
    units = np.array([u for _, u in rows], dtype=np.int64)
    got_retail, got_wholesale, safe = prices(table.take(np.arange(len(rows))), units)
    for i, (price, used) in enumerate(rows):
        want = (retail(price, used), wholesale(price, used))
        if safe[i]:
            assert (int(got_retail[i]), int(got_wholesale[i])) == want
        else:  # left to the scalar path: only when a figure is really large
            assert max(want) >= RESULT_MAX // 4 or used >= RESULT_MAX // 4


def test_everyday_prices_are_safe() -> None:
    per_mib = Price(78125, 16384, 15625, 16384, first_units=0, step_units=1024)
    per_second = Price(3, 2, 1, 5, first_units=60, step_units=1, connect_fee=50_000)
    table = PriceArrays([per_mib, per_second])
    units = np.array([20_000_000, 3_600], dtype=np.int64)
    got_retail, got_wholesale, safe = prices(table.take(np.array([0, 1])), units)
    assert safe.all()
    assert got_retail.tolist() == [retail(per_mib, 20_000_000), retail(per_second, 3_600)]
    assert got_wholesale.tolist() == [wholesale(per_mib, 20_000_000), wholesale(per_second, 3_600)]
