"""``context_defaults``: the service that charges a context's unknown Rating-Group /
Service-Identifier (a stock IMS client's fixed ids), with 5031 kept where none is named; and
terminating legs priced by the ``leg: mt`` rows."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from tariffs.errors import CatalogError, RatingError
from tariffs.loader import load_catalog, load_texts
from tariffs.price import retail, wholesale
from tariffs.rating import Rater, UsageRequest
from tests.tariffs.catalogs import GOLDEN, MINIMAL, berlin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
KAMAILIO_CONTEXT = "ext.01.001.8.32260@3gpp.org"  # ims_charging's default Service-Context-Id
NOW = berlin(2026, 1, 21, 10, 0)


def problems_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_texts([("t.yaml", text)])
    return [str(p) for p in caught.value.problems]


def test_demo_catalog_charges_kamailio_defaults_as_voice() -> None:
    rater = Rater(load_catalog(EXAMPLES))
    by_group = rater.rate(
        UsageRequest("acme", NOW, KAMAILIO_CONTEXT, 100, 1000, called_number="+4915112345")
    )
    by_ident = rater.rate(
        UsageRequest("acme", NOW, KAMAILIO_CONTEXT, None, 1000, called_number="+4915112345")
    )
    mmtel = rater.rate(UsageRequest("acme", NOW, "32275@3gpp.org", called_number="+4915112345"))
    assert by_group.service == by_ident.service == "voice"
    # The same rate row as the mmtel call to the same number: one rate card for both paths.
    assert by_group.price_key == by_ident.price_key == mmtel.price_key
    assert by_group.rating_group == 100
    globex = rater.rate(UsageRequest("globex", NOW, "32260@3gpp.org", 100, called_number="+491"))
    assert globex.service == "voice"


def test_without_context_defaults_unknown_ids_stay_5031() -> None:
    rater = Rater(load_texts([("g.yaml", GOLDEN)]))
    for request in (
        UsageRequest("gold", NOW, KAMAILIO_CONTEXT, 100, 1000, called_number="+441"),
        UsageRequest("gold", NOW, "32251@3gpp.org", 99),
    ):
        with pytest.raises(RatingError) as caught:
            rater.rate(request)
        assert caught.value.result_code == 5031


def test_context_default_covers_only_its_own_context() -> None:
    text = GOLDEN.replace("zones:\n", "context_defaults: {ims: voice}\nzones:\n", 1)
    rater = Rater(load_texts([("g.yaml", text)]))
    assert (
        rater.rate(UsageRequest("gold", NOW, KAMAILIO_CONTEXT, 7, called_number="+441")).service
        == "voice"
    )
    assert (
        rater.rate(UsageRequest("gold", NOW, KAMAILIO_CONTEXT, called_number="+441")).service
        == "voice"
    )
    # A listed id still goes to its own service; another context's unknown id is still refused.
    assert rater.rate(UsageRequest("gold", NOW, "32251@3gpp.org", 20)).service == "data"
    with pytest.raises(RatingError):
        rater.rate(UsageRequest("gold", NOW, "32251@3gpp.org", 99))


def test_context_defaults_are_validated_with_file_and_line() -> None:
    lines = MINIMAL.splitlines()
    services_end = next(i for i, line in enumerate(lines) if line.startswith("zones:"))
    bad = [
        "context_defaults:",
        "  ims: fax",
        "  video: voice",
        "  data: [voice]",
    ]
    text = "\n".join(lines[:services_end] + bad + lines[services_end:]) + "\n"
    first = services_end + 2  # 1-based line of "  ims: fax"
    assert problems_of(text) == [
        f"t.yaml:{first}: context_defaults.ims: service 'fax' is not defined under services",
        f"t.yaml:{first + 1}: context_defaults.video: 'video' is not one of data, ims, mms, sms, "
        "mmtel",
        f"t.yaml:{first + 2}: context_defaults.data: expected a single value, not a list or "
        "mapping",
    ]


# -- terminating legs (leg: mt rows) ------------------------------------------------------------


def mt_call(tenant: str, visited: str | None) -> UsageRequest:
    return UsageRequest(
        tenant, NOW, KAMAILIO_CONTEXT, 100, called_number="+4917099000001", visited_plmn=visited,
        terminating=True,
    )  # fmt: skip


def test_terminating_legs_use_mt_rows_by_zone_free_at_home() -> None:
    rater = Rater(load_catalog(EXAMPLES))
    home, eu, world = (rater.rate(mt_call("acme", v)) for v in (None, "20801", "310260"))
    assert (home.zone, home.destination, retail(home.price, 600)) == ("home", None, 0)
    assert (eu.zone, retail(eu.price, 600), wholesale(eu.price, 600)) == ("eu", 0, 50_000)
    # world: 0.79 per started minute.
    assert (world.zone, retail(world.price, 61)) == ("world", 1_580_000)
    # The same call as an outgoing leg is priced by the destination (the called number).
    mo = rater.rate(msgspec.structs.replace(mt_call("acme", None), terminating=False))
    assert mo.destination == "de_mobile" and mo.price_key != home.price_key


def test_a_tenant_without_mt_rows_refuses_terminating_legs() -> None:
    rater = Rater(load_texts([("g.yaml", GOLDEN)]))
    request = UsageRequest("gold", NOW, "32275@3gpp.org", called_number="+441", terminating=True)
    with pytest.raises(RatingError) as caught:
        rater.rate(request)
    assert caught.value.result_code == 5031 and "leg: mt" in str(caught.value)


def test_mt_rows_are_validated_with_file_and_line() -> None:
    lines = MINIMAL.splitlines()
    row = next(i for i, line in enumerate(lines) if "service: voice, price" in line)
    lines[row + 1 : row + 1] = [
        "  - {service: voice, leg: mt, dest: de, price: 0, cost: 0}",
        "  - {service: voice, leg: xx, price: 0, cost: 0}",
        "  - {service: voice, leg: mt, price: 0, cost: 0}",
        "  - {service: voice, leg: mt, price: 0.1, cost: 0}",
    ]
    problems = problems_of("\n".join(lines) + "\n")
    assert problems == [
        f"t.yaml:{row + 2}: rates[1].dest: an mt row prices by zone and band, not destination",
        f"t.yaml:{row + 3}: rates[2].leg: 'xx' is not mo or mt",
        f"t.yaml:{row + 5}: rates[4]: same service/leg/zone/dest/band as rates[3]",
    ]
