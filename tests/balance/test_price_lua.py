"""The Lua price functions agree exactly with tariffs/price.py (the contract), through Redis."""

from __future__ import annotations

import asyncio

import msgspec
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from balance.records import price_tuple
from balance.scripts import ScriptSet, run_script
from tariffs.price import LUA_EXACT_MAX, Price, affordable_units, retail, wholesale

SCRIPT = ScriptSet.load()["price_check"]


@st.composite
def prices(draw: st.DrawFn) -> Price:
    price_den = draw(st.integers(1, 1 << 20))
    cost_den = draw(st.integers(1, 1 << 20))
    return Price(
        price_num=draw(st.integers(0, min(10_000_000, (LUA_EXACT_MAX - 1) // price_den))),
        price_den=price_den,
        cost_num=draw(st.integers(0, min(10_000_000, (LUA_EXACT_MAX - 1) // cost_den))),
        cost_den=cost_den,
        first_units=draw(st.integers(0, 120)),
        step_units=draw(st.integers(1, 4096)),
        connect_fee=draw(st.integers(0, 100_000)),
        min_charge=draw(st.integers(0, 100_000)),
    )


cases = st.lists(
    st.tuples(
        prices(),
        st.integers(0, 10**10),  # units: up to ~10 GB or 300 years of seconds
        st.integers(0, 10**9),  # used before
        st.integers(-5, 10**11),  # money: up to 100k currency units
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=cases)
def test_lua_price_functions_match_python(
    redis_url: str, batch: list[tuple[Price, int, int, int]]
) -> None:
    payload = msgspec.msgpack.encode([[price_tuple(p), u, b, m] for p, u, b, m in batch])

    async def run() -> bytes:
        client = aioredis.Redis.from_url(redis_url)
        try:
            raw: bytes = await run_script(client, SCRIPT, [], [payload])
            return raw
        finally:
            await client.aclose()

    results = msgspec.msgpack.decode(asyncio.run(run()))
    for (price, units, before, money), (lua_retail, lua_wholesale, lua_afford) in zip(
        batch, results, strict=True
    ):
        # Money beyond 2^53 micro-units (9e9 currency units) is outside the contract.
        if retail(price, units) < LUA_EXACT_MAX:
            assert lua_retail == retail(price, units), (price, units)
        if wholesale(price, units) < LUA_EXACT_MAX:
            assert lua_wholesale == wholesale(price, units), (price, units)
        expected = affordable_units(price, before, money)
        if abs(expected) < LUA_EXACT_MAX:  # beyond 2^53 units a grant is capped by the request
            assert lua_afford == expected, (price, before, money)
