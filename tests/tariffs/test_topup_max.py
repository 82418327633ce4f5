"""The catalog's per-tenant ``topup_max``: the largest single top-up ``ocs account topup`` takes."""

from __future__ import annotations

from tariffs.errors import CatalogError
from tariffs.loader import load_texts
from tariffs.model import TOPUP_MAX_DEFAULT
from tests.tariffs.catalogs import MINIMAL


def problems(text: str) -> list[str]:
    try:
        load_texts([("t.yaml", text)])
    except CatalogError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_default_and_explicit_maximum() -> None:
    assert load_texts([("t.yaml", MINIMAL)]).tenants[0].topup_max == TOPUP_MAX_DEFAULT == 10**9
    tenant = load_texts([("t.yaml", MINIMAL + "topup_max: 50.00 EUR\n")]).tenants[0]
    assert tenant.topup_max == 50_000_000


def test_bad_maximum_is_refused_at_its_line() -> None:
    assert problems(MINIMAL + "topup_max: 0\n") == [
        "t.yaml:16: topup_max: must be a positive amount"
    ]
    assert problems(MINIMAL + "topup_max: 5 USD\n") == [
        "t.yaml:16: topup_max: currency USD does not match the tenant's EUR"
    ]
