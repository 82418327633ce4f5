"""Mapping files: the example loads; each kind of mistake is reported at its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from usage.xdr.mapping import MappingError, load_mapping, load_mapping_text, mapping_path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "catalog" / "mno" / "telco_de.yaml"

GOOD = """\
mno: m1
format: csv
timezone: Europe/Berlin
time_format: "%Y%m%d%H%M%S"
columns:
  record_id: id
  msisdn: a
  service: {column: t, map: {D: data, V: voice}}
  started_at: start
  quantity: qty
numbers: {country_code: "49"}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(MappingError) as info:
        load_mapping_text(text, "m.yaml")
    return [str(p) for p in info.value.problems]


def test_example_mapping_loads() -> None:
    mapping = load_mapping(EXAMPLE)
    assert mapping.mno == "telco_de"
    assert mapping.delimiter == ";"
    assert dict(mapping.column("service").value_map)["MOC"] == "voice"  # type: ignore[union-attr]
    assert mapping_path(EXAMPLE.parents[1], "telco_de") == EXAMPLE


def test_good_minimal_mapping_and_its_defaults() -> None:
    mapping = load_mapping_text(GOOD, "m.yaml")
    assert mapping.numbers.international_prefixes == ("+", "00")
    assert [s.service for s in mapping.services] == ["data", "voice", "sms"]
    assert mapping.header is True


def test_missing_required_keys_are_listed_with_lines() -> None:
    found = problems("mno: m1\nformat: csv\n")
    assert any(p.startswith("m.yaml:1: timezone: required key is missing") for p in found)
    assert any("columns: required key is missing" in p for p in found)


@pytest.mark.parametrize(
    ("change", "line", "fragment"),
    [
        (("format: csv", "format: xml"), 2, "format: 'xml' is not csv or fixed"),
        (("Europe/Berlin", "Mars/Olympus"), 3, "is not an IANA time zone"),
        (('"%Y%m%d%H%M%S"', "yyyymmdd"), 4, "a strptime format"),
        (("  record_id: id\n", ""), 6, "columns.record_id: required key is missing"),
        (("  msisdn: a\n", ""), 6, "needs imsi or msisdn"),
        (("D: data", "D: fax"), 8, "'fax' is not data, voice or sms"),
        (("{column: t, map: {D: data, V: voice}}", "t"), 8, "needs a value map"),
        (('{country_code: "49"}', '{country_code: "0049"}'), 11, "is not 1-3 digits"),
        (('{country_code: "49"}', '{country_code: "49", bare: local}'), 11, "international or"),
        (('{country_code: "49"}', '{country_code: "49", strip: "0"}'), 11, "must not remove"),
        (("  quantity: qty\n", "  quantity: qty\n  volume: v\n"), 11, "columns.volume: unknown"),
        (("format: csv\n", "format: csv\ncsv: {delimiter: ';;'}\n"), 3, "one character"),
        (("format: csv\n", "format: fixed\n"), 6, "fixed width needs start"),
    ],
)
def test_bad_mapping(change: tuple[str, str], line: int, fragment: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    found = problems(text)
    assert any(p.startswith(f"m.yaml:{line}:") and fragment in p for p in found), found


def test_service_map_target_must_be_configured() -> None:
    text = GOOD.replace("numbers:", "services: {data: {}}\nnumbers:")
    found = problems(text)
    assert any("'V' maps to voice" in p for p in found), found


def test_fixed_width_mapping() -> None:
    text = """\
mno: fw
format: fixed
timezone: UTC
time_format: epoch
columns:
  record_id: {start: 1, width: 8}
  imsi: {start: 9, width: 15}
  service: {value: sms}
  started_at: {start: 24, width: 10}
  quantity: {start: 34, width: 3}
numbers: {country_code: "49"}
"""
    mapping = load_mapping_text(text, "fw.yaml")
    assert mapping.column("imsi").start == 8  # type: ignore[union-attr]
    assert mapping.column("service").value == "sms"  # type: ignore[union-attr]
    bad = text.replace("{start: 9, width: 15}", "{column: 2}")
    assert any("fixed width needs start" in p for p in problems(bad))


def test_not_yaml_and_empty() -> None:
    assert problems("mno: [")[0].startswith("m.yaml:")
    assert "empty" in problems("")[0]
