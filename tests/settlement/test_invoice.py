"""Invoice CSV: good files parse to integers, bad ones are refused line by line."""

from __future__ import annotations

import pytest

from settlement.catalog import load_settlement_catalog
from settlement.errors import InputFileError
from settlement.invoice import InvoiceLine, parse_amount, parse_invoice, render_invoice
from settlement.model import HostMno

HEADER = "day,service,zone,quantity,unit,amount,currency\n"


@pytest.fixture(scope="module")
def mno() -> HostMno:
    found = load_settlement_catalog("examples/catalog").mno("telco-de")
    assert found is not None
    return found


def test_parses_lines(mno: HostMno) -> None:
    text = (
        HEADER
        + "2026-01-01,data,home,1048576,byte,0.002,EUR\n2026-01-02,sms,eu,3,event,-0.15,EUR\n"
    )
    invoice = parse_invoice(text, "inv.csv", mno, "2026-01")
    assert invoice.lines == (
        InvoiceLine(2, "2026-01-01", "data", "home", 1048576, 2000),
        InvoiceLine(3, "2026-01-02", "sms", "eu", 3, -150000),
    )
    assert invoice.total == -148000


def test_columns_in_any_order(mno: HostMno) -> None:
    text = (
        "currency,amount,unit,quantity,zone,service,day\nEUR,1.5,second,60,home,voice,2026-01-31\n"
    )
    (line,) = parse_invoice(text, "x.csv", mno, "2026-01").lines
    assert (line.service, line.quantity, line.amount) == ("voice", 60, 1_500_000)


def test_every_problem_is_located(mno: HostMno) -> None:
    text = HEADER + (
        "2026-02-01,data,home,1,byte,1,EUR\n"  # 2: other month
        "2026-01-01,fax,home,1,byte,1,EUR\n"  # 3: service
        "2026-01-01,data,mars,1,byte,1,EUR\n"  # 4: zone
        "2026-01-01,voice,home,1,byte,1,EUR\n"  # 5: unit
        "2026-01-01,sms,home,1.5,event,1,EUR\n"  # 6: quantity
        "2026-01-01,sms,home,1,event,0.1234567,EUR\n"  # 7: amount
        "2026-01-01,sms,home,1,event,1,USD\n"  # 8: currency
        "2026-01-01,sms,home,1,event,1,EUR\n"  # 9: ok
        "2026-01-01,sms,home,2,event,1,EUR\n"  # 10: duplicate cell
        "2026-01-01,sms,home\n"  # 11: short row
    )
    with pytest.raises(InputFileError) as caught:
        parse_invoice(text, "inv.csv", mno, "2026-01")
    got = [str(p).split(": ")[0] + ": " + str(p).split(": ")[1] for p in caught.value.problems]
    assert got == [
        "inv.csv:2: day",
        "inv.csv:3: service",
        "inv.csv:4: zone",
        "inv.csv:5: unit",
        "inv.csv:6: quantity",
        "inv.csv:7: amount",
        "inv.csv:8: currency",
        "inv.csv:10: (row)",
        "inv.csv:11: (row)",
    ]
    assert "already invoiced at line 9" in str(caught.value.problems[7])


def test_bad_header(mno: HostMno) -> None:
    with pytest.raises(InputFileError, match=r"inv.csv:1: \(header\): missing currency"):
        parse_invoice("day,service,zone,quantity,unit,amount\n", "inv.csv", mno, "2026-01")
    with pytest.raises(InputFileError, match="empty file"):
        parse_invoice("", "inv.csv", mno, "2026-01")


def test_round_trip(mno: HostMno) -> None:
    lines = [
        InvoiceLine(2, "2026-01-03", "voice", "eu", 120, 80_000),
        InvoiceLine(3, "2026-01-04", "sms", "home", 1, -10_000),
    ]
    text = render_invoice(lines, "EUR", dict(mno.services))
    assert parse_invoice(text, "r.csv", mno, "2026-01").lines == tuple(lines)


@pytest.mark.parametrize(
    ("text", "micro"), [("0.000001", 1), ("-2.5", -2_500_000), ("7", 7_000_000)]
)
def test_amounts(text: str, micro: int) -> None:
    assert parse_amount(text) == micro
