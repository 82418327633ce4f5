"""Reading the shards' record streams with consumer groups, so an exporter neither loses nor
duplicates a record: read (new, or this consumer's unacknowledged ones after a crash), export,
then ``ack``."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from balance import keys
from balance.access import AccessGuard
from balance.errors import InvalidRequest
from balance.records import LedgerRecord, StreamRecord

_RECORD_DECODER = msgspec.msgpack.Decoder(LedgerRecord)
READ_COUNT_MAX = 10_000


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RecordReader:
    """One consumer of one consumer group over a tenant's shard streams."""

    def __init__(
        self,
        client: Any,
        tenant: str,
        group: str,
        consumer: str,
        *,
        guard: AccessGuard | None = None,
    ) -> None:
        if not group or not consumer:
            raise InvalidRequest("group and consumer names must not be empty")
        self.client = client
        self.tenant = keys.check_tenant(tenant)
        self.group = group
        self.consumer = consumer
        self._groups_ready: set[int] = set()
        # Repairs the tenant's Redis user when a restarted Redis forgot it.
        self._guard = guard or AccessGuard()

    def stream(self, vshard: int) -> str:
        return keys.stream_key(keys.shard_prefix(self.tenant, vshard))

    async def _ensure_group(self, vshard: int) -> None:
        if vshard in self._groups_ready:
            return
        try:
            stream = self.stream(vshard)
            await self._guard.run(
                lambda: self.client.xgroup_create(stream, self.group, id="0", mkstream=True),
                idempotent=True,
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_ready.add(vshard)

    async def read(
        self, vshard: int, *, count: int = 100, pending: bool = False, block_ms: int | None = None
    ) -> list[StreamRecord]:
        """New records of one shard, or (``pending``) those delivered to us but not acked."""
        if not 0 < count <= READ_COUNT_MAX:
            raise InvalidRequest(f"count must be 1-{READ_COUNT_MAX}")
        await self._ensure_group(vshard)
        stream = self.stream(vshard)
        reply = await self._guard.run(
            lambda: self.client.xreadgroup(
                self.group,
                self.consumer,
                {stream: "0" if pending else ">"},
                count=count,
                block=block_ms,
            )
        )
        out: list[StreamRecord] = []
        for _name, entries in reply or []:
            for entry_id, fields in entries:
                payload = fields.get(b"r") if fields else None
                if payload is None:
                    continue  # acknowledged-and-deleted entries come back without fields
                out.append(StreamRecord(stream, _text(entry_id), _RECORD_DECODER.decode(payload)))
        return out

    async def read_shards(
        self, vshards: Iterable[int] | None = None, *, count: int = 100, pending: bool = False
    ) -> list[StreamRecord]:
        shards = range(keys.VSHARDS) if vshards is None else vshards
        out: list[StreamRecord] = []
        for shard in shards:
            out.extend(await self.read(shard, count=count, pending=pending))
        return out

    async def ack(self, records: Sequence[StreamRecord]) -> int:
        """Acknowledge exported records; returns how many were pending."""
        by_stream: dict[str, list[str]] = {}
        for rec in records:
            by_stream.setdefault(rec.stream, []).append(rec.entry_id)
        acked = 0
        for stream, ids in by_stream.items():
            xack = functools.partial(self.client.xack, stream, self.group, *ids)
            acked += int(await self._guard.run(xack, idempotent=True))
        return acked
