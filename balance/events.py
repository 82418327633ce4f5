"""Provisioning and notification events, as the ledger scripts write them.

Every account change (created, blocked, unblocked, topped up, adjusted, refunded, bundle
granted / bought / expired) and every downward crossing of a notification level (depleted,
negative, balance below a tenant's level) is XADDed to the subscriber's shard event stream
``{t:<tenant>:<vshard>}:ev`` by the same Lua call that makes the change (lib_events.lua
``emit_event``). An event's identity is its stream entry id together with tenant and shard:
``<tenant>:<vshard>:<entry id>`` — unique and stable, so receivers use it as idempotency key.

The scripts never trim the stream: an event is removed only after every configured plug-in
has finished with it (``ocs dispatch`` trims below the oldest entry any of its consumer groups
still needs), so a stopped dispatcher delays events but never loses one.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from balance import keys

EVENT_TYPES = (
    "created",
    "blocked",
    "unblocked",
    "topped_up",
    "adjusted",
    "refunded",
    "bundle_granted",
    "bundle_bought",
    "bundle_expired",
    "plan_changed",
    "depleted",
    "negative",
    "balance_below",
    "sim_swapped",
    "deleted",
    "activated",
    "bucket_below",
    "bundle_expiring",
)
_STREAM_RE = re.compile(r"^\{t:([A-Za-z0-9_.-]{1,64}):(\d{1,4})\}:ev(?::redo)?$")
_ENTRY_RE = re.compile(r"^\d{1,20}-\d{1,20}$")


class EventError(ValueError):
    """An event id or stream entry that cannot be read (bad operator input, foreign entry)."""


class Event(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    shard: int
    entry_id: str  # the stream entry id in the shard's event stream
    type: str
    subscriber: str
    op_id: str
    at_s: float
    payload: dict[str, Any]

    @property
    def id(self) -> str:
        """Unique across tenants and shards: the receivers' idempotency key."""
        return f"{self.tenant}:{self.shard}:{self.entry_id}"

    @property
    def stream(self) -> str:
        return keys.event_key(keys.shard_prefix(self.tenant, self.shard))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "tenant": self.tenant,
            "subscriber": self.subscriber,
            "at": self.at_s,
            "op_id": self.op_id,
            "payload": self.payload,
        }


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def shard_of_stream(stream: str) -> tuple[str, int]:
    """(tenant, vshard) of an event stream key."""
    match = _STREAM_RE.match(stream)
    if match is None or int(match.group(2)) >= keys.VSHARDS:
        raise EventError(f"not an event stream key: {stream!r}")
    return match.group(1), int(match.group(2))


def parse_event_id(event_id: str) -> tuple[str, int, str]:
    """``<tenant>:<vshard>:<entry id>`` → its parts, or EventError naming what is wrong."""
    parts = event_id.rsplit(":", 2)
    if len(parts) != 3:
        raise EventError(f"event id {event_id!r}: expected <tenant>:<shard>:<entry id>")
    tenant, shard, entry = parts
    if not keys.TENANT_ID_RE.match(tenant):
        raise EventError(f"event id {event_id!r}: bad tenant {tenant!r}")
    if not shard.isdigit() or int(shard) >= keys.VSHARDS:
        raise EventError(f"event id {event_id!r}: shard must be 0-{keys.VSHARDS - 1}")
    if not _ENTRY_RE.match(entry):
        raise EventError(f"event id {event_id!r}: entry id must look like 1700000000000-0")
    return tenant, int(shard), entry


def decode_event(tenant: str, shard: int, entry_id: Any, fields: dict[Any, Any]) -> Event:
    """One stream entry (field ``e``: msgpack {type, tenant, subscriber, op_id, at_s, payload})."""
    raw = fields.get(b"e", fields.get("e"))
    if raw is None:
        raise EventError(f"entry {_text(entry_id)} has no event field")
    body = msgspec.msgpack.decode(raw if isinstance(raw, bytes) else raw.encode("utf-8"))
    if not isinstance(body, list) or len(body) < 6:
        raise EventError(f"entry {_text(entry_id)}: not an event")
    payload = body[5] if isinstance(body[5], dict) else {}
    return Event(
        tenant=tenant,
        shard=shard,
        entry_id=_text(entry_id),
        type=_text(body[0]),
        subscriber=_text(body[2]),
        op_id=_text(body[3]),
        at_s=float(body[4]),
        payload={_text(k): (_text(v) if isinstance(v, bytes) else v) for k, v in payload.items()},
    )


def encode_event_fields(event: Event) -> dict[str, bytes]:
    """The stream fields that ``decode_event`` reads back (used for re-deliveries)."""
    body = [event.type, event.tenant, event.subscriber, event.op_id, event.at_s, event.payload]
    return {"e": msgspec.msgpack.encode(body)}
