"""One file's import: parse → normalise → resolve → rate → charge, each record its own
ledger operation.

CSV files are read and rated a chunk of lines at a time by columns (``usage.xdr.columns``,
``usage.xdr.chunks``), other files a line at a time; both give the same answers. Memory stays
flat in the file's size: lines are streamed, records go to the ledger in windows of
``batch_size`` (grouped by shard, up to ``OFFLINE_MANY_MAX`` records a script call, one
pipeline), rejects are written as they are found. The only state that grows is the in-file
duplicate check (``IdSet``), and only up to 8 MiB.

Idempotency, in three layers:
1. the file manifest (``ManifestStore``): a file whose sha256 was imported to the end with
   nothing rejected is recognised at once and nothing is read again;
2. the usage store (``already_stored``, when one is configured): op ids it holds are
   duplicates, however old (beyond the ledger's idempotency TTL);
3. the ledger: op id ``xdr:<mno>:<record id>`` applies once; the same id again is a replay
   (counted as duplicate) and changes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeAlias

import msgspec
import numpy as np

from balance import keys
from balance.errors import OperationConflict, UnknownAccount
from balance.ledger import OFFLINE_MANY_MAX, Ledger
from balance.records import OfflineItem
from usage.xdr.chunks import ChunkOutcome, ChunkRater, LineRater, Reject
from usage.xdr.columns import Chunk, ChunkReader, columnar
from usage.xdr.idset import IdSet
from usage.xdr.manifest import FileManifest, ManifestStore, TenantTotals
from usage.xdr.mapping import Mapping
from usage.xdr.parse import FileLayoutError, LineReader, RawLine
from usage.xdr.rate import RatedRecord, XdrRater
from usage.xdr.records import RecordBuilder
from usage.xdr.rejects import Reason, Rejected

BATCH_SIZE_DEFAULT = 8192  # records per window: grouped by shard, a few per ledger call
BATCH_SIZE_MAX = 65_536
HASH_CHUNK_BYTES = 1 << 20
UNRESOLVED = "-"

LedgerFor = Callable[[str], Awaitable[Ledger]]
AlreadyStored = Callable[[str, Sequence[str]], Awaitable[set[str]]]
"""(tenant, op ids) → the ones the usage store already holds."""
LineText: TypeAlias = "str | tuple[Chunk, int]"
"""A line's text, or where to find it (made only for the few lines the ledger refuses)."""
_Call = tuple[RatedRecord, LineText, "tuple[int, int] | None"]
"""A record, its line, and where its outcome is: (future, position in its list), or None
when the usage store holds it already."""
Progress = Callable[[int], None]
"""Called with the bytes consumed so far."""


class ImportOptions(msgspec.Struct, frozen=True):
    mno: str
    rate_only: bool = False
    dry_run: bool = False
    batch_size: int = BATCH_SIZE_DEFAULT
    rejects_path: str | None = None  # default <file>.rejects.csv
    # CSV files are read a chunk of lines at a time, by columns (the same answers, faster);
    # False reads them a line at a time (the reference the columnar way is tested against).
    columnar: bool = True


class ImportResult(msgspec.Struct):
    file: str
    sha256: str
    tenants: dict[str, TenantTotals]
    rejects_path: str | None = None
    already_imported: bool = False
    layout_error: str | None = None

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.tenants.values())


def _text(text: LineText) -> str:
    if isinstance(text, str):
        return text
    chunk, row = text
    return chunk.text(row)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class RejectWriter:
    """``<file>.rejects.csv``: line, reason, detail, the line as read. Opened on the first
    reject only, so a clean file leaves no rejects file behind."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._handle: IO[str] | None = None
        self._writer: Any = None
        self.count = 0

    def write(self, line: int, reason: Reason, detail: str, text: str) -> None:
        self.count += 1
        if self.path is None:
            return
        if self._writer is None:
            self._handle = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["line", "reason", "detail", "record"])
        self._writer.writerow([line, reason.value, detail, text])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class FileImport:
    """Imports one file. Build, then ``await run()``; the result carries per-tenant totals."""

    def __init__(
        self,
        path: Path,
        mapping: Mapping,
        rater: XdrRater,
        options: ImportOptions,
        *,
        ledger_for: LedgerFor | None,
        manifests: ManifestStore | None,
        now: Callable[[], float],
        already_stored: AlreadyStored | None = None,
        progress: Progress | None = None,
    ) -> None:
        if not 0 < options.batch_size <= BATCH_SIZE_MAX:
            raise ValueError(f"batch size must be 1-{BATCH_SIZE_MAX}")
        if ledger_for is None and not (options.rate_only or options.dry_run):
            raise ValueError("charging needs a ledger")
        self.path = path
        self.mapping = mapping
        self.rater = rater
        self.options = options
        self.ledger_for = ledger_for
        self.manifests = manifests
        self.now = now
        self.already_stored = already_stored
        self.progress = progress
        self.tenants: dict[str, TenantTotals] = {}
        self.ids = IdSet()
        self._batch: list[tuple[RatedRecord, LineText]] = []
        self._pending: tuple[list[_Call], list[Any]] | None = None
        writes = not options.dry_run
        rejects = options.rejects_path or f"{path}.rejects.csv"
        self.rejects = RejectWriter(rejects if writes else None)

    def _totals(self, tenant: str) -> TenantTotals:
        totals = self.tenants.get(tenant)
        if totals is None:
            totals = self.tenants[tenant] = TenantTotals()
        return totals

    def _reject(self, tenant: str, line: int, error: Rejected, text: str) -> None:
        self._totals(tenant).rejected += 1
        self.rejects.write(line, error.reason, error.detail, text)

    async def run(self) -> ImportResult:
        sha = await asyncio.to_thread(file_sha256, self.path)
        charging = not (self.options.rate_only or self.options.dry_run)
        if charging and self.manifests is not None:
            done = self.manifests.find(sha)
            if done is not None:
                # Nothing is charged this time: every record the first import read is a
                # duplicate now (its figures stay in the manifest).
                seen = {
                    tenant: TenantTotals(read=t.read, duplicate=t.charged + t.duplicate)
                    for tenant, t in done.tenants.items()
                    if t.charged + t.duplicate
                }
                return ImportResult(str(self.path), sha, seen, already_imported=True)
        result = ImportResult(str(self.path), sha, self.tenants)
        try:
            await self._lines()
        except FileLayoutError as exc:
            result.layout_error = str(exc)
            self._totals(UNRESOLVED).rejected += 1
        finally:
            self.rejects.close()
        if self.rejects.count and self.rejects.path is not None:
            result.rejects_path = self.rejects.path
        # A file with rejects gets no manifest: once the cause is fixed (a range added, the
        # mapping corrected) the same file imports again, its charged lines as duplicates.
        if charging and self.manifests is not None and result.rejected == 0:
            self.manifests.save(
                FileManifest(
                    sha256=sha,
                    file=str(self.path),
                    mno=self.options.mno,
                    completed_at_s=self.now(),
                    tenants=self.tenants,
                )
            )
        return result

    async def _lines(self) -> None:
        builder = RecordBuilder(self.mapping)
        lines = LineRater(builder, self.rater)
        charging = not (self.options.rate_only or self.options.dry_run)
        with self.path.open("rb") as stream:
            reader: ChunkReader | LineReader
            chunks: ChunkRater | None = None
            if self.options.columnar and columnar(self.mapping):
                reader = ChunkReader(self.mapping, stream)
                chunks = ChunkRater(builder, self.rater)
            else:
                reader = LineReader(self.mapping, stream)
            count = 0
            for item in reader:
                if isinstance(item, RawLine):
                    outcome = lines.line(item, self.ids)
                    if isinstance(outcome, Reject):
                        self._rejected(outcome)
                    else:
                        await self._rated(outcome, item.text, charging)
                    count += 1
                    if count % self.options.batch_size == 0:
                        self._report(reader.position)
                        await asyncio.sleep(0)
                else:
                    assert chunks is not None
                    await self._chunk(chunks.rate(item, self.ids), charging, chunks)
                    self._report(reader.position)
                    await asyncio.sleep(0)
            if self._pending is not None:
                await self._settle(*self._pending)
                self._pending = None
            if self._batch:
                await self._settle(*await self._launch(self._batch))
                self._batch = []
            self._report(reader.position)

    def _rejected(self, reject: Reject) -> None:
        self._totals(reject.tenant).read += 1
        self._reject(reject.tenant, reject.line, reject.error, reject.text)

    async def _rated(self, rated: RatedRecord, text: LineText, charging: bool) -> None:
        if self._take(rated, text, charging):
            await self._window()

    def _take(self, rated: RatedRecord, text: LineText, charging: bool) -> bool:
        """Count a rated record (and queue it for the ledger): True when the window is full."""
        totals = self._totals(rated.tenant)
        totals.read += 1
        totals.rated += 1
        if not charging:
            totals.retail += rated.retail
            totals.wholesale += rated.wholesale
            return False
        self._batch.append((rated, text))
        return len(self._batch) >= self.options.batch_size

    async def _window(self) -> None:
        """Send the full window. One is in flight while the next is parsed and rated: Redis
        and Python work at once, and a window leaves only once the one before it is settled,
        so each subscriber's records apply in file order."""
        if self._pending is not None:
            await self._settle(*self._pending)
        self._pending = await self._launch(self._batch)
        self._batch = []

    async def _chunk(self, outcome: ChunkOutcome, charging: bool, chunks: ChunkRater) -> None:
        for reject in outcome.rejects:
            self._rejected(reject)
        cols, rated, chunk = outcome.cols, outcome.rated, outcome.chunk
        if charging:
            fast = chunks.batch.records(cols, rated, chunk.first_line)
            merged: list[tuple[int, RatedRecord, LineText]] = [
                (r.record.line, r, (chunk, int(cols.rows[i]))) for i, r in fast
            ]
            merged += [(r.record.line, r, text) for r, text in outcome.scalar]
            merged.sort(key=lambda item: item[0])
            for _, record, text in merged:
                if self._take(record, text, charging):
                    await self._window()
            return
        tenant_of_ref = [ref.tenant for ref in rated.refs]
        names = sorted(set(tenant_of_ref))
        code_of_ref = np.array([names.index(t) for t in tenant_of_ref] + [-1], dtype=np.int64)
        code = np.where(rated.fast, code_of_ref[rated.ref], -1)
        for number, name in enumerate(names):
            rows = code == number
            count = int(np.count_nonzero(rows))
            if count:
                totals = self._totals(name)
                totals.read += count
                totals.rated += count
                totals.retail += int(rated.retail[rows].sum())
                totals.wholesale += int(rated.wholesale[rows].sum())
        for record, text in outcome.scalar:
            await self._rated(record, text, charging)

    def _report(self, position: int) -> None:
        if self.progress is not None:
            self.progress(position)

    async def _launch(
        self, batch: list[tuple[RatedRecord, LineText]]
    ) -> tuple[list[_Call], list[Any]]:
        """Send one batch's ledger calls (one pipeline per tenant); returns what ``_settle``
        needs. Op ids the usage store already holds are not sent."""
        assert self.ledger_for is not None
        mno = self.options.mno
        stored: set[str] = set()
        if self.already_stored is not None:
            by_tenant: dict[str, list[str]] = {}
            for rated, _ in batch:
                by_tenant.setdefault(rated.tenant, []).append(rated.op_id(mno))
            for tenant, op_ids in by_tenant.items():
                stored |= await self.already_stored(tenant, op_ids)
        now = self.now()
        file = self.path.name
        calls: list[_Call] = []
        # Records of one shard (tenant and vshard) go to the ledger together, up to
        # OFFLINE_MANY_MAX a call, in file order: one round trip, each account read and
        # written once a call.
        shards: dict[tuple[str, int], list[OfflineItem]] = {}
        futures: list[Any] = []
        for rated, text in batch:
            op_id = rated.op_id(mno)
            if op_id in stored:
                calls.append((rated, text, None))
                continue
            shard = (rated.tenant, keys.vshard(rated.subscriber))
            items = shards.get(shard)
            if items is None or len(items) >= OFFLINE_MANY_MAX:
                items = shards[shard] = []
            calls.append((rated, text, (id(items), len(items))))
            items.append(
                OfflineItem(
                    rated.subscriber, op_id, rated.service, rated.rating_group, rated.legs,
                    rated.kinds, rated.on_exhaust, rated.block_kinds,
                    rated.context(mno, file), float(rated.record.started_at_s),
                )
            )  # fmt: skip
            if len(items) == OFFLINE_MANY_MAX:
                futures.append(await self._send(rated.tenant, items, now))
        for (tenant, _), items in shards.items():
            if len(items) < OFFLINE_MANY_MAX:
                futures.append(await self._send(tenant, items, now))
        await asyncio.sleep(0)  # let calls that went the slow way (tasks) write themselves
        return calls, futures

    async def _send(self, tenant: str, items: list[OfflineItem], now: float) -> Any:
        """One ledger call for ``items``; the future carries the list's id to find it by."""
        assert self.ledger_for is not None
        ledger = await self.ledger_for(tenant)
        future = ledger.offline_usage_many(items, now_s=now)
        return (id(items), items, future)

    async def _settle(self, calls: list[_Call], futures: list[Any]) -> None:
        replies = await asyncio.gather(*(f for _, _, f in futures), return_exceptions=True)
        by_list = {list_id: reply for (list_id, _, _), reply in zip(futures, replies, strict=True)}
        for rated, text, sent in calls:
            totals = self._totals(rated.tenant)
            if sent is None:
                totals.duplicate += 1
                continue
            reply = by_list[sent[0]]
            if isinstance(reply, BaseException):
                # Redis down or a bug: stop here; every record charged so far is committed and
                # the same import again finishes the file (op ids make it exact).
                raise reply
            outcome = reply[sent[1]]
            if isinstance(outcome, UnknownAccount):
                totals.rated -= 1
                self._reject(
                    rated.tenant,
                    rated.record.line,
                    Rejected(
                        Reason.UNKNOWN_ACCOUNT,
                        f"subscriber {rated.subscriber} has no account in the ledger",
                    ),
                    _text(text),
                )
            elif isinstance(outcome, OperationConflict):
                totals.rated -= 1
                self._reject(
                    rated.tenant,
                    rated.record.line,
                    Rejected(
                        Reason.DUPLICATE_ID,
                        f"record id {rated.record.record_id} was charged before with other content",
                    ),
                    _text(text),
                )
            elif isinstance(outcome, BaseException):
                # Redis down or a bug: stop here; every record charged so far is committed and
                # the same import again finishes the file (op ids make it exact).
                raise outcome
            elif outcome.replayed:
                totals.duplicate += 1
            else:
                charge = outcome.charge
                totals.charged += 1
                totals.retail += charge.retail
                totals.wholesale += charge.wholesale
                totals.leakage += charge.leakage_money
                totals.bucket_units += charge.bucket_units
