"""The prefix table agrees with a plain scan for the longest matching prefix."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tariffs.prefixes import PrefixTable

digits = st.text("0123456789", min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(digits, st.sampled_from("abc"), max_size=30), st.lists(digits, max_size=20))
def test_longest_prefix_matches_a_scan(table: dict[str, str], numbers: list[str]) -> None:
    prefixes = PrefixTable(table.items())
    for number in [*numbers, *(p + "7" for p in table)]:
        matches = [p for p in table if number.startswith(p)]
        expected = table[max(matches, key=len)] if matches else None
        assert prefixes.longest(number) == expected


def test_golden_longest_prefix() -> None:
    table = PrefixTable([("1", "nanp"), ("1212", "nyc"), ("49", "de"), ("4915", "de_mobile")])
    assert table.longest("12125550100") == "nyc"
    assert table.longest("13105550100") == "nanp"
    assert table.longest("4915123") == "de_mobile"
    assert table.longest("4930") == "de"
    assert table.longest("4") is None
    assert table.longest("") is None
    assert PrefixTable([]).longest("49") is None
