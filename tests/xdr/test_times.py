"""The fast start-time parser gives strptime's answer, DST edges included."""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from usage.xdr.times import TimeParser

BERLIN = ZoneInfo("Europe/Berlin")


def reference(text: str, fmt: str, zone: ZoneInfo) -> int:
    return int(datetime.strptime(text, fmt).replace(tzinfo=zone).timestamp())


@pytest.mark.parametrize("fmt", ["%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%d.%m.%Y %H:%M:%S"])
def test_same_as_strptime(fmt: str) -> None:
    parser = TimeParser(fmt, BERLIN)
    assert parser._fast is not None
    rng = random.Random(3)
    samples = [datetime(2026, 3, 29, 2, 30, 5), datetime(2026, 10, 25, 2, 30, 5)]  # DST edges
    samples += [datetime(2026, 1, 1) + (datetime(2027, 1, 1) - datetime(2026, 1, 1)) * rng.random()
                for _ in range(2000)]  # fmt: skip
    for moment in samples:
        text = moment.strftime(fmt)
        assert parser.parse(text) == reference(text, fmt, BERLIN), text


def test_odd_digits_get_strptimes_answer() -> None:
    parser = TimeParser("%Y%m%d%H%M%S", BERLIN)
    for text in ("2026111710", "202611171000"):
        assert parser.parse(text) == reference(text, "%Y%m%d%H%M%S", BERLIN)


def test_other_formats_use_strptime() -> None:
    parser = TimeParser("%Y-%m-%dT%H:%M:%S%z", BERLIN)
    assert parser._fast is None
    assert parser.parse("2026-11-17T10:00:00+0100") == 1_794_906_000


@pytest.mark.parametrize("text", ["2026-02-30 10:00:00", "2026-11-17 10:61:00", "17/11/2026", ""])
def test_not_a_time(text: str) -> None:
    with pytest.raises(ValueError):
        TimeParser("%Y-%m-%d %H:%M:%S", BERLIN).parse(text)
