"""The tariff_switch policy: grant timing around a boundary, its catalog key, and the per-side
pricing of usage marked by Tariff-Change-Usage (balance.legs)."""

from __future__ import annotations

import pytest

from balance.legs import last_change_in, marked_legs
from tariffs.loader import load_texts
from tariffs.model import TariffSwitch
from tariffs.price import Price
from tariffs.rating import Rating
from tariffs.tariff_switch import GrantTiming, grant_timing, session_jitter_s
from tests.tariffs.catalogs import MINIMAL
from tests.tariffs.test_plans import problems_of

CAP = TariffSwitch("validity_cap", 120)


def timing(policy: TariffSwitch, change: int | None, following: int | None = None) -> GrantTiming:
    return grant_timing(
        policy,
        now=1000,
        validity_s=3600,
        next_change=change,
        following_change=following,
        session_id="s-1",
    )


def test_grant_timing() -> None:
    ttc = TariffSwitch()
    assert timing(ttc, None) == GrantTiming(3600)
    assert timing(ttc, 5000) == GrantTiming(3600)  # beyond the validity: nothing to say
    assert timing(ttc, 1600) == GrantTiming(3600, 1600)
    assert timing(ttc, 1600, 2000) == GrantTiming(1000, 1600)  # one boundary per grant
    jitter = session_jitter_s("s-1", 120)
    assert 0 <= jitter <= 120 and jitter == session_jitter_s("s-1", 120)
    assert timing(CAP, 1600) == GrantTiming(600 - jitter)
    assert timing(CAP, 1001) == GrantTiming(1)  # inside the jitter window: the boundary
    spread = {session_jitter_s(f"s-{n}", 120) for n in range(50)}
    assert len(spread) > 20


def test_catalog_key() -> None:
    text = MINIMAL + "tariff_switch: {mode: validity_cap, jitter: PT5M}\n"
    tenant = load_texts([("t.yaml", text)]).tenants[0]
    assert tenant.tariff_switch == TariffSwitch("validity_cap", 300)
    assert load_texts([("t.yaml", MINIMAL)]).tenants[0].tariff_switch == TariffSwitch()
    line = len(MINIMAL.splitlines()) + 1
    assert problems_of(MINIMAL + "tariff_switch: {mode: sometimes}\n") == [
        f"t.yaml:{line}: tariff_switch.mode: one of tariff_time_change, validity_cap"
    ]
    assert problems_of(MINIMAL + "tariff_switch: {jitter: PT5M}\n") == [
        f"t.yaml:{line}: tariff_switch.jitter: only with mode: validity_cap"
    ]


PEAK, OFF = Price(2, 1, 0, 1), Price(1, 1, 0, 1)


def band_rate(at: int) -> Rating:
    """Peak before 1000, off-peak from 1000 until 5000, peak again after."""
    peak = at < 1000 or at >= 5000
    change = 1000 if at < 1000 else 5000 if at < 5000 else None
    return Rating(
        tenant="t", service="voice", unit="second", rating_group=None, zone="home",
        destination=None, band="peak" if peak else "off", price=PEAK if peak else OFF,
        version="v", price_key="t:v:peak" if peak else "t:v:off", bucket_kinds=(),
        on_exhaust="payg", block_kinds=(), next_change_at=change,
        default_grant_units=60, max_grant_units=3600, default_grant=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([(60, 0), (90, 1)], [("t:v:peak", 60), ("t:v:off", 90)]),
        ([(60, 2)], [("t:v:peak", 60)]),  # indeterminate: the grant's tariff
        ([(30, 1), (10, None)], [("t:v:off", 40)]),  # unmarked: at the report's time
    ],
)
def test_marked_legs(
    reports: list[tuple[int, int | None]], expected: list[tuple[str, int]]
) -> None:
    assert last_change_in(band_rate, 100, 1500) == 1000
    assert last_change_in(band_rate, 100, 900) is None
    legs = marked_legs(reports, 1500, 3660, band_rate)
    assert [(leg.leg_key, leg.units) for leg in legs] == expected
