"""The host MNO's invoice as CSV: one line per day x service x zone, checked against the MNO's
catalog entry; every problem is reported as ``file:line: field: what is wrong``.

Format (header required, columns in any order, extra columns refused)::

    day,service,zone,quantity,unit,amount,currency
    2026-01-01,data,home,52428800,byte,0.100000,EUR

``amount`` is a decimal in ``currency`` (at most 6 decimals; negative for a credit line),
``quantity`` a whole number of ``unit`` (byte, second, event), which must be the service's.
A (day, service, zone) cell appears at most once.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal, InvalidOperation

import msgspec

from settlement.errors import InputFileError
from settlement.model import HostMno
from tariffs.errors import Problem
from tariffs.numbers import MICRO_PER_UNIT, MONEY_MICRO_MAX

INVOICE_BYTES_MAX = 256 * 1024 * 1024
INVOICE_LINES_MAX = 2_000_000
PROBLEMS_MAX = 100
QUANTITY_MAX = 2**62
COLUMNS = ("day", "service", "zone", "quantity", "unit", "amount", "currency")
_AMOUNT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,6})?")
_QUANTITY = re.compile(r"[0-9]{1,19}")


class InvoiceLine(msgspec.Struct, frozen=True):
    line: int  # in the file, for the evidence of a dispute
    day: str  # YYYY-MM-DD in the MNO's time zone
    service: str
    zone: str
    quantity: int
    amount: int  # micro-units


class Invoice(msgspec.Struct, frozen=True):
    file: str
    lines: tuple[InvoiceLine, ...]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


def parse_amount(text: str) -> int:
    """A decimal with at most 6 decimals → micro-units (negative allowed: credit lines)."""
    if not _AMOUNT.fullmatch(text):
        raise ValueError(f"{text!r} is not an amount (digits, at most 6 decimals)")
    try:
        micro = Decimal(text) * MICRO_PER_UNIT
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{text!r} is not an amount") from exc
    if abs(micro) > MONEY_MICRO_MAX:
        raise ValueError(f"{text} is too large")
    return int(micro)


def month_of_day(text: str) -> str:
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from exc
    if len(text) != 10:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)")
    return f"{day.year:04d}-{day.month:02d}"


def parse_invoice(text: str, file: str, mno: HostMno, month: str) -> Invoice:
    """Parse and check; raises InputFileError listing the problems (at most PROBLEMS_MAX)."""
    problems: list[Problem] = []
    if len(text) > INVOICE_BYTES_MAX:
        raise InputFileError([Problem(file, 0, "(file)", f"larger than {INVOICE_BYTES_MAX} bytes")])
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(rows)
    except StopIteration:
        raise InputFileError([Problem(file, 1, "(header)", "empty file")]) from None
    header = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    extra = [h for h in header if h not in COLUMNS]
    if missing or extra or len(set(header)) != len(header):
        why = []
        if missing:
            why.append("missing " + ", ".join(missing))
        if extra:
            why.append("unknown " + ", ".join(extra))
        if len(set(header)) != len(header):
            why.append("a column is named twice")
        raise InputFileError(
            [Problem(file, 1, "(header)", "; ".join(why) + f" (expected {','.join(COLUMNS)})")]
        )
    index = {name: header.index(name) for name in COLUMNS}
    seen: dict[tuple[str, str, str], int] = {}
    zones = {z.name for z in mno.zones}
    out: list[InvoiceLine] = []
    for number, row in enumerate(rows, start=2):
        if len(problems) >= PROBLEMS_MAX:
            problems.append(Problem(file, number, "(file)", "too many problems; stopped here"))
            break
        if not row or row == [""]:
            continue
        if len(out) >= INVOICE_LINES_MAX:
            problems.append(Problem(file, number, "(file)", f"more than {INVOICE_LINES_MAX} lines"))
            break
        if len(row) != len(header):
            problems.append(
                Problem(file, number, "(row)", f"{len(row)} fields, the header has {len(header)}")
            )
            continue
        get = {name: row[i].strip() for name, i in index.items()}
        start = len(problems)

        def bad(field: str, message: str, number: int = number) -> None:
            problems.append(Problem(file, number, field, message))

        try:
            if month_of_day(get["day"]) != month:
                bad("day", f"{get['day']} is not in the period's month {month}")
        except ValueError as exc:
            bad("day", str(exc))
        service, zone, unit = get["service"], get["zone"], get["unit"]
        if service not in mno.services:
            bad("service", f"{service!r} is not a service of host MNO {mno.id}")
        elif unit != mno.services[service]:
            bad("unit", f"{unit!r}: {service} is counted in {mno.services[service]}")
        if zone not in zones:
            bad("zone", f"{zone!r} is not a zone of host MNO {mno.id}")
        if get["currency"] != mno.currency:
            bad("currency", f"{get['currency']!r}: host MNO {mno.id} invoices in {mno.currency}")
        quantity = 0
        if not _QUANTITY.fullmatch(get["quantity"]) or int(get["quantity"]) > QUANTITY_MAX:
            bad("quantity", f"{get['quantity']!r} is not a whole number of units")
        else:
            quantity = int(get["quantity"])
        amount = 0
        try:
            amount = parse_amount(get["amount"])
        except ValueError as exc:
            bad("amount", str(exc))
        if len(problems) > start:
            continue
        key = (get["day"], service, zone)
        if key in seen:
            bad("(row)", f"{'/'.join(key)} is already invoiced at line {seen[key]}")
            continue
        seen[key] = number
        out.append(InvoiceLine(number, get["day"], service, zone, quantity, amount))
    if problems:
        raise InputFileError(problems)
    return Invoice(file, tuple(out))


def render_invoice(lines: list[InvoiceLine], currency: str, units: dict[str, str]) -> str:
    """The CSV text of ``lines`` (what the MNO would send); used by the demo and benchmarks."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for line in lines:
        whole, frac = divmod(abs(line.amount), MICRO_PER_UNIT)
        sign = "-" if line.amount < 0 else ""
        writer.writerow(
            (
                line.day,
                line.service,
                line.zone,
                line.quantity,
                units[line.service],
                f"{sign}{whole}.{frac:06d}",
                currency,
            )
        )
    return out.getvalue()
