"""An MVNO's monthly statement as data, and its renderings: HTML (a Jinja2 template in
``templates/``), CSV, and PDF (WeasyPrint, with Debian's DejaVu fonts).

The view is built from one tenant's figures only (the store queries them on that tenant's
database role), so nothing of a sibling MVNO can reach the file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import msgspec
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from settlement.model import PPM
from settlement.settle import MvnoSettlement
from tariffs.numbers import MICRO_PER_UNIT

TEMPLATES = Path(__file__).with_name("templates")


def money(micro: int) -> str:
    """Micro-units as an exact decimal with at least 2 decimals: 12500000 → ``12.50``."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO_PER_UNIT)
    digits = f"{frac:06d}".rstrip("0")
    return f"{sign}{whole:,}.{digits.ljust(2, '0')}"


def percent(ppm: int) -> str:
    whole, frac = divmod(ppm, PPM // 100)
    return f"{whole}.{frac:04d}".rstrip("0").rstrip(".") + " %"


class UsageLine(msgspec.Struct, frozen=True):
    service: str
    unit: str
    quantity: int
    records: int
    wholesale: int


class MnoSection(msgspec.Struct, frozen=True):
    mno: str
    mno_name: str
    period_state: str
    lines: tuple[UsageLine, ...]

    @property
    def wholesale(self) -> int:
        return sum(line.wholesale for line in self.lines)


class DisputeLine(msgspec.Struct, frozen=True):
    id: int
    mno: str
    kind: str
    count: int
    claimed: int
    state: str
    accepted: int | None


class StatementView(msgspec.Struct, frozen=True):
    tenant: str
    month: str
    currency: str
    issued_at: str  # ISO 8601, passed in (golden tests fix it)
    margin_ppm: int
    platform_fee_each: int
    minimum_commitment: int
    sections: tuple[MnoSection, ...]
    settlement: MvnoSettlement
    disputes: tuple[DisputeLine, ...]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["money"] = money
    env.filters["percent"] = percent
    return env


def render_html(view: StatementView) -> str:
    return _environment().get_template("statement.html.j2").render(v=view, s=view.settlement)


def render_csv(view: StatementView) -> str:
    """One row per figure: section, item, service, quantity, unit, amount (exact), currency."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    s = view.settlement
    cur = view.currency
    w.writerow(
        ("tenant", "month", "section", "item", "service", "quantity", "unit", "amount", "currency")
    )

    def row(section: str, item: str, service: str, qty: object, unit: str, amount: int) -> None:
        w.writerow(
            (view.tenant, view.month, section, item, service, qty, unit, _plain(amount), cur)
        )

    for section in view.sections:
        for line in section.lines:
            row("wholesale", section.mno, line.service, line.quantity, line.unit, line.wholesale)
    row("charges", "wholesale_total", "", "", "", s.wholesale)
    row("charges", "margin", "", "", "", s.margin)
    for service, amount in sorted(s.markups.items()):
        row("charges", "markup", service, "", "", amount)
    row("charges", "platform_fee", "", s.active_subscribers, "subscriber", s.platform_fee)
    row("charges", "commitment_shortfall", "", "", "", s.commitment_shortfall)
    row("charges", "rejected_disputes", "", "", "", s.rejected_disputes)
    row("charges", "amount_due", "", "", "", s.amount_due)
    for d in view.disputes:
        row("dispute", f"{d.id}:{d.mno}:{d.kind}:{d.state}", "", d.count, "records", d.claimed)
    return out.getvalue()


def _plain(micro: int) -> str:
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO_PER_UNIT)
    return f"{sign}{whole}.{frac:06d}"


def render_pdf(html: str) -> bytes:
    """The HTML as PDF. WeasyPrint is imported here: only statements need Pango."""
    from weasyprint import HTML

    pdf = HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    assert isinstance(pdf, bytes)
    return pdf
