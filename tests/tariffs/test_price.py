from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tariffs.price import (
    Price,
    PriceError,
    affordable_units,
    rate_fraction,
    retail,
    retail_delta,
    rounded_units,
    wholesale,
)

VOICE_60_1 = Price(*rate_fraction(90_000, 60), *rate_fraction(12_000, 60), first_units=60)


def test_voice_60_1_golden() -> None:
    # 0.09 EUR/min, first 60 s then per second.
    assert rounded_units(VOICE_60_1, 1) == 60
    assert rounded_units(VOICE_60_1, 61) == 61
    assert retail(VOICE_60_1, 1) == 90_000
    assert retail(VOICE_60_1, 61) == 91_500
    assert wholesale(VOICE_60_1, 61) == 12_200
    assert retail(VOICE_60_1, 0) == 0


def test_connect_fee_and_minimum() -> None:
    price = Price(1, 1, 0, 1, connect_fee=50_000, min_charge=10_000)
    assert retail(price, 0) == 0
    assert retail(price, 1) == 60_000  # fee + minimum
    assert retail(price, 20_000) == 70_000
    assert affordable_units(price, 0, 59_999) == 0
    assert affordable_units(price, 0, 60_000) == 10_000


def test_data_rate_fraction_is_reduced() -> None:
    assert rate_fraction(5_000_000, 1_048_576) == (78_125, 16_384)
    price = Price(78_125, 16_384, *rate_fraction(1_800_000, 1_048_576), step_units=1024)
    assert retail(price, 1_048_576) == 5_000_000
    assert retail(price, 1) == retail(price, 1024) == 4883  # one 1 KiB increment, rounded up


def test_too_fine_fraction_refused() -> None:
    with pytest.raises(PriceError, match="too fine"):
        Price(2**30 + 1, 2**30 + 3, 0, 1).check()


prices = st.builds(
    Price,
    price_num=st.integers(0, 10_000_000),
    price_den=st.integers(1, 1 << 20),
    cost_num=st.integers(0, 10_000_000),
    cost_den=st.integers(1, 1 << 20),
    first_units=st.integers(0, 120),
    step_units=st.integers(1, 4096),
    connect_fee=st.integers(0, 100_000),
    min_charge=st.integers(0, 100_000),
)


@given(prices, st.integers(0, 10**9), st.integers(0, 10**9))
def test_price_never_decreases(price: Price, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert retail(price, low) <= retail(price, high)
    assert wholesale(price, low) <= wholesale(price, high)


@given(prices, st.lists(st.integers(0, 10**7), min_size=1, max_size=8))
def test_split_reports_cost_the_same_as_one(price: Price, reports: list[int]) -> None:
    total = 0
    paid = 0
    for used in reports:
        paid += retail_delta(price, total, total + used)
        total += used
    assert paid == retail(price, total)


@given(prices, st.integers(0, 10**6), st.integers(0, 10**9))
def test_affordable_units_is_the_largest_paid_grant(price: Price, before: int, money: int) -> None:
    n = affordable_units(price, before, money)
    if n == -1:
        assert retail_delta(price, before, before + 10**9) <= money
        return
    assert n >= 0
    assert retail_delta(price, before, before + n) <= money
    # One more increment would cost more than the money (or would not be a whole increment).
    bigger = before + n + price.step_units
    if n > 0 or retail_delta(price, before, bigger) > 0:
        assert retail_delta(price, before, bigger) > money or rounded_units(price, bigger) == (
            rounded_units(price, before + n)
        )
