"""Golden examples of each rating rule, on the GOLDEN catalog (tests/tariffs/catalogs.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tariffs.errors import RatingError, ResultCode
from tariffs.loader import load_texts
from tariffs.price import retail, retail_delta, wholesale
from tariffs.rating import Rater, UsageRequest, context_kind
from tests.tariffs.catalogs import GOLDEN, berlin

RATER = Rater(load_texts([("gold.yaml", GOLDEN)]))
WED_PEAK = berlin(2026, 1, 21, 10, 0)  # a Wednesday, 10:00 local
WED_EVENING = berlin(2026, 1, 21, 20, 0)
VOICE = "ext.01.001.8.32275@3gpp.org"
DATA = "32251@3gpp.org"


def voice(number: str, now: int = WED_PEAK, visited: str | None = None) -> UsageRequest:
    return UsageRequest("gold", now, VOICE, called_number=number, visited_plmn=visited)


def test_context_classified_by_suffix() -> None:
    assert context_kind("32251@3gpp.org") == "data"
    assert context_kind("ext.01.001.8.32260@3gpp.org") == "ims"
    assert context_kind("8.32270@3gpp.org") == "mms"
    assert context_kind("32274@3gpp.org") == "sms"
    assert context_kind("32275@3gpp.org") == "mmtel"
    assert context_kind("4.32299@3gpp.org") is None


def test_increments_first_then_steps() -> None:
    rating = RATER.rate(voice("+44 20 7946 0000"))  # uk: 0.12/min, first 30 s, then 6 s
    assert rating.destination == "uk"
    assert retail(rating.price, 1) == 60_000  # 30 s
    assert retail(rating.price, 31) == 72_000  # 36 s
    assert retail(rating.price, 36) == 72_000
    assert retail(rating.price, 37) == 84_000  # 42 s
    assert wholesale(rating.price, 37) == 12_334  # 0.02/min on the raw 37 s, rounded up


def test_connect_fee_once_per_leg() -> None:
    rating = RATER.rate(voice("0151 0999 999"))  # national 0 → 49151 0999999: premium
    assert rating.destination == "premium"
    assert retail(rating.price, 1) == 500_000 + 1_200_000
    assert retail(rating.price, 61) == 500_000 + 2_400_000
    assert retail_delta(rating.price, 61, 90) == 0


def test_minimum_charge() -> None:
    rating = RATER.rate(voice("030 1234567"))  # de fixed: 0.06/min per second, minimum 0.10
    assert rating.destination == "de"
    assert retail(rating.price, 10) == 100_000
    assert retail(rating.price, 200) == 200_000


def test_longest_prefix_after_e164_normalisation() -> None:
    def dest(number: str) -> str | None:
        return RATER.rate(voice(number, visited="20801")).destination

    assert dest("+4915123456") == "de_mobile"
    assert dest("tel:+49-1510-123") == "premium"
    assert dest("sip:+491510123@ims.example;user=phone") == "premium"
    assert dest("00491512345") == "de_mobile"
    assert dest("0301234") == "de"
    assert dest("4930123") == "de"
    assert dest("0044201234") == "uk"
    assert dest("+1 212 555") is None  # no prefix: the eu zone row (no dest) prices it


def test_unknown_destination_without_a_fallback_row_is_a_rating_failure() -> None:
    with pytest.raises(RatingError) as caught:
        RATER.rate(voice("+1 212 555"))  # home zone: every home voice row names a destination
    assert caught.value.result_code is ResultCode.RATING_FAILED
    assert int(caught.value.result_code) == 5031


def test_band_crossing_reports_the_boundary() -> None:
    before = RATER.rate(voice("+4915123", now=berlin(2026, 1, 21, 18, 59, 30)))
    assert before.band == "peak"
    assert before.next_change_at == berlin(2026, 1, 21, 19, 0)
    after = RATER.rate(voice("+4915123", now=before.next_change_at))
    assert after.band == "offpeak"
    assert retail(before.price, 60) == 600_000 and retail(after.price, 60) == 300_000
    assert after.next_change_at == berlin(2026, 1, 22, 8, 0)
    friday_night = RATER.rate(voice("+4915123", now=berlin(2026, 1, 23, 20, 0)))
    assert friday_night.next_change_at == berlin(2026, 1, 26, 8, 0)  # Monday, over the weekend


def test_band_boundary_follows_daylight_saving() -> None:
    # Clocks go forward on 2026-03-29 (Sunday): Monday 08:00 CEST is 06:00 UTC, not 07:00.
    rating = RATER.rate(voice("+4915123", now=berlin(2026, 3, 28, 12, 0)))
    assert rating.band == "offpeak"
    assert rating.next_change_at == berlin(2026, 3, 30, 8, 0)
    assert rating.next_change_at % 86400 == 6 * 3600


def test_roaming_zone_from_visited_network() -> None:
    assert RATER.rate(voice("+44201", visited=None)).zone == "home"
    assert RATER.rate(voice("+44201", visited="26201")).zone == "home"
    eu = RATER.rate(voice("+44201", visited="20810"))
    assert (eu.zone, eu.price_key) == ("eu", "gold:v1:5")
    world = RATER.rate(voice("+44201", visited="310260"))
    assert world.zone == "world" and retail(world.price, 61) == 6_000_000


def test_service_from_rating_group_identifier_or_default() -> None:
    assert RATER.rate(UsageRequest("gold", WED_PEAK, DATA, rating_group=20)).service == "data"
    by_ident = UsageRequest("gold", WED_PEAK, VOICE, service_identifier=7, called_number="+441")
    assert RATER.rate(by_ident).service == "voice"
    sms = RATER.rate(UsageRequest("gold", WED_PEAK, "32274@3gpp.org", called_number="+441"))
    assert (sms.service, sms.unit, retail(sms.price, 1)) == ("sms", "event", 90_000)
    sip = RATER.rate(UsageRequest("gold", WED_PEAK, service="voice", called_number="+441"))
    assert sip.service == "voice"


@pytest.mark.parametrize(
    "request_",
    [
        UsageRequest("gold", WED_PEAK, DATA, rating_group=99),
        UsageRequest("gold", WED_PEAK, DATA),  # data has no default service: RG needed
        UsageRequest("gold", WED_PEAK, VOICE, service_identifier=8, called_number="+441"),
        UsageRequest("gold", WED_PEAK, "32299@3gpp.org", rating_group=10),
        UsageRequest("gold", WED_PEAK, service="fax"),
        UsageRequest("nobody", WED_PEAK, DATA, rating_group=10),
        UsageRequest("gold", berlin(2025, 12, 31, 23, 59), DATA, rating_group=10),  # no card yet
    ],
)
def test_unratable_usage_is_refused_with_5031_never_free(request_: UsageRequest) -> None:
    with pytest.raises(RatingError) as caught:
        RATER.rate(request_)
    assert caught.value.result_code == 5031


def test_bundle_scope_and_priority() -> None:
    def data(
        group: int, visited: str | None = None
    ) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
        r = RATER.rate(
            UsageRequest("gold", WED_PEAK, DATA, rating_group=group, visited_plmn=visited)
        )
        return r.bucket_kinds, r.on_exhaust, r.block_kinds

    # promo (priority 20) pays before big (5); promo only covers RG 20; big only home and eu.
    assert data(20) == (("promo.rg20", "big.data"), "block", ("promo.rg20",))
    assert data(10) == (("big.data",), "payg", ())
    assert data(10, visited="20801") == (("big.data",), "payg", ())
    assert data(10, visited="310260") == ((), "payg", ())
    assert data(20, visited="310260") == (("promo.rg20",), "block", ("promo.rg20",))
    assert RATER.rate(voice("+441")).bucket_kinds == ("promo.voice",)


def test_effective_dated_switch_records_the_version() -> None:
    last_v1 = berlin(2026, 6, 30, 23, 59, 59)
    first_v2 = berlin(2026, 7, 1, 0, 0)
    old = RATER.rate(UsageRequest("gold", last_v1, DATA, rating_group=10))
    new = RATER.rate(UsageRequest("gold", first_v2, DATA, rating_group=10))
    assert (old.version, old.price_key) == ("v1", "gold:v1:7")
    assert (new.version, new.price_key) == ("v2", "gold:v2:1")
    assert old.next_change_at == first_v2  # the card change caps the grant like a band change
    assert retail(old.price, 1 << 20) == 1_000_000 and retail(new.price, 1 << 20) == 500_000


def test_grant_sizes_and_final_unit_action_come_from_the_catalog() -> None:
    rating = RATER.rate(UsageRequest("gold", WED_PEAK, DATA, rating_group=10))
    assert (rating.default_grant_units, rating.max_grant_units) == (1000, 5000)
    tenant = RATER.tenant("gold")
    assert tenant is not None
    assert (tenant.final_unit.action, tenant.final_unit.redirect_url) == (
        "REDIRECT",
        "https://top.up/",
    )


# -- properties -----------------------------------------------------------------------------

numbers = st.sampled_from(["+4915123", "+491510", "0301234", "+44201", "+33123", "+1212"])
visits = st.sampled_from([None, "26201", "20801", "310260"])
moments = st.integers(berlin(2026, 1, 1), berlin(2027, 1, 1))


@settings(max_examples=200, deadline=None)
@given(numbers, visits, moments, st.integers(0, 20_000), st.integers(0, 20_000))
def test_rated_price_never_decreases_as_usage_grows(
    number: str, visited: str | None, now: int, a: int, b: int
) -> None:
    try:
        rating = RATER.rate(voice(number, now, visited))
    except RatingError:
        return
    low, high = sorted((a, b))
    assert retail(rating.price, low) <= retail(rating.price, high)
    assert wholesale(rating.price, low) <= wholesale(rating.price, high)


@settings(max_examples=200, deadline=None)
@given(numbers, visits, moments, st.lists(st.integers(0, 5_000), min_size=1, max_size=10))
def test_split_reports_cost_exactly_one_report(
    number: str, visited: str | None, now: int, reports: list[int]
) -> None:
    """Documented bound: 0 micro-units. Reports of one leg are charged cumulatively
    (retail_delta from the leg's total before to its total after), so n reports cost exactly
    retail(sum). A leg never spans a price change: the grant ends at next_change_at."""
    try:
        rating = RATER.rate(voice(number, now, visited))
    except RatingError:
        return
    used = paid = 0
    for units in reports:
        paid += retail_delta(rating.price, used, used + units)
        used += units
    assert paid == retail(rating.price, used)


@settings(max_examples=200, deadline=None)
@given(moments)
def test_band_is_constant_until_next_change(now: int) -> None:
    rating = RATER.rate(voice("+4915123", now))
    assert rating.next_change_at is not None and rating.next_change_at > now
    late = RATER.rate(voice("+4915123", rating.next_change_at - 1))
    assert late.band == rating.band
    after = RATER.rate(voice("+4915123", rating.next_change_at))
    assert (after.band, after.version) != (rating.band, rating.version)


def test_demo_catalog_readme_example() -> None:
    from pathlib import Path

    from tariffs.loader import load_catalog

    demo = Rater(load_catalog(Path(__file__).resolve().parents[2] / "examples" / "catalog"))
    us = demo.rate(UsageRequest("acme", WED_PEAK, VOICE, called_number="+12125550100"))
    assert (us.destination, retail(us.price, 61), retail(us.price, 5)) == (
        "intl_us",
        243_167,
        240_000,
    )
    acme_data = demo.rate(UsageRequest("acme", WED_PEAK, DATA, rating_group=10))
    globex_data = demo.rate(UsageRequest("globex", WED_PEAK, DATA, rating_group=10))
    # Every bundle a subscriber may hold (plan bundles, add-ons) may pay, higher priority first.
    assert acme_data.bucket_kinds == ("data_10g.data", "data_1g.data")
    assert globex_data.bucket_kinds == ("data_5g.data", "data_1g.data")
    assert (
        retail(acme_data.price, 1 << 20) == 10_000 and retail(globex_data.price, 1 << 20) == 8_000
    )
