"""The exporter's decisions, without I/O: which stream entries make which usage rows, when to
read the streams again, what to acknowledge, how far a stream may be trimmed, how long
to wait after a failure, and how far behind the export is.

The asyncio adapter (``ocs/exporter.py``) reads the shard streams, calls these, and does what
they say, in this order per batch: store (one transaction) → XACK → XTRIM. The order is the
guarantee: an entry is acknowledged only once its row is committed, and a stream is trimmed
only below entries that are acknowledged, so a crash at any point leaves every unstored entry
in its stream (pending or new) and a re-delivered entry is refused by the store's unique key.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import msgspec

from balance import keys
from balance.records import LedgerRecord, RecordContext

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
_INT2_MIN, _INT2_MAX = -(2**15), 2**15 - 1
# Months of a batch: the key is (year, month) per row, a date once per month.
CopyValues = dict[date, list[tuple[Any, ...]]]


def copy_rows(
    tenant: str, entries: Iterable[Entry], service_units: Mapping[str, str]
) -> tuple[CopyValues, list[Entry]]:
    """The COPY tuples (columns ``usage.sql.BATCH_COLUMNS``, the record's context flattened
    beside it) of the decodable entries, grouped by the UTC month of their end; and the entries
    that could not be stored (undecodable, another tenant's, a value out of its column's range):
    kept in their stream, unacknowledged, and reported, never silently dropped.

    Runs once per exported record, straight from the decoded record to the tuple COPY writes
    (no intermediate row object): it is most of the exporter's own CPU per record."""
    by_month: dict[tuple[int, int], list[tuple[Any, ...]]] = {}
    bad: list[Entry] = []
    units_of = {name: UNIT_NAMES.get(unit, "") for name, unit in service_units.items()}
    fromtimestamp = datetime.fromtimestamp
    encode = _JSON.encode
    for entry in entries:
        record = entry.record
        if record is None or record.tenant != tenant:
            bad.append(entry)
            continue
        ctx = record.context or _NO_CONTEXT
        if not _INT2_MIN <= ctx.role_of_node <= _INT2_MAX:
            bad.append(entry)
            continue
        kind = record.kind
        reason = record.reason
        if kind in _BUCKET_KINDS:
            unit, reason = reason, ""  # the reason field is the bucket's unit (bucket.lua)
        elif kind in _MONEY_KINDS:
            unit = "money"
        else:
            unit = units_of.get(record.service, "")
        drawn = record.buckets
        legs = record.legs
        ended = fromtimestamp(record.at_s, UTC)
        start_s = ctx.started_at_s
        values = (
            tenant,
            entry.vshard,
            entry.entry_id,
            kind,
            ctx.source,
            record.op_id,
            record.session_id,
            ctx.host_mno,
            record.subscriber,
            ctx.msisdn or record.subscriber,
            ctx.imsi,
            record.service,
            record.rating_group,
            fromtimestamp(start_s, UTC) if start_s > 0 else None,
            ended,
            record.units,
            unit,
            sum(b.units for b in drawn) if drawn else 0,
            record.retail,
            record.wholesale,
            ctx.currency,
            record.leakage_units,
            record.leakage_money,
            record.money_delta,
            record.balance_after,
            ctx.called,
            ctx.calling,
            ctx.visited_plmn,
            ctx.apn,
            ctx.charging_id,
            ctx.role_of_node,
            ctx.rate_card_version,
            legs[0].leg_key if legs else "",
            encode([_BucketJson(b.bucket_id, b.units) for b in drawn]).decode() if drawn else "[]",
            encode([_LegJson(g.leg_key, g.units, g.retail, g.wholesale) for g in legs]).decode()
            if legs
            else "[]",
            reason,
            ctx.source_ref,
            ctx.plan,
        )
        month = (ended.year, ended.month)
        rows = by_month.get(month)
        if rows is None:
            by_month[month] = [values]
        else:
            rows.append(values)
    return {date(y, m, 1): rows for (y, m), rows in by_month.items()}, bad


def acks_by_stream(entries: Iterable[Entry]) -> dict[int, list[str]]:
    """Entry ids to acknowledge, per shard, as read (XACK takes them in any order)."""
    out: dict[int, list[str]] = {}
    for entry in entries:
        ids = out.get(entry.vshard)
        if ids is None:
            out[entry.vshard] = [entry.entry_id]
        else:
            ids.append(entry.entry_id)
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


def later_id(a: str, b: str) -> str:
    return a if parse_id(a) >= parse_id(b) else b


def trim_point_after_ack(acked_max: str, pending_min: str | None) -> str:
    """How far a stream may be trimmed right after this exporter acknowledged up to
    ``acked_max`` in it, without asking for the group's last-delivered id.

    ``acked_max`` was delivered, and the group delivers in id order, so every entry up to it
    was delivered; of those, what is not pending was acknowledged, i.e. stored. So: below the
    oldest pending entry if that comes first, else everything up to ``acked_max``."""
    after = successor(acked_max)
    if pending_min is not None and parse_id(pending_min) < parse_id(after):
        return pending_min
    return after


def entry_age_s(entry_id: str, now_s: float) -> float:
    """Seconds since the entry was added (its id's millisecond part is Redis's clock)."""
    ms, _ = parse_id(entry_id)
    return max(0.0, now_s - ms / 1000.0)


@dataclass
class PollPace:
    """How long to wait before the next read of a tenant's streams.

    One read covers all 1,024 shard streams (one XREADGROUP). Blocking on them returns at
    every arrival, so each record paid a call that walks all 1,024 keys (≈ 1.5 ms of Redis
    time per call beside a loaded ``ocs serve``, time during which every CCR waits). So the
    exporter polls: again at once while a read brings a full batch (a backlog), after
    ``linger_s`` while it keeps up (what it adds to the lag at most), and ever less often while
    the streams stay empty, up to ``idle_max_s``."""

    linger_s: float
    idle_max_s: float
    batch_size: int
    idle_s: float = 0.0

    def after_read(self, found: int, more: bool = False) -> float:
        """Seconds to wait after a read that brought ``found`` entries; ``more``: some stream
        gave all it was asked for (``ReadPlan``), so more is waiting."""
        if found:
            self.idle_s = 0.0
            return 0.0 if more or found >= self.batch_size else self.linger_s
        self.idle_s = min(self.idle_max_s, max(self.linger_s, self.idle_s * 2))
        return self.idle_s


ReadCommand = tuple[tuple[int, ...], int]  # (shards, COUNT per shard): one XREADGROUP


@dataclass
class ReadPlan:
    """Which of a tenant's shard streams each read covers, with which COUNT.

    Redis runs one command at a time, so an exporter command is time every CCR arriving
    meanwhile waits for: no read may be long. A read of all the shards costs a fixed walk of
    every stream (≈ 0.16 ms per 1,024) plus ≈ 2-3 µs per entry delivered, so:

    - a pass over every shard is cut into commands of at most ``chunk_streams`` streams, each
      asking ``count`` entries per stream (a command delivers at most their product);
    - a stream that gave all it was asked for has more waiting (a backlog: the store was down,
      or the exporter stopped): the next reads ask only such streams, ``entries_max //
      deep_streams`` entries each, ``deep_streams`` streams a command. Batches then hold runs of
      a few streams (few XACK commands per batch) and no command delivers more than
      ``entries_max``. Every ``full_every`` backlog reads, one full pass again, so a stream
      outside the backlog waits for it at most that long."""

    shards: int
    count: int
    chunk_streams: int
    entries_max: int
    deep_streams: int = 32
    full_every: int = 16
    backlog: dict[int, None] = field(default_factory=dict)  # insertion order: rotation
    _deep_reads: int = 0

    def next_read(self) -> list[ReadCommand]:
        """The commands of the next read, in order (each bounded as above)."""
        if self.backlog and self._deep_reads < self.full_every:
            self._deep_reads += 1
            streams = min(len(self.backlog), self.deep_streams)
            picked = tuple(itertools.islice(self.backlog, streams))
            for shard in picked:  # to the back: the next deep read takes the others first
                del self.backlog[shard]
                self.backlog[shard] = None
            return [(picked, max(self.count, self.entries_max // streams))]
        self._deep_reads = 0
        step = max(1, self.chunk_streams)
        return [
            (tuple(range(start, min(start + step, self.shards))), self.count)
            for start in range(0, self.shards, step)
        ]

    def delivered(self, command: ReadCommand, found: Mapping[int, int]) -> None:
        """What a command brought per shard (absent: nothing): a full answer puts the shard in
        the backlog, a short one takes it out."""
        shards, count = command
        for shard in shards:
            if found.get(shard, 0) >= count:
                self.backlog.setdefault(shard, None)
            else:
                self.backlog.pop(shard, None)

    @property
    def more(self) -> bool:
        """Some stream is known to hold more than it was asked for."""
        return bool(self.backlog)


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
