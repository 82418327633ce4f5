"""Start times → epoch seconds, fast: a CDR file has one per line.

``datetime.strptime`` plus a zone conversion costs ~20 µs a line. Formats made only of
``%Y %m %d %H %M %S`` and literal text (nearly every MNO's) are compiled to one regular
expression, and the local → UTC offset is looked up once per (date, hour): zones change offset
on whole hours, so every second of one local hour has that hour's offset, the same answer as
``strptime(...).replace(tzinfo=zone)`` (fold 0: an ambiguous hour is read as the first).
Other formats (``%z``, ``%b``, ``%y``, ...) go through ``strptime``.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

HOUR_MEMO_MAX = 8192
# Two digits exactly: the canonical form goes the fast way; anything else (one-digit fields,
# odd text) goes through strptime, so every answer is strptime's.
_FIELDS = {"Y": r"(\d{4})", "m": r"(\d{2})", "d": r"(\d{2})", "H": r"(\d{2})",
           "M": r"(\d{2})", "S": r"(\d{2})"}  # fmt: skip
_WIDTHS = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
TIME_FIELDS = tuple(_FIELDS)
_DIRECTIVE = re.compile(r"%(.)")
FastFormat = tuple[re.Pattern[str], tuple[str, ...], str]
"""The compiled format, its fields in order, and the same pattern for RE2 (pyarrow), with
named groups and each literal character in a class of its own."""


def compile_format(fmt: str) -> FastFormat | None:
    """``fmt`` as one regular expression, or None when it is not made only of the six
    fields and literal text."""
    parts: list[str] = []
    re2: list[str] = []
    order: list[str] = []
    position = 0
    for match in _DIRECTIVE.finditer(fmt):
        literal = fmt[position : match.start()]
        parts.append(re.escape(literal))
        re2.append(_re2_literal(literal))
        code = match.group(1)
        if code not in _FIELDS or code in order:
            return None
        parts.append(_FIELDS[code])
        re2.append(f"(?P<{code}>[0-9]{{{_WIDTHS[code]}}})")
        order.append(code)
        position = match.end()
    parts.append(re.escape(fmt[position:]))
    re2.append(_re2_literal(fmt[position:]))
    if sorted(order) != sorted(_FIELDS):
        return None
    return re.compile("".join(parts)), tuple(order), "".join(re2)


def _re2_literal(text: str) -> str:
    return "".join(
        c if c.isascii() and c.isalnum() else "[" + ("\\" + c if c in "]\\^-[" else c) + "]"
        for c in text
    )


class TimeParser:
    """``parse(text)`` → epoch seconds of a start time written in ``fmt`` in ``zone``;
    ``ValueError`` when the text does not match or is not a date."""

    def __init__(self, fmt: str, zone: ZoneInfo) -> None:
        self.fmt = fmt
        self.zone = zone
        self._fast = compile_format(fmt)
        self._hours: dict[tuple[int, int, int, int], int] = {}

    def parse(self, text: str) -> int:
        if self._fast is None:
            return self._slow(text)
        pattern, order, _ = self._fast
        match = pattern.fullmatch(text)
        if match is None:
            return self._slow(text)
        values = dict(zip(order, map(int, match.groups()), strict=True))
        minute, second = values["M"], values["S"]
        if minute > 59 or second > 59:
            raise ValueError(f"{text!r}: minute or second out of range")
        key = (values["Y"], values["m"], values["d"], values["H"])
        start = self._hours.get(key)
        if start is None:
            start = int(datetime(*key, tzinfo=self.zone).timestamp())  # ValueError if no date
            if len(self._hours) >= HOUR_MEMO_MAX:
                self._hours.clear()
            self._hours[key] = start
        return start + minute * 60 + second

    def _slow(self, text: str) -> int:
        moment = datetime.strptime(text, self.fmt)
        if moment.tzinfo is None:
            # Local wall time of the MNO; an ambiguous hour (DST end) is read as the first.
            moment = moment.replace(tzinfo=self.zone)
        return int(moment.timestamp())
