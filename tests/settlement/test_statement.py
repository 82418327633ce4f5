"""Statements: golden HTML text and CSV, a PDF that renders, exact money formatting."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from settlement.model import Contract, Markup
from settlement.settle import settle_mvno
from settlement.statement import (
    DisputeLine,
    MnoSection,
    StatementView,
    UsageLine,
    money,
    percent,
    render_csv,
    render_html,
    render_pdf,
)

GOLDEN = Path(__file__).with_name("golden")
UPDATE = os.environ.get("SETTLE_GOLDEN_UPDATE") == "1"

CONTRACT = Contract(
    tenant="acme",
    currency="EUR",
    host_mnos=("telco-de",),
    margin_ppm=125_000,
    markups=(Markup("voice", 2000, 60),),
    platform_fee=150_000,
    minimum_commitment=250_000_000,
)


def view() -> StatementView:
    lines = (
        UsageLine("data", "byte", 5_368_709_120, 1200, 10_240_000),
        UsageLine("sms", "event", 310, 310, 3_100_000),
        UsageLine("voice", "second", 186_000, 2100, 37_200_123),
    )
    section = MnoSection("telco-de", "Telco Deutschland GmbH", "approved", lines)
    figures = settle_mvno(
        CONTRACT,
        "2026-01",
        {"telco-de": section.wholesale},
        {"data": 5_368_709_120, "sms": 310, "voice": 186_000},
        87,
    )
    disputes = (DisputeLine(3, "telco-de", "missing_ours", 4, 48_000, "accepted", 40_000),)
    return StatementView(
        tenant="acme",
        month="2026-01",
        currency="EUR",
        issued_at="2026-02-03T10:00:00+00:00",
        margin_ppm=CONTRACT.margin_ppm,
        platform_fee_each=CONTRACT.platform_fee,
        minimum_commitment=CONTRACT.minimum_commitment,
        sections=(section,),
        settlement=figures,
        disputes=disputes,
    )


def html_text(html: str) -> str:
    """The visible text of the HTML, one line per table row or paragraph."""
    body = html.split("<body>", 1)[1]
    body = re.sub(r"</(tr|p|h1|h2)>", "\n", body)
    body = re.sub(r"<[^>]+>", " ", body)
    lines = [" ".join(line.split()) for line in body.splitlines()]
    return "\n".join(line for line in lines if line) + "\n"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_golden_html_text() -> None:
    _golden("acme-2026-01.html.txt", html_text(render_html(view())))


def test_golden_csv() -> None:
    _golden("acme-2026-01.csv", render_csv(view()))


def test_figures_add_up_on_the_statement() -> None:
    s = view().settlement
    assert s.amount_due == (
        s.wholesale + s.margin + sum(s.markups.values()) + s.platform_fee
        + s.commitment_shortfall + s.rejected_disputes
    )  # fmt: skip


def test_pdf_renders() -> None:
    pdf = render_pdf(render_html(view()))
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 2000


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "0.00"),
        (12_500_000, "12.50"),
        (2_345, "0.002345"),
        (-1, "-0.000001"),
        (10**12, "1,000,000.00"),
    ],
)
def test_money(micro: int, text: str) -> None:
    assert money(micro) == text


def test_percent() -> None:
    assert percent(125_000) == "12.5 %"
    assert percent(90_000) == "9 %"
