"""The subscriber import file, read without I/O: bytes in, rows (or the reason the whole file
is refused) out. What each row means (a valid number, IMSI, amount) is checked when the job runs,
row by row, so one bad row is a reject with its line number, not a refused file.

The file is UTF-8 CSV (a byte-order mark is tolerated) with a header line naming its columns:
``subscriber`` (required), ``imsi``, ``balance`` and ``credit_limit`` (optional, decimal
strings in the tenant's currency), in any order. Blank lines are skipped but keep their line
numbers, so a reject's line is the line an editor shows.
"""

from __future__ import annotations

import csv
import io

import msgspec

COLUMNS = ("subscriber", "imsi", "balance", "credit_limit")
REQUIRED = ("subscriber",)
FIELD_CHARS_MAX = 64  # longer than any number, IMSI or amount the row could hold
LINE_CHARS_MAX = 1024


class FileRefused(ValueError):
    """The upload as a whole is not an import file (or is over a limit); the message says why."""


class ImportRow(msgspec.Struct, frozen=True):
    line: int  # 1 is the header
    subscriber: str = ""
    imsi: str | None = None
    balance: str = "0"
    credit_limit: str = "0"
    problem: str = ""  # set when the line cannot even be read as a row: a reject as it stands


def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"not UTF-8 (byte {exc.start})") from None
    return text.removeprefix("\ufeff")


def _header(names: list[str]) -> list[str]:
    columns = [name.strip().lower() for name in names]
    unknown = [name for name in columns if name not in COLUMNS]
    if unknown:
        raise FileRefused(
            f"line 1: unknown column(s) {', '.join(map(repr, unknown))} "
            f"(columns: {', '.join(COLUMNS)})"
        )
    if len(set(columns)) != len(columns):
        raise FileRefused("line 1: a column is named twice")
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise FileRefused(f"line 1: the header needs a {missing[0]!r} column")
    return columns


def _row(line: int, columns: list[str], values: list[str]) -> ImportRow:
    if len(values) != len(columns):
        return ImportRow(line, problem=f"{len(values)} fields, the header has {len(columns)}")
    fields = {name: value.strip() for name, value in zip(columns, values, strict=True)}
    for name, value in fields.items():
        if len(value) > FIELD_CHARS_MAX:
            return ImportRow(line, problem=f"{name}: at most {FIELD_CHARS_MAX} characters")
    if not fields["subscriber"]:
        return ImportRow(line, problem="subscriber: empty")
    return ImportRow(
        line,
        subscriber=fields["subscriber"],
        imsi=fields.get("imsi") or None,
        balance=fields.get("balance") or "0",
        credit_limit=fields.get("credit_limit") or "0",
    )


def parse(data: bytes, *, rows_max: int) -> list[ImportRow]:
    """Every data row of the file, in order; ``FileRefused`` for an empty or malformed file, a
    missing or unknown column, a line over ``LINE_CHARS_MAX``, or more than ``rows_max`` rows."""
    text = _text(data)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise FileRefused("empty file: expected a header line such as 'subscriber,imsi,balance'")
    for number, line in enumerate(lines, start=1):
        if len(line) > LINE_CHARS_MAX:
            raise FileRefused(f"line {number}: longer than {LINE_CHARS_MAX} characters")
    try:
        records = list(csv.reader(io.StringIO("\n".join(lines)), strict=True))
    except csv.Error as exc:
        raise FileRefused(f"not CSV: {exc}") from None
    if len(records) != len(lines):
        raise FileRefused("a quoted field spans lines: one subscriber per line")
    columns = _header(records[0])
    rows = [
        _row(number, columns, values)
        for number, values in enumerate(records[1:], start=2)
        if any(value.strip() for value in values)
    ]
    if not rows:
        raise FileRefused("no rows after the header")
    if len(rows) > rows_max:
        raise FileRefused(f"{len(rows)} rows: at most {rows_max} per import (api.import_rows_max)")
    return rows


def rejects_csv(rejects: list[tuple[int, str]]) -> str:
    """The rejects report: ``line,reason``, one row per rejected line, in line order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("line", "reason"))
    writer.writerows(sorted(rejects))
    return out.getvalue()
