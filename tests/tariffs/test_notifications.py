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
