"""A wrong catalog is refused with every problem as ``file:line: field: what is wrong``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tariffs.errors import CatalogError
from tariffs.loader import load_catalog, load_texts
from tariffs.model import Catalog
from tests.tariffs.catalogs import GOLDEN, MINIMAL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"


def problems_of(*texts: str) -> list[str]:
    sources = [(f"t{i}.yaml", text) for i, text in enumerate(texts)]
    with pytest.raises(CatalogError) as caught:
        load_texts(sources)
    return [str(p) for p in caught.value.problems]


def replace_line(text: str, line: int, new: str) -> str:
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def test_demo_catalog_and_golden_and_minimal_are_valid() -> None:
    catalog = load_catalog(EXAMPLES)
    assert [t.id for t in catalog.tenants] == ["acme", "globex"]
    assert isinstance(load_texts([("g.yaml", GOLDEN), ("m.yaml", MINIMAL)]), Catalog)


def test_unknown_key_names_line_and_expected_keys() -> None:
    [problem] = problems_of(MINIMAL + "colour: red\n")
    assert problem.startswith("t0.yaml:16: colour: unknown key (expected one of: addons, bundles, ")


def test_unknown_key_inside_a_rate_row() -> None:
    text = replace_line(MINIMAL, 14, "  - {service: voice, price: 0.10, cost: 0.01, pr: 60}")
    [problem] = problems_of(text)
    assert problem.startswith("t0.yaml:14: rates[0].pr: unknown key")


def test_overlapping_time_bands() -> None:
    text = MINIMAL + (
        "time_bands:\n"
        "  day: {days: [mon-fri], from: '08:00', to: '19:00'}\n"
        "  late: {days: [fri], from: '18:00', to: '02:00'}\n"
        "  rest: {default: true}\n"
    )
    assert problems_of(text) == [
        "t0.yaml:17: time_bands.day: overlaps band late at fri 18:00",
    ]


def test_time_bands_with_a_gap_and_no_default() -> None:
    text = MINIMAL + "time_bands:\n  day: {days: [all], from: '08:00', to: '19:00'}\n"
    assert problems_of(text) == [
        "t0.yaml:17: time_bands: no band covers mon 00:00 and none is default: true"
    ]


def test_rate_naming_undefined_zone_destination_band_and_service() -> None:
    text = replace_line(
        MINIMAL,
        14,
        "  - {service: fax, zone: mars, dest: moon, band: peak, price: 0.1, cost: 0.01}",
    )
    assert problems_of(text) == [
        "t0.yaml:14: rates[0].service: service 'fax' is not defined",
        "t0.yaml:14: rates[0].zone: 'mars' is not defined under zones",
        "t0.yaml:14: rates[0].dest: 'moon' is not defined under destinations",
        "t0.yaml:14: rates[0].band: 'peak' is not defined under time_bands",
    ]


def test_bundle_allowance_with_no_matching_service_or_rating_group() -> None:
    text = MINIMAL + (
        "bundles:\n"
        "  - id: b\n"
        "    validity: P1D\n"
        "    allowances:\n"
        "      - {service: video, amount: 10}\n"
        "      - {service: data, rating_groups: [99], amount: 10}\n"
    )
    assert problems_of(text) == [
        "t0.yaml:20: bundles[0].allowances[0].service: no service 'video': "
        "the allowance could never be used",
        "t0.yaml:21: bundles[0].allowances[1].rating_groups: "
        "rating groups [99] are not service 'data''s",
    ]


def test_negative_price_and_currency_mismatch() -> None:
    text = replace_line(MINIMAL, 14, "  - {service: voice, price: -0.10, cost: 0.01 USD}")
    assert problems_of(text) == [
        "t0.yaml:14: rates[0].price: -0.10 is negative; prices and fees must be >= 0",
        "t0.yaml:14: rates[0].cost: currency USD does not match the tenant's EUR",
    ]


def test_rate_fraction_too_fine_for_the_ledger() -> None:
    text = replace_line(
        MINIMAL, 14, "  - {service: voice, price: 9.999999, cost: 0, per: 1000000007}"
    )
    [problem] = problems_of(text)
    assert problem.startswith("t0.yaml:14: rates[0].price: retail rate fraction too fine")


def test_ranges_claimed_by_two_tenants() -> None:
    first = MINIMAL + (
        "subscribers:\n  ranges:\n"
        "    - {imsi_first: '262010000000000', imsi_last: '262010000000099',"
        " msisdn_first: '4917000000000', msisdn_last: '4917000000099'}\n"
    )
    second = (
        first.replace("tenant: mini", "tenant: other")
        .replace("imsi_first: '262010000000000'", "imsi_first: '262010000000050'")
        .replace("msisdn_last: '4917000000099'", "msisdn_last: '4917000000049'")
    )
    assert problems_of(first, second) == [
        "t1.yaml:18: subscribers (IMSI): IMSI 262010000000050..262010000000099 overlaps "
        "262010000000000..262010000000099 claimed by tenant mini at t0.yaml:18",
        "t1.yaml:18: subscribers (MSISDN): MSISDN 4917000000000..4917000000049 overlaps "
        "4917000000000..4917000000099 claimed by tenant mini at t0.yaml:18",
    ]


def test_misaligned_range_and_undefined_bundle() -> None:
    text = MINIMAL + (
        "subscribers:\n  bundles: [gold]\n  ranges:\n"
        "    - {imsi_first: '262010000000000', imsi_last: '262010000000009',"
        " msisdn_first: '4917000000000', msisdn_last: '4917000000099'}\n"
    )
    assert problems_of(text) == [
        "t0.yaml:17: subscribers.bundles: bundle 'gold' is not defined",
        "t0.yaml:19: subscribers.ranges[0].msisdn_last: "
        "the MSISDN range must be as long as the IMSI range (10)",
    ]


def test_every_problem_is_listed_not_just_the_first() -> None:
    text = replace_line(MINIMAL, 2, "currency: euro")
    text = replace_line(text, 4, "timezone: Mars/Olympus")
    text = replace_line(text, 15, "  - {service: data, price: 1, cost: 0.5, per: 0}")
    assert problems_of(text) == [
        "t0.yaml:2: currency: 'euro' is not an ISO 4217 currency code like EUR",
        "t0.yaml:4: timezone: 'Mars/Olympus' is not an IANA time zone (e.g. Europe/Berlin)",
        "t0.yaml:15: rates[1].per: 0 is out of range 1..9007199254740991",
    ]


def test_yaml_syntax_error_duplicate_key_and_duplicate_tenant() -> None:
    assert problems_of("tenant: [a\n")[0].startswith("t0.yaml:2: (yaml): not valid YAML")
    assert problems_of(MINIMAL + "tenant: again\n") == ["t0.yaml:16: tenant: key given twice"]
    assert problems_of(MINIMAL, MINIMAL) == [
        "t1.yaml:1: tenant: tenant mini is also defined in t0.yaml"
    ]


def test_final_unit_redirect_needs_url(tmp_path: Path) -> None:
    (tmp_path / "mini.yaml").write_text(MINIMAL + "final_unit: {action: REDIRECT}\n")
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'mini.yaml'}:16: final_unit.redirect_url: REDIRECT needs the top-up URL"
    ]


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no such file"):
        load_catalog(tmp_path / "nope")
    with pytest.raises(CatalogError, match=r"no \*\.yaml tenant files"):
        load_catalog(tmp_path)


# -- the loader raises nothing but CatalogError, whatever YAML it is given ---------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.text(max_size=12),
    st.sampled_from(["EUR", "49", "P1D", "08:00", "mon-fri", "home", "voice", "data", "1e3"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "tenant",
                    "currency",
                    "services",
                    "zones",
                    "rates",
                    "bundles",
                    "subscribers",
                    "price",
                    "service",
                    "days",
                    "from",
                    "to",
                    "ranges",
                    "x",
                    "allowances",
                    "id",
                ]
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_loader_raises_only_catalog_error_on_structured_yaml(document: object) -> None:
    text = yaml.safe_dump(document)
    try:
        load_texts([("h.yaml", text)])
    except CatalogError as exc:
        assert exc.problems


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_loader_raises_only_catalog_error_on_any_text(text: str) -> None:
    try:
        load_texts([("h.yaml", text)])
    except CatalogError as exc:
        assert exc.problems


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(GOLDEN) - 1), st.integers(1, 8), st.text(max_size=8))
def test_loader_raises_only_catalog_error_on_mutated_catalogs(at: int, cut: int, new: str) -> None:
    text = GOLDEN[:at] + new + GOLDEN[at + cut :]
    try:
        load_texts([("g.yaml", text)])
    except CatalogError as exc:
        assert exc.problems


def test_compact_prefix_strings_load_and_report_bad_prefixes() -> None:
    compact = MINIMAL.replace('  de: ["49"]', '  de: "49 4930"\n  uk: "44"')
    catalog = load_texts([("c.yaml", compact)])
    assert catalog.tenants[0].destinations[0].prefixes == ("49", "4930")
    broken = MINIMAL.replace('  de: ["49"]', '  de: "49 4x 4930"\n  uk: "44 4930"')
    assert problems_of(broken) == [
        "t0.yaml:12: destinations.de[1]: a prefix is 1 to 15 digits (E.164)",
        "t0.yaml:13: destinations.uk[1]: prefix 4930 is also in de",
    ]


def test_entry_inside_own_range_is_claimed_twice() -> None:
    text = MINIMAL + (
        "subscribers:\n  ranges:\n"
        "    - {imsi_first: '262010000000000', imsi_last: '262010000000009',"
        " msisdn_first: '4917000000000', msisdn_last: '4917000000009'}\n"
        "  entries:\n    - {msisdn: '4917000000005'}\n"
    )
    assert problems_of(text) == [
        "t0.yaml:20: subscribers (MSISDN): MSISDN 4917000000005..4917000000005 overlaps "
        "4917000000000..4917000000009 claimed by this tenant at t0.yaml:18",
    ]


def test_unreadable_bytes_are_a_problem_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00tenant")
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    [problem] = caught.value.problems
    assert (problem.file, problem.field) == (str(tmp_path / "bin.yaml"), "(file)")
    assert problem.message.startswith("cannot read")
