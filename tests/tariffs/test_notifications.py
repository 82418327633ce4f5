"""The catalog's per-tenant notification levels (``notifications.balance_below``)."""

from __future__ import annotations

from tariffs.errors import CatalogError
from tariffs.loader import load_texts
from tests.tariffs.catalogs import MINIMAL


def problems(text: str) -> list[str]:
    try:
        load_texts([("t.yaml", text)])
    except CatalogError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_levels_are_money_sorted_and_deduplicated() -> None:
    assert load_texts([("t.yaml", MINIMAL)]).tenants[0].notify_balance_below == ()
    text = MINIMAL + "notifications: {balance_below: [1.00, 5.00 EUR, 1]}\n"
    assert load_texts([("t.yaml", text)]).tenants[0].notify_balance_below == (1_000_000, 5_000_000)


def test_bad_levels_are_refused_at_their_line() -> None:
    assert problems(MINIMAL + "notifications: {balance_below: [0]}\n") == [
        "t.yaml:16: notifications.balance_below: levels must be positive amounts"
    ]
    assert problems(MINIMAL + "notifications: {below: [1]}\n")[0].startswith(
        "t.yaml:16: notifications.below: unknown key"
    )
    nine = ", ".join(str(n) for n in range(1, 10))
    assert problems(MINIMAL + f"notifications: {{balance_below: [{nine}]}}\n") == [
        "t.yaml:16: notifications.balance_below: at most 8 levels"
    ]


def test_bucket_percents_expiry_window_and_provisioning_hold() -> None:
    tenant = load_texts([("t.yaml", MINIMAL)]).tenants[0]
    assert (tenant.notify_bucket_below, tenant.expiry_warning_s, tenant.provisioning_hold) == (
        (), 0, False,
    )  # fmt: skip
    text = MINIMAL + (
        "notifications: {bucket_below_percent: [20, 50, 20], expiry_warning_days: 3}\n"
        "provisioning_hold: true\n"
    )
    tenant = load_texts([("t.yaml", text)]).tenants[0]
    assert tenant.notify_bucket_below == (50, 20)
    assert tenant.expiry_warning_s == 3 * 86_400
    assert tenant.provisioning_hold is True


def test_bad_percents_days_and_hold_are_refused_at_their_line() -> None:
    assert problems(MINIMAL + "notifications: {bucket_below_percent: [100]}\n") == [
        "t.yaml:16: notifications.bucket_below_percent: 100 is out of range 1..99"
    ]
    assert problems(MINIMAL + "notifications: {bucket_below_percent: [1, 2, 3, 4, 5]}\n") == [
        "t.yaml:16: notifications.bucket_below_percent: at most 4 levels"
    ]
    assert problems(MINIMAL + "notifications: {expiry_warning_days: 0}\n") == [
        "t.yaml:16: notifications.expiry_warning_days: 0 is out of range 1..90"
    ]
    assert problems(MINIMAL + "provisioning_hold: maybe\n") == [
        "t.yaml:16: provisioning_hold: 'maybe' is not true or false"
    ]
