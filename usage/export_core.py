"""The exporter's decisions, without I/O: which stream entries make which usage rows, when a
batch is full enough to store, what to acknowledge, how far a stream may be trimmed, how long
to wait after a failure, and how far behind the export is.

The asyncio adapter (``ocs/exporter.py``) reads the shard streams, calls these, and does what
they say, in this order per batch: store (one transaction) → XACK → XTRIM. The order is the
guarantee: an entry is acknowledged only once its row is committed, and a stream is trimmed
only below entries that are acknowledged, so a crash at any point leaves every unstored entry
in its stream (pending or new) and a re-delivered entry is refused by the store's unique key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from balance import keys
from balance.records import LedgerRecord, RecordContext
from usage.row import UsageRow

# The catalog's service units (tariffs.model Unit) as the store names them.
UNIT_NAMES = {"byte": "bytes", "second": "seconds", "event": "events", "money": "money"}
# Records whose ``reason`` field is the unit of the bucket they are about (bucket.lua).
_BUCKET_KINDS = frozenset({"bucket", "expired"})
_MONEY_KINDS = frozenset({"topup", "adjust", "provision"})


class Entry(msgspec.Struct, frozen=True):
    """One stream entry as read: which shard, its id, its decoded record (None: undecodable)."""

    vshard: int
    entry_id: str
    record: LedgerRecord | None


def vshard_of(stream: str) -> int:
    """``{t:<tenant>:<vshard>}:cdr`` → vshard."""
    tag = stream.rpartition("}")[0]
    return int(tag.rpartition(":")[2])


def stream_of(tenant: str, vshard: int) -> str:
    return keys.stream_key(keys.shard_prefix(tenant, vshard))


def unit_of(record: LedgerRecord, service_units: Mapping[str, str]) -> str:
    """The unit of ``record.units``: the service's, the bucket's, or money."""
    if record.kind in _BUCKET_KINDS:
        return record.reason
    if record.kind in _MONEY_KINDS:
        return "money"
    return UNIT_NAMES.get(service_units.get(record.service, ""), "")


class _BucketJson(msgspec.Struct, frozen=True):
    bucket: str
    units: int


class _LegJson(msgspec.Struct, frozen=True):
    leg: str
    units: int
    retail: int
    wholesale: int


_JSON = msgspec.json.Encoder()
_NO_CONTEXT = RecordContext()


def usage_row(
    tenant: str, entry: Entry, record: LedgerRecord, service_units: Mapping[str, str]
) -> UsageRow:
    """The stored row of one ledger record (its context fields flattened beside it). Runs once
    per exported record: msgspec's JSON encoder and one context object keep it to a few µs."""
    ctx = record.context or _NO_CONTEXT
    drawn = record.buckets
    legs = record.legs
    kind = record.kind
    return UsageRow(
        tenant=tenant,
        vshard=entry.vshard,
        entry_id=entry.entry_id,
        kind=kind,
        source=ctx.source,
        op_id=record.op_id,
        session_id=record.session_id,
        host_mno=ctx.host_mno,
        subscriber=record.subscriber,
        msisdn=ctx.msisdn or record.subscriber,
        imsi=ctx.imsi,
        service=record.service,
        rating_group=record.rating_group,
        started_at_s=ctx.started_at_s,
        ended_at_s=record.at_s,
        units=record.units,
        unit=unit_of(record, service_units),
        bucket_units=sum(b.units for b in drawn),
        retail=record.retail,
        wholesale=record.wholesale,
        currency=ctx.currency,
        leakage_units=record.leakage_units,
        leakage_money=record.leakage_money,
        money_delta=record.money_delta,
        balance_after=record.balance_after,
        called=ctx.called,
        calling=ctx.calling,
        visited_plmn=ctx.visited_plmn,
        apn=ctx.apn,
        charging_id=ctx.charging_id,
        role_of_node=ctx.role_of_node,
        rate_card_version=ctx.rate_card_version,
        rate_row=legs[0].leg_key if legs else "",
        buckets=_JSON.encode([_BucketJson(b.bucket_id, b.units) for b in drawn]).decode()
        if drawn
        else "[]",
        legs=_JSON.encode(
            [_LegJson(g.leg_key, g.units, g.retail, g.wholesale) for g in legs]
        ).decode()
        if legs
        else "[]",
        reason="" if kind in _BUCKET_KINDS else record.reason,
        source_ref=ctx.source_ref,
    )


def rows_of(
    tenant: str, entries: Iterable[Entry], service_units: Mapping[str, str]
) -> tuple[list[UsageRow], list[Entry]]:
    """Rows of the decodable entries, and the entries that could not be decoded (kept in their
    stream, unacknowledged, and reported: never silently dropped)."""
    rows: list[UsageRow] = []
    bad: list[Entry] = []
    for entry in entries:
        if entry.record is None or entry.record.tenant != tenant:
            bad.append(entry)
            continue
        rows.append(usage_row(tenant, entry, entry.record, service_units))
    return rows, bad


def acks_by_stream(entries: Iterable[Entry]) -> dict[int, list[str]]:
    """Entry ids to acknowledge, per shard, in stream order."""
    out: dict[int, list[str]] = {}
    for entry in entries:
        out.setdefault(entry.vshard, []).append(entry.entry_id)
    for ids in out.values():
        ids.sort(key=parse_id)
    return out


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def successor(entry_id: str) -> str:
    """The smallest id after ``entry_id`` (XTRIM MINID keeps ids >= MINID)."""
    ms, seq = parse_id(entry_id)
    return f"{ms}-{seq + 1}"


def trim_point(last_delivered: str, pending_min: str | None) -> str:
    """How far a stream may be trimmed (XTRIM MINID) once a batch is acknowledged.

    Entries are delivered in id order, so everything up to the group's last-delivered id was
    delivered; of those, what is not pending was acknowledged, i.e. stored. So: below the
    oldest pending entry when there is one, else everything up to the last delivered entry.
    Entries never delivered are above both, so never trimmed."""
    if pending_min is not None:
        return pending_min
    return successor(last_delivered)


def entry_age_s(entry_id: str, now_s: float) -> float:
    """Seconds since the entry was added (its id's millisecond part is Redis's clock)."""
    ms, _ = parse_id(entry_id)
    return max(0.0, now_s - ms / 1000.0)


@dataclass
class Batch:
    """Entries read but not yet stored; full at ``size_max`` or ``linger_s`` after the first."""

    size_max: int
    linger_s: float
    entries: list[Entry] = field(default_factory=list)
    first_at_s: float = 0.0

    def add(self, entries: Sequence[Entry], now_s: float) -> None:
        if entries and not self.entries:
            self.first_at_s = now_s
        self.entries.extend(entries)

    def ready(self, now_s: float) -> bool:
        if not self.entries:
            return False
        return len(self.entries) >= self.size_max or now_s - self.first_at_s >= self.linger_s

    def wait_s(self, now_s: float) -> float:
        """How long the next read may block before the batch must go."""
        if not self.entries:
            return self.linger_s
        return max(0.0, self.first_at_s + self.linger_s - now_s)

    def take(self) -> list[Entry]:
        taken, self.entries = self.entries, []
        return taken


@dataclass
class Backoff:
    """Exponential backoff after failures (store or Redis down), reset by a success."""

    first_s: float = 0.2
    max_s: float = 10.0
    failures: int = 0

    def failed(self) -> float:
        """The delay before the next attempt."""
        self.failures += 1
        return float(min(self.max_s, self.first_s * 2.0 ** min(self.failures - 1, 30)))

    def succeeded(self) -> None:
        self.failures = 0


@dataclass
class TenantLag:
    """How far a tenant's export is behind: entries still in its streams, and the age of the
    oldest one."""

    entries: int = 0
    oldest_s: float = 0.0

    @classmethod
    def of(cls, lengths: Sequence[int], oldest_ids: Sequence[str], now_s: float) -> TenantLag:
        ages = [entry_age_s(i, now_s) for i in oldest_ids if i]
        return cls(sum(lengths), max(ages, default=0.0))


def degraded(lags: Mapping[str, TenantLag], lag_degraded_s: float) -> list[str]:
    """Tenants whose oldest unexported record is older than the allowed lag."""
    return sorted(t for t, lag in lags.items() if lag.oldest_s > lag_degraded_s)
