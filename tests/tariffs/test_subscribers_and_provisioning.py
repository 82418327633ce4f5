"""Resolver (Subscription-Id → tenant, subscriber), provisioning data, grant sizing, numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tariffs.loader import load_catalog, load_texts
from tariffs.numbers import Duration, normalise_e164, parse_duration, parse_money
from tariffs.price import Price
from tariffs.provisioning import bundle_buckets, provision_subscribers, subscriber_count
from tariffs.quota import is_final_grant, size_grant, size_grant_for
from tariffs.rating import Rater, UsageRequest
from tariffs.subscribers import Resolver, SubscriberRef, SubscriptionIdType
from tests.tariffs.catalogs import GOLDEN, berlin

CATALOG = load_texts([("gold.yaml", GOLDEN)])
DEMO = load_catalog(Path(__file__).resolve().parents[2] / "examples" / "catalog")
NOW = berlin(2026, 1, 31, 12, 0)


def test_resolver_maps_imsi_msisdn_and_uris_to_the_canonical_msisdn() -> None:
    resolver = Resolver(DEMO)
    ref = SubscriberRef("acme", "4917099000042", "262019900000042")
    assert resolver.resolve(SubscriptionIdType.END_USER_IMSI, "262019900000042") == ref
    assert resolver.resolve(SubscriptionIdType.END_USER_E164, "+4917099000042") == ref
    assert resolver.resolve(SubscriptionIdType.END_USER_E164, "tel:+49-170-99000042") == ref
    sip = "sip:+4917199000007@ims.globex.example;user=phone"
    assert resolver.resolve(SubscriptionIdType.END_USER_SIP_URI, sip) == SubscriberRef(
        "globex", "4917199000007", "262019910000007"
    )
    assert resolver.resolve_any([(4, "x"), (1, "262019910000099")]) == SubscriberRef(
        "globex", "4917199000099", "262019910000099"
    )


@pytest.mark.parametrize(
    ("id_type", "value"),
    [
        (1, "262019900000100"),  # one past acme's range
        (1, "26201990000000"),  # one digit short
        (0, "4917099000100"),
        (0, "not a number"),
        (0, ""),
        (2, "sip:alice@example.com"),
        (4, "262019900000042"),  # END_USER_PRIVATE is not an identity we map
    ],
)
def test_resolver_unknown_ids_are_none(id_type: int, value: str) -> None:
    assert Resolver(DEMO).resolve(id_type, value) is None


def test_resolver_explicit_entries_and_leading_zero_imsis() -> None:
    resolver = Resolver(CATALOG)
    assert resolver.by_imsi("001019999999999") == SubscriberRef(
        "gold", "4930999", "001019999999999"
    )
    assert resolver.by_imsi("001010000000003") == SubscriberRef(
        "gold", "4930000003", "001010000000003"
    )
    assert resolver.by_msisdn("4930000009") == SubscriberRef(
        "gold", "4930000009", "001010000000009"
    )


def test_provisioning_gives_opening_balance_and_bucket_instances_with_expiry() -> None:
    tenant = CATALOG.tenants[0]
    provisions = list(provision_subscribers(tenant, NOW))
    assert len(provisions) == subscriber_count(tenant) == 11
    first = provisions[0]
    assert (first.subscriber_id, first.imsi, first.opening_balance) == (
        "4930000000",
        "001010000000000",
        5_000_000,
    )
    [big] = first.buckets
    assert (big.kind, big.unit, big.amount, big.priority) == ("big.data", "byte", 1_000_000, 5)
    assert big.expires_at == NOW + 30 * 86400
    entry = provisions[-1]
    assert entry.opening_balance == 1_500_000
    assert [(b.kind, b.expires_at, b.on_exhaust) for b in entry.buckets] == [
        ("big.data", NOW + 30 * 86400, "payg"),
        ("promo.rg20", NOW + 86400, "block"),
        ("promo.voice", NOW + 86400, "block"),
    ]


def test_calendar_month_validity_clamps_to_month_end() -> None:
    monthly = CATALOG.tenants[0].bundle("monthly")
    assert monthly is not None
    [sms] = bundle_buckets(monthly, NOW)  # 2026-01-31 12:00 Berlin = 11:00 UTC
    assert sms.expires_at == NOW + 28 * 86400  # 2026-02-28 11:00 UTC


def test_demo_subscribers_open_with_ten_euro_and_one_gib() -> None:
    for tenant in DEMO.tenants:
        provisions = list(provision_subscribers(tenant, NOW))
        assert len(provisions) == 200  # 100 without a plan, 100 on the monthly plan
        assert {p.opening_balance for p in provisions} == {10_000_000}
        assert {p.buckets[0].amount for p in provisions} == {1 << 30}
        assert sum(len(p.buckets) == 2 for p in provisions) == 100  # + the plan's bundle


def test_grant_sizing() -> None:
    voice_60 = Price(1500, 1, 200, 1, first_units=60, step_units=1)
    assert size_grant(None, 300, 3600) == 300
    assert size_grant(0, 300, 3600) == 300
    assert size_grant(10_000, 300, 3600) == 3600
    assert size_grant(30, 300, 3600, voice_60) == 60  # the first increment is paid anyway
    assert size_grant(30, 300, 45, voice_60) == 30  # rounding would pass the max
    rating = Rater(CATALOG).rate(UsageRequest("gold", NOW, "32251@3gpp.org", rating_group=10))
    assert size_grant_for(rating, None) == 1024  # default 1000 rounded up to a 1 KiB increment
    assert size_grant_for(rating, 10**9) == 5000
    assert is_final_grant(60, 60) and not is_final_grant(60, 61) and not is_final_grant(60, -1)


def test_numbers_at_the_edge() -> None:
    assert parse_money("0.09", "EUR") == 90_000
    assert parse_money("12 EUR", "EUR") == 12_000_000
    for bad in ("-1", "0.0000001", "1,5", "1 USD", "abc"):
        with pytest.raises(ValueError):
            parse_money(bad, "EUR")
    assert parse_duration("P30D") == Duration(seconds=30 * 86400)
    assert parse_duration("P1Y2M3DT4H5M6S") == Duration(14, 3 * 86400 + 4 * 3600 + 5 * 60 + 6)
    assert parse_duration("P2W") == Duration(seconds=14 * 86400)
    for bad in ("P", "PT", "30D", "P0D", "P1DT", "-P1D"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert normalise_e164("030 12345", "49") == "493012345"
    assert normalise_e164("(0)30-123", "49") == "4930123"
    assert normalise_e164("sips:+331@x", "49") == "331"
    assert normalise_e164("+49abc", "49") is None
    assert normalise_e164("+" + "1" * 16, "49") is None
