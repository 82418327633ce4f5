"""One file's import: parse → normalise → resolve → rate → one ledger call per record.

Memory stays flat in the file's size: lines are streamed, records go to the ledger in
batches of ``batch_size`` (one pipeline each), rejects are written as they are found. The only
state that grows is the in-file duplicate check (``IdSet``), and only up to 8 MiB.

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
from array import array
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from balance.errors import OperationConflict, UnknownAccount
from balance.ledger import Ledger
from balance.records import OfflineResult
from usage.xdr.manifest import FileManifest, ManifestStore, TenantTotals
from usage.xdr.mapping import Mapping
from usage.xdr.parse import FileLayoutError, LineReader
from usage.xdr.rate import RatedRecord, XdrRater
from usage.xdr.records import RecordBuilder
from usage.xdr.rejects import Reason, Rejected

BATCH_SIZE_DEFAULT = 512
BATCH_SIZE_MAX = 10_000
HASH_CHUNK_BYTES = 1 << 20
UNRESOLVED = "-"

LedgerFor = Callable[[str], Awaitable[Ledger]]
AlreadyStored = Callable[[str, Sequence[str]], Awaitable[set[str]]]
"""(tenant, op ids) → the ones the usage store already holds."""
_Call = tuple[RatedRecord, str, "asyncio.Future[OfflineResult] | None"]
Progress = Callable[[int], None]
"""Called with the bytes consumed so far."""


class ImportOptions(msgspec.Struct, frozen=True):
    mno: str
    rate_only: bool = False
    dry_run: bool = False
    batch_size: int = BATCH_SIZE_DEFAULT
    rejects_path: str | None = None  # default <file>.rejects.csv


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


class IdSet:
    """The record ids of one file, as 64-bit hashes in an open-addressing table (16 bytes per
    id at most half full, instead of ~100 for a set of strings), growing to ``slots_max``
    slots (8 MiB: 512Ki ids) and no further, so memory is bounded whatever the file's size.

    Past that, ids are no longer remembered; an id repeated in the file is then caught by the
    ledger instead (the same op id: a replay, counted as duplicate, or with other content a
    ``duplicate_id`` reject), so it is still never charged twice. Two ids with one hash (odds
    ~n²/2⁶⁵) would make the second a false duplicate: rejected, never charged twice."""

    def __init__(self, capacity: int = 1 << 16, slots_max: int = 1 << 20) -> None:
        self._slots = array("q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._count = 0
        self._slots_max = slots_max
        self.full = False

    def add(self, key: str) -> bool:
        """Add ``key``; False when it was there already (or True, unremembered, when full)."""
        value = hash(key) or 1  # 0 marks an empty slot
        slots, mask = self._slots, self._mask
        index = value & mask
        while True:
            found = slots[index]
            if found == 0:
                if self.full:
                    return True
                slots[index] = value
                self._count += 1
                if self._count * 2 > mask:
                    if mask + 1 >= self._slots_max:
                        self.full = True
                    else:
                        self._grow()
                return True
            if found == value:
                return False
            index = (index + 1) & mask

    def _grow(self) -> None:
        old = self._slots
        capacity = (self._mask + 1) * 2
        self._slots = array("q", bytes(8 * capacity))
        self._mask = capacity - 1
        for value in old:
            if value:
                index = value & self._mask
                while self._slots[index]:
                    index = (index + 1) & self._mask
                self._slots[index] = value


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
        batch: list[tuple[RatedRecord, str]] = []
        pending: tuple[list[_Call], list[Any]] | None = None
        with self.path.open("rb") as stream:
            reader = LineReader(self.mapping, stream)
            for raw in reader:
                tenant = UNRESOLVED
                try:
                    record = builder.build(raw)
                    if not self.ids.add(record.record_id):
                        raise Rejected(
                            Reason.DUPLICATE_ID, f"record id {record.record_id} seen earlier"
                        )
                    ref = self.rater.resolve(record)
                    tenant = ref.tenant
                    rated = self.rater.rate(record, ref)
                except Rejected as error:
                    self._totals(tenant).read += 1
                    self._reject(tenant, raw.line, error, raw.text)
                    continue
                totals = self._totals(rated.tenant)
                totals.read += 1
                totals.rated += 1
                if not (self.options.rate_only or self.options.dry_run):
                    batch.append((rated, raw.text))
                    if len(batch) >= self.options.batch_size:
                        # One batch in flight while the next is parsed and rated: Redis and
                        # Python work at once, and a batch leaves only once the one before it
                        # is settled, so each subscriber's records apply in file order.
                        if pending is not None:
                            await self._settle(*pending)
                        pending = await self._launch(batch)
                        batch = []
                        self._report(reader.position)
                else:
                    totals.retail += rated.retail
                    totals.wholesale += rated.wholesale
                    if totals.rated % self.options.batch_size == 0:
                        self._report(reader.position)
                        await asyncio.sleep(0)
            if pending is not None:
                await self._settle(*pending)
            if batch:
                await self._settle(*await self._launch(batch))
            self._report(reader.position)

    def _report(self, position: int) -> None:
        if self.progress is not None:
            self.progress(position)

    async def _launch(self, batch: list[tuple[RatedRecord, str]]) -> tuple[list[_Call], list[Any]]:
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
        for rated, text in batch:
            op_id = rated.op_id(mno)
            if op_id in stored:
                calls.append((rated, text, None))
                continue
            ledger = await self.ledger_for(rated.tenant)
            future = ledger.offline_usage(
                rated.subscriber,
                op_id,
                service=rated.service,
                rating_group=rated.rating_group,
                legs=rated.legs,
                kinds=rated.kinds,
                on_exhaust=rated.on_exhaust,
                block_kinds=rated.block_kinds,
                context=rated.context(mno, file),
                usage_at_s=float(rated.record.started_at_s),
                now_s=now,
            )
            calls.append((rated, text, future))
        futures = [f for _, _, f in calls if f is not None]
        await asyncio.sleep(0)  # let calls that went the slow way (tasks) write themselves
        return calls, futures

    async def _settle(self, calls: list[_Call], futures: list[Any]) -> None:
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        answers = iter(outcomes)
        for rated, text, sent in calls:
            totals = self._totals(rated.tenant)
            if sent is None:
                totals.duplicate += 1
                continue
            outcome = next(answers)
            if isinstance(outcome, UnknownAccount):
                totals.rated -= 1
                self._reject(
                    rated.tenant,
                    rated.record.line,
                    Rejected(
                        Reason.UNKNOWN_ACCOUNT,
                        f"subscriber {rated.subscriber} has no account in the ledger",
                    ),
                    text,
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
                    text,
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
