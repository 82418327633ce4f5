"""The wholesale catalog: demo data loads, every mistake is reported at its file and line."""

from __future__ import annotations

import pytest

from settlement.catalog import load_settlement_catalog, load_settlement_texts, parse_percent
from tariffs.errors import CatalogError
from tariffs.loader import load_catalog

MNO = """\
host_mno: net1
currency: EUR
services: {data: byte, voice: second}
zones:
  home: {plmns: ["26201"]}
  world: {default: true}
prices:
  - {service: data, zone: home, price: 0.002, per: 1048576}
  - {service: voice, price: 0.012, per: 60}
tolerances:
  data: {quantity: 1024, money_percent: "0.5"}
"""

CONTRACT = """\
tenant: acme
currency: EUR
host_mnos: [net1]
margin_percent: "10"
platform_fee: 0.10
"""


def _problems(mno: str = MNO, contract: str = CONTRACT) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_settlement_texts([("w/net1.yaml", mno)], [("c/acme.yaml", contract)])
    return [str(p) for p in caught.value.problems]


def test_demo_catalog_loads_with_the_tenants() -> None:
    tenants = load_catalog("examples/catalog")
    catalog = load_settlement_catalog("examples/catalog", tenants)
    mno = catalog.mno("telco-de")
    assert mno is not None
    assert {c.tenant for c in catalog.contracts} == {"acme", "globex"}
    assert mno.zone_of("") == "home"
    assert mno.zone_of("26202") == "home"
    assert mno.zone_of("20801") == "eu"
    assert mno.zone_of("31026") == "world"
    price = mno.price("sms", "eu")
    assert price is not None and price.amount == 50_000  # the "*" row
    acme = catalog.contract("acme")
    assert acme is not None and acme.margin_ppm == 125_000 and acme.platform_fee == 150_000


def test_good_texts_load() -> None:
    catalog = load_settlement_texts([("w/net1.yaml", MNO)], [("c/acme.yaml", CONTRACT)])
    mno = catalog.mno("net1")
    assert mno is not None
    assert mno.tolerance("data").quantity_absolute == 1024
    assert mno.tolerance("data").money_relative_ppm == 5000
    assert mno.tolerance("voice").money_absolute == 0


def test_unknown_service_and_zone_in_prices_are_located() -> None:
    bad = MNO.replace("service: voice, price", "service: video, price").replace(
        "zone: home, price", "zone: moon, price"
    )
    problems = _problems(bad)
    assert "w/net1.yaml:8: prices[0].zone: zone 'moon' is not defined" in problems
    assert "w/net1.yaml:9: prices[1].service: service 'video' is not defined" in problems


def test_bad_percent_and_duplicate_price_row() -> None:
    bad = MNO.replace('"0.5"', '"0.12345"').replace(
        "prices:\n", "prices:\n  - {service: voice, price: 0.02, per: 60}\n"
    )
    problems = _problems(bad)
    assert any(p.startswith("w/net1.yaml:12: tolerances.data.money_percent:") for p in problems)
    assert any("w/net1.yaml:10: prices[2]" in p and "already priced" in p for p in problems)


def test_contract_cross_checks() -> None:
    problems = _problems(contract=CONTRACT.replace("[net1]", "[net9]").replace("EUR", "EUR"))
    assert problems == ["c/acme.yaml:3: host_mnos: host MNO 'net9' is not defined"]
    problems = _problems(contract=CONTRACT.replace("EUR", "USD"))
    assert problems == [
        "c/acme.yaml:2: currency: USD differs from host MNO net1's EUR "
        "(settlement does not convert currencies)"
    ]


def test_contract_against_tenants() -> None:
    tenants = load_catalog("examples/catalog")
    text = CONTRACT.replace("acme", "nobody")
    with pytest.raises(CatalogError) as caught:
        load_settlement_texts([("w/net1.yaml", MNO)], [("c/x.yaml", text)], tenants)
    assert [str(p) for p in caught.value.problems] == [
        "c/x.yaml:1: tenant: tenant 'nobody' is not defined"
    ]
    text = CONTRACT + "markups:\n  - {service: fax, amount: 0.01}\n"
    with pytest.raises(CatalogError) as caught:
        load_settlement_texts([("w/net1.yaml", MNO)], [("c/acme.yaml", text)], tenants)
    assert [str(p) for p in caught.value.problems] == [
        "c/acme.yaml:6: markups: service 'fax' is not a service of tenant acme"
    ]


def test_unknown_key_and_missing_required() -> None:
    problems = _problems(contract="tenant: acme\nhost_mnos: [net1]\nmargin: 5\n")
    assert "c/acme.yaml:3: margin: unknown key" in problems[0] or any(
        "margin: unknown key" in p for p in problems
    )
    assert any("currency: required key is missing" in p for p in problems)


@pytest.mark.parametrize(
    ("text", "ppm"), [("12.5", 125_000), ("0", 0), ("100%", 1_000_000), ("0.0001", 1)]
)
def test_parse_percent(text: str, ppm: int) -> None:
    assert parse_percent(text) == ppm


@pytest.mark.parametrize("text", ["-1", "101", "abc", "0.00001", "nan"])
def test_parse_percent_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_percent(text)
