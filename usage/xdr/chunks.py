"""One chunk of lines → rejects and rated records, in line order, the fast rows by columns.

The steps are the one-line-at-a-time ones (``RecordBuilder.build``, the in-file duplicate
check, ``XdrRater.resolve`` / ``rate``) and every row leaves with the answer they give; rows
the vector steps do not take (``usage.xdr.vectors``, ``usage.xdr.batchrate``) go through those
scalar steps themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from usage.xdr.batchrate import BatchRater, RatedColumns
from usage.xdr.columns import Chunk
from usage.xdr.idset import IdSet
from usage.xdr.parse import RawLine
from usage.xdr.rate import RatedRecord, XdrRater
from usage.xdr.records import RecordBuilder, XdrRecord
from usage.xdr.rejects import Reason, Rejected
from usage.xdr.vectors import ColumnBuilder, Columns

UNRESOLVED = "-"


@dataclass
class Reject:
    line: int
    tenant: str
    error: Rejected
    text: str


@dataclass
class ChunkOutcome:
    """What became of a chunk's lines: ``rejects`` and ``scalar`` (records rated one at a
    time, with their line's text) each in line order; the rows rated by columns are
    ``cols`` / ``rated`` (``rated.fast``)."""

    chunk: Chunk
    cols: Columns
    rated: RatedColumns
    rejects: list[Reject] = field(default_factory=list)
    scalar: list[tuple[RatedRecord, str]] = field(default_factory=list)


class LineRater:
    """The scalar steps for one line: build, duplicate check, resolve, rate."""

    def __init__(self, builder: RecordBuilder, rater: XdrRater) -> None:
        self.builder = builder
        self.rater = rater

    def build(self, raw: RawLine) -> XdrRecord | Reject:
        try:
            return self.builder.build(raw)
        except Rejected as error:
            return Reject(raw.line, UNRESOLVED, error, raw.text)

    def rate(self, record: XdrRecord, text: str) -> RatedRecord | Reject:
        tenant = UNRESOLVED
        try:
            ref = self.rater.resolve(record)
            tenant = ref.tenant
            return self.rater.rate(record, ref)
        except Rejected as error:
            return Reject(record.line, tenant, error, text)

    def line(self, raw: RawLine, ids: IdSet) -> RatedRecord | Reject:
        record = self.build(raw)
        if isinstance(record, Reject):
            return record
        if not ids.add(record.record_id):
            return _duplicate(record.line, record.record_id, raw.text)
        return self.rate(record, raw.text)


class ChunkRater:
    """Rates whole chunks of one mapping's file (memos live as long as it)."""

    def __init__(self, builder: RecordBuilder, rater: XdrRater) -> None:
        self.lines = LineRater(builder, rater)
        self.columns = ColumnBuilder(builder.mapping, builder)
        self.batch = BatchRater(rater, self.columns.rules)

    def rate(self, chunk: Chunk, ids: IdSet) -> ChunkOutcome:
        cols, slow = self.columns.build(chunk)
        first = chunk.first_line
        raws = list(chunk.others)
        slow_rows = np.flatnonzero(slow).tolist()
        if slow_rows:
            taken = pa.array(slow_rows, pa.int64())
            values = {
                name: [value] * len(slow_rows) if isinstance(value, str)
                else value.take(taken).to_pylist()
                for name, value in chunk.columns.items()
            }  # fmt: skip
            for k, j in enumerate(slow_rows):
                row = int(chunk.rows[j])
                fields = {name: column[k] for name, column in values.items()}
                raws.append(RawLine(first + row, chunk.text(row), fields))
        rejects: list[Reject] = []
        built: list[tuple[XdrRecord, str]] = []
        for raw in raws:
            made = self.lines.build(raw)
            if isinstance(made, Reject):
                rejects.append(made)
            else:
                built.append((made, raw.text))
        # The duplicate check in line order over every record built, fast and scalar alike.
        lines = np.concatenate(
            [first + cols.rows, np.array([r.line for r, _ in built], dtype=np.int64)]
        )
        id_list = cols.record_id + [r.record_id for r, _ in built]
        order = np.argsort(lines, kind="stable")
        new_sorted = ids.add_many([id_list[i] for i in order.tolist()])
        new = np.empty(len(order), dtype=np.bool_)
        new[order] = new_sorted
        fast_new, built_new = new[: len(cols)], new[len(cols) :].tolist()
        for i in np.flatnonzero(~fast_new).tolist():
            row = int(cols.rows[i])
            rejects.append(_duplicate(first + row, cols.record_id[i], chunk.text(row)))
        cols = cols.select(fast_new)
        scalar: list[tuple[RatedRecord, str]] = []
        for (record, text), fresh in zip(built, built_new, strict=True):
            if not fresh:
                rejects.append(_duplicate(record.line, record.record_id, text))
                continue
            self._scalar(record, text, scalar, rejects)
        rated = self.batch.rate(cols)
        for i in np.flatnonzero(~rated.fast).tolist():
            record = cols.record(i, first, self.columns.rules)
            self._scalar(record, chunk.text(int(cols.rows[i])), scalar, rejects)
        rejects.sort(key=lambda r: r.line)
        scalar.sort(key=lambda item: item[0].record.line)
        return ChunkOutcome(chunk, cols, rated, rejects, scalar)

    def _scalar(
        self,
        record: XdrRecord,
        text: str,
        scalar: list[tuple[RatedRecord, str]],
        rejects: list[Reject],
    ) -> None:
        outcome = self.lines.rate(record, text)
        if isinstance(outcome, Reject):
            rejects.append(outcome)
        else:
            scalar.append((outcome, text))


def _duplicate(line: int, record_id: str, text: str) -> Reject:
    error = Rejected(Reason.DUPLICATE_ID, f"record id {record_id} seen earlier")
    return Reject(line, UNRESOLVED, error, text)
