"""Record-level matching of the MNO's detail records with ours: the reference implementation.

The store does the same in SQL at scale (``usage/sql/settle_match.sql``); tests run both on
the same data and require identical results. The rules, stated once:

- a candidate pair has the same IMSI and service and start times at most ``window_s`` apart;
- pairs are taken greedily in the order (|Δstart|, |Δquantity|, their id, our id), each record
  in at most one pair. SQL reaches the same set by rounds of "mutual best" pairs: with a strict
  order every mutual-best pair is one greedy takes, and the least remaining pair always is one.
  The store's "our id" is the record's identity text, so ties break the same way every run;
- a pair is a quantity mismatch beyond the service's quantity tolerance, else a price mismatch
  beyond its money tolerance, else matched (any money difference left is tolerated);
- a record of theirs with no pair is missing on our side, owned by the tenant its IMSI belongs
  to (our subscriber ranges) or unallocated; a record of ours with no pair is missing on theirs.

Every record appears in exactly one result, so Σ delta = Σ their amounts − Σ our amounts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import msgspec

from settlement.model import Tolerance
from settlement.reconcile import Kind

MATCH_RECORDS_MAX = 1_000_000  # the pure reference is for tests and small files


class OurRecord(msgspec.Struct, frozen=True):
    id: int
    tenant: str
    imsi: str
    service: str
    start_s: int
    quantity: int
    amount: int


class TheirRecord(msgspec.Struct, frozen=True):
    id: int
    imsi: str
    service: str
    start_s: int
    quantity: int
    amount: int


class RecordResult(msgspec.Struct, frozen=True):
    kind: Kind
    owner: str
    our_id: int | None
    their_id: int | None
    delta: int  # their amount - our amount
    disputable: bool


def match_records(
    ours: list[OurRecord],
    theirs: list[TheirRecord],
    window_s: int,
    tolerances: dict[str, Tolerance],
    owner_of_imsi: Callable[[str], str],
) -> list[RecordResult]:
    if len(ours) + len(theirs) > MATCH_RECORDS_MAX:
        raise ValueError(f"more than {MATCH_RECORDS_MAX} records: use the store's SQL matching")
    index: dict[tuple[str, str], list[OurRecord]] = defaultdict(list)
    for record in ours:
        index[(record.imsi, record.service)].append(record)
    candidates: list[tuple[int, int, int, int, TheirRecord, OurRecord]] = []
    for their in theirs:
        for our in index.get((their.imsi, their.service), ()):
            gap = abs(their.start_s - our.start_s)
            if gap <= window_s:
                candidates.append(
                    (gap, abs(their.quantity - our.quantity), their.id, our.id, their, our)
                )
    candidates.sort(key=lambda c: c[:4])
    taken_ours: set[int] = set()
    taken_theirs: set[int] = set()
    out: list[RecordResult] = []
    for _gap, _dq, their_id, our_id, their, our in candidates:
        if their_id in taken_theirs or our_id in taken_ours:
            continue
        taken_theirs.add(their_id)
        taken_ours.add(our_id)
        tolerance = tolerances.get(our.service, Tolerance())
        if not tolerance.quantity_ok(our.quantity, their.quantity):
            kind = Kind.QUANTITY_MISMATCH
        elif not tolerance.money_ok(our.amount, their.amount):
            kind = Kind.PRICE_MISMATCH
        else:
            kind = Kind.MATCHED
        out.append(
            RecordResult(
                kind, our.tenant, our_id, their_id, their.amount - our.amount,
                kind is not Kind.MATCHED,
            )
        )  # fmt: skip
    for their in theirs:
        if their.id not in taken_theirs:
            out.append(
                RecordResult(
                    Kind.MISSING_OURS, owner_of_imsi(their.imsi), None, their.id, their.amount,
                    True,
                )
            )  # fmt: skip
    for our in ours:
        if our.id not in taken_ours:
            out.append(
                RecordResult(Kind.MISSING_THEIRS, our.tenant, our.id, None, -our.amount, True)
            )
    return out
