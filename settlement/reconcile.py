"""Reconciliation of our usage against the MNO's invoice, and the period identity.

Cell level: our aggregate per (day, service, zone) against the invoice line of that cell.
Where the MNO also sent record-level detail for a service, the invoice cells of that service
are compared with the detail's own totals instead, and the detail is matched to our records
one by one (``settlement.matching``, or the same rules in SQL at scale).

Every micro-unit of the invoice ends up in exactly one place:

    invoice total = Σ allocated (our records, per tenant)
                  + unallocated (differences that resolve to no tenant)
                  + disputed    (differences over tolerance, per tenant)
                  + tolerated   (differences within tolerance, per tenant)

With zero tolerances ``tolerated`` is 0 and this is the identity of the issue: invoice total =
Σ allocated + unallocated + disputed. A cell difference shared by several tenants is split in
proportion to their own amounts by the largest-remainder method, so the parts add up exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from enum import StrEnum

import msgspec

from settlement.invoice import Invoice
from settlement.model import HostMno, Tolerance

UNALLOCATED = ""  # the owner of a difference that resolves to no tenant


def owner_label(owner: str) -> str:
    return owner or "unallocated"


class Kind(StrEnum):
    MATCHED = "matched"  # agrees within tolerance (a tolerated difference may remain)
    MISSING_OURS = "missing_ours"  # the MNO counted usage we have no record of
    MISSING_THEIRS = "missing_theirs"  # we have usage the MNO did not count
    QUANTITY_MISMATCH = "quantity_mismatch"
    PRICE_MISMATCH = "price_mismatch"  # same quantity (within tolerance), different money


class OurCell(msgspec.Struct, frozen=True):
    tenant: str
    day: str
    service: str
    zone: str
    quantity: int
    amount: int  # wholesale micro-units: the sum of the records' wholesale


class TheirCell(msgspec.Struct, frozen=True):
    """The totals of the MNO's detail records of one cell."""

    day: str
    service: str
    zone: str
    quantity: int
    amount: int


class Discrepancy(msgspec.Struct, frozen=True):
    level: str  # "cell" or "record"
    kind: Kind
    owner: str  # tenant, or UNALLOCATED
    day: str
    service: str
    zone: str
    our_quantity: int
    their_quantity: int
    our_amount: int
    their_amount: int
    delta: int  # their amount - our amount attributed to ``owner`` (this row's share)
    disputable: bool  # over tolerance
    evidence: str = ""  # invoice line(s) "file:line", record ids


def classify(
    tolerance: Tolerance,
    has_ours: bool,
    has_theirs: bool,
    our_quantity: int,
    their_quantity: int,
    our_amount: int,
    their_amount: int,
) -> Kind:
    if not has_ours:
        return Kind.MISSING_OURS
    if not has_theirs:
        return Kind.MISSING_THEIRS
    if not tolerance.quantity_ok(our_quantity, their_quantity):
        return Kind.QUANTITY_MISMATCH
    if not tolerance.money_ok(our_amount, their_amount):
        return Kind.PRICE_MISMATCH
    return Kind.MATCHED


def split_exact(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to non-negative ``weights``; the parts sum to ``total``.

    Largest remainder: each part is floored, the leftover units go to the largest remainders
    (ties to the earlier weight), so the split is deterministic and exact.
    """
    if not weights:
        raise ValueError("nothing to split over")
    whole = sum(weights)
    if whole <= 0:
        parts = [0] * len(weights)
        parts[0] = total
        return parts
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    floors = [magnitude * w // whole for w in weights]
    remainders = [magnitude * w % whole for w in weights]
    leftover = magnitude - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:leftover]:
        floors[i] += 1
    return [sign * p for p in floors]


CellKey = tuple[str, str, str]  # day, service, zone


def reconcile_cells(
    mno: HostMno,
    ours: Iterable[OurCell],
    invoice: Invoice,
    covered: frozenset[str] = frozenset(),
    their_cells: Iterable[TheirCell] = (),
) -> list[Discrepancy]:
    """Cell-level discrepancies (exact agreement produces no row).

    Services in ``covered`` have record-level detail: their invoice cells are compared with
    ``their_cells`` (the detail's totals) and any residue is the MNO's own inconsistency,
    owned by no tenant; our records of those services are settled by record matching.
    """
    by_cell: dict[CellKey, dict[str, OurCell]] = defaultdict(dict)
    for cell in ours:
        if cell.service in covered:
            continue
        key = (cell.day, cell.service, cell.zone)
        if cell.tenant in by_cell[key]:
            raise ValueError(f"our cell {key} of {cell.tenant} is given twice")
        by_cell[key][cell.tenant] = cell
    invoiced = {(line.day, line.service, line.zone): line for line in invoice.lines}
    detail: dict[CellKey, TheirCell] = {}
    for their in their_cells:
        detail[(their.day, their.service, their.zone)] = their
    out: list[Discrepancy] = []
    keys = set(by_cell) | set(invoiced) | set(detail)
    for key in sorted(keys):
        day, service, zone = key
        line = invoiced.get(key)
        evidence = f"{invoice.file}:{line.line}" if line is not None else ""
        inv_q = line.quantity if line is not None else 0
        inv_a = line.amount if line is not None else 0
        tolerance = mno.tolerance(service)
        if service in covered:
            totals = detail.get(key)
            d_q = totals.quantity if totals is not None else 0
            d_a = totals.amount if totals is not None else 0
            if inv_a == d_a and inv_q == d_q:
                continue
            kind = classify(tolerance, totals is not None, line is not None, d_q, inv_q, d_a, inv_a)
            out.append(
                Discrepancy(
                    "cell", kind, UNALLOCATED, day, service, zone, d_q, inv_q, d_a, inv_a,
                    inv_a - d_a, kind is not Kind.MATCHED, evidence + " (invoice vs detail)",
                )
            )  # fmt: skip
            continue
        tenants = by_cell.get(key, {})
        our_q = sum(c.quantity for c in tenants.values())
        our_a = sum(c.amount for c in tenants.values())
        delta = inv_a - our_a
        kind = classify(tolerance, bool(tenants), line is not None, our_q, inv_q, our_a, inv_a)
        if delta == 0 and kind is Kind.MATCHED:
            continue
        disputable = kind is not Kind.MATCHED
        if not tenants:
            out.append(
                Discrepancy(
                    "cell", kind, UNALLOCATED, day, service, zone, 0, inv_q, 0, inv_a, delta,
                    disputable, evidence,
                )
            )  # fmt: skip
            continue
        names = sorted(tenants)
        weights = [tenants[t].amount for t in names]
        if sum(weights) <= 0:
            weights = [tenants[t].quantity for t in names]
        for name, part in zip(names, split_exact(delta, weights), strict=True):
            mine = tenants[name]
            out.append(
                Discrepancy(
                    "cell", kind, name, day, service, zone, mine.quantity, inv_q, mine.amount,
                    inv_a, part, disputable, evidence,
                )
            )  # fmt: skip
    return out


class RateCheck(msgspec.Struct, frozen=True):
    """An invoice line whose amount is not its quantity at the price list (within tolerance)."""

    line: int
    day: str
    service: str
    zone: str
    quantity: int
    invoiced: int
    expected: int


def list_price(quantity: int, amount: int, per: int) -> int:
    """``quantity`` at ``amount`` per ``per`` units, rounded half up to the micro-unit."""
    return (2 * quantity * amount + per) // (2 * per)


def check_rates(mno: HostMno, invoice: Invoice) -> list[RateCheck]:
    out: list[RateCheck] = []
    for line in invoice.lines:
        price = mno.price(line.service, line.zone)
        if price is None:
            continue
        expected = list_price(line.quantity, price.amount, price.per)
        if not mno.tolerance(line.service).money_ok(expected, line.amount):
            out.append(
                RateCheck(
                    line.line, line.day, line.service, line.zone, line.quantity,
                    line.amount, expected,
                )
            )  # fmt: skip
    return out


class Identity(msgspec.Struct, frozen=True):
    invoice_total: int
    allocated: dict[str, int]  # tenant → Σ wholesale of its records
    unallocated: int
    disputed: int
    tolerated: int

    @property
    def allocated_total(self) -> int:
        return sum(self.allocated.values())

    @property
    def residual(self) -> int:
        """What no term explains; 0 when the identity holds."""
        return self.invoice_total - (
            self.allocated_total + self.unallocated + self.disputed + self.tolerated
        )

    @property
    def balanced(self) -> bool:
        return self.residual == 0

    def describe(self, money: object = str) -> str:
        fmt = money if callable(money) else str
        return (
            f"invoice {fmt(self.invoice_total)} = allocated {fmt(self.allocated_total)} "
            f"+ unallocated {fmt(self.unallocated)} + disputed {fmt(self.disputed)} "
            f"+ tolerated {fmt(self.tolerated)}"
            + ("" if self.balanced else f"  -- DOES NOT ADD UP by {fmt(self.residual)}")
        )


def compute_identity(
    invoice_total: int,
    allocated: dict[str, int],
    differences: Iterable[tuple[str, bool, int]],
) -> Identity:
    """``differences``: (owner, over tolerance, delta) of every discrepancy, cell and record."""
    unallocated = disputed = tolerated = 0
    for owner, over, delta in differences:
        if owner == UNALLOCATED:
            unallocated += delta
        elif over:
            disputed += delta
        else:
            tolerated += delta
    return Identity(invoice_total, dict(allocated), unallocated, disputed, tolerated)
