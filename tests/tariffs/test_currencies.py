"""One ISO 4217 table (pycountry's) behind the catalog's currency check and the Currency-Code
AVP: every currency a catalog accepts has a numeric code on the wire."""

from __future__ import annotations

import pytest

from diameter_apps.credit_control import currency_code
from tariffs.currencies import ISO_4217_ALPHA
from tariffs.errors import CatalogError
from tariffs.loader import load_texts
from tests.tariffs.catalogs import MINIMAL


def currency_problems(code: str) -> list[str]:
    try:
        load_texts([("t.yaml", MINIMAL.replace("currency: EUR", f"currency: {code}"))])
    except CatalogError as exc:
        return [str(p) for p in exc.problems if "currency" in p.field]
    return []


def test_every_accepted_currency_has_its_numeric_code() -> None:
    assert len(ISO_4217_ALPHA) > 150  # the full table, not a hand-typed few dozen
    for alpha in ISO_4217_ALPHA:
        assert 0 < currency_code(alpha) < 1000
    assert currency_code("EUR") == 978
    assert currency_code("CHF") == 756
    assert currency_code("XOF") == 952
    # Beyond the 49 codes the answer builder used to know:
    assert currency_code("MNT") == 496 and currency_code("BOB") == 68
    assert currency_code("eur") == 978


def test_catalog_accepts_iso_4217_and_refuses_the_rest() -> None:
    assert currency_problems("MNT") == []
    assert currency_problems("XYZ") == [
        "t.yaml:2: currency: 'XYZ' is not an ISO 4217 currency code like EUR"
    ]
    assert currency_problems("XXX") == [
        "t.yaml:2: currency: 'XXX' is not an ISO 4217 currency code like EUR"
    ]
    assert currency_problems("eur") != []  # written in capitals, as ISO 4217 does


@pytest.mark.parametrize("bad", ["XYZ", "EURO", "", "E1R"])
def test_answer_builder_refuses_unknown_codes(bad: str) -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        currency_code(bad)
