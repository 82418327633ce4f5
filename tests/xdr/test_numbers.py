"""Each number normalisation rule on its own, then in the order they apply."""

from __future__ import annotations

import pytest

from usage.xdr.numbers import NumberRules, Rewrite

DE = NumberRules(country_code="49")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+4917099000001", "4917099000001"),  # international prefix +
        ("004917099000001", "4917099000001"),  # international prefix 00
        ("017099000001", "4917099000001"),  # national prefix 0 -> country code
        ("4917099000001", "4917099000001"),  # bare digits: international by default
        ("+49 170 990-000.01", "4917099000001"),  # visual separators stripped
        ("(0170) 99000001", "4917099000001"),
        ("tel:+4917099000001", "4917099000001"),  # tel: URI
        ("sip:+4917099000001@ims.example;user=phone", "4917099000001"),  # sip: URI, params cut
        ("SIPS:004930123@x", "4930123"),
    ],
)
def test_default_rules(raw: str, expected: str) -> None:
    assert DE.normalise(raw) == expected


def test_bare_national_puts_the_country_code_in_front() -> None:
    rules = NumberRules(country_code="44", bare="national")
    assert rules.normalise("2071234567") == "442071234567"
    assert rules.normalise("+12125550100") == "12125550100"  # a prefix still wins


def test_custom_international_prefixes_and_no_national_prefix() -> None:
    # North America: 011 is the international prefix, 1 the national ("trunk") one.
    rules = NumberRules(
        country_code="1", international_prefixes=("+", "011"), national_prefix="1", bare="national"
    )
    assert rules.normalise("01144207123456") == "44207123456"
    assert rules.normalise("12125550100") == "12125550100"
    assert rules.normalise("2125550100") == "12125550100"
    no_national = NumberRules(country_code="49", national_prefix="")
    assert no_national.normalise("017099") == "017099"  # bare international, kept as written


def test_rewrite_applies_first_and_only_the_first_match() -> None:
    rules = NumberRules(
        country_code="49",
        rewrite=(Rewrite("+0049", "+49"), Rewrite("+00", "+"), Rewrite("11", "4911")),
    )
    assert rules.normalise("+004917099") == "4917099"  # first rule, not the second
    assert rules.normalise("+0033123456") == "33123456"  # second rule
    assert rules.normalise("11833") == "4911833"  # a short code rewritten to E.164


def test_custom_strip_set() -> None:
    rules = NumberRules(country_code="49", strip="_")
    assert rules.normalise("+49_170_99") == "4917099"
    assert rules.normalise("+49 170") is None  # a space is no longer stripped


@pytest.mark.parametrize("raw", ["", "abc", "+49abc", "+", "12", "+1234567890123456", "٤٩١٧٠"])
def test_not_a_number(raw: str) -> None:
    assert DE.normalise(raw) is None


def test_min_digits() -> None:
    assert NumberRules(country_code="49", min_digits=8).normalise("+4930123") is None
    assert NumberRules(country_code="49", min_digits=7).normalise("+4930123") == "4930123"
