"""``ocs events``: operators' view of the event streams and their delivery.

- ``list --tenant T [--subscriber S] [--dead]``: newest events (or dead letters) first;
- ``show EVENT_ID``: the event and its status per plug-in group (delivered / in progress /
  waiting / dead-lettered);
- ``retry EVENT_ID --plugin P``: deliver the event to one plug-in again (typically a dead
  letter after the receiver was fixed);
- ``replay --tenant T --plugin P --from ENTRY_ID [--subscriber S]``: deliver a range again.

Re-deliveries go through the shard's ``:ev:redo`` stream and keep the event id, so receivers
deduplicate them like any redelivery. Exit codes: 0 done, 1 Redis error or unknown event,
2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from balance import keys
from balance.errors import InvalidRequest
from balance.events import Event, EventError, decode_event, encode_event_fields, parse_event_id
from ocs.commands.dispatch import add_redis_options, redis_url
from ocs.ledger_runtime import RedisSetupError

LIST_LIMIT_MAX = 10_000
REPLAY_MAX = 100_000


class InputError(ValueError):
    """Bad command-line input: exit code 2."""


def register(sub: Any) -> None:
    parser = sub.add_parser("events", help="list, show, retry and replay provisioning events")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    listing = actions.add_parser("list", help="a tenant's newest events (or dead letters)")
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--subscriber", help="only this subscriber's events")
    listing.add_argument("--type", dest="event_type", help="only events of this type")
    listing.add_argument("--dead", action="store_true", help="list dead letters instead")
    listing.add_argument("--limit", type=int, default=50, help=f"1-{LIST_LIMIT_MAX} (50)")

    show = actions.add_parser("show", help="one event and its status per plug-in")
    show.add_argument("event_id", help="<tenant>:<shard>:<entry id>, as list prints it")

    retry = actions.add_parser("retry", help="deliver one event to one plug-in again")
    retry.add_argument("event_id")
    retry.add_argument("--plugin", required=True, help="the plug-in name of the dispatch file")

    replay = actions.add_parser("replay", help="deliver a range of events to a plug-in again")
    replay.add_argument("--tenant", required=True)
    replay.add_argument("--plugin", required=True)
    replay.add_argument("--from", dest="start", required=True, metavar="ENTRY_ID",
                        help="stream entry id or unix milliseconds (included)")  # fmt: skip
    replay.add_argument("--subscriber", help="only this subscriber (one shard)")
    replay.add_argument("--limit", type=int, default=1000, help=f"at most this many ({REPLAY_MAX})")
    for action in (listing, show, retry, replay):
        add_redis_options(action)
        action.add_argument("--json", action="store_true", help="machine-readable output")
        action.set_defaults(func=_run)


async def _streams(client: Any, tenant: str, subscriber: str | None, suffix: str) -> list[str]:
    if subscriber:
        prefix = keys.subscriber_prefix(tenant, keys.check_subscriber(subscriber))
        return [f"{keys.event_key(prefix)}{suffix}"]
    found = []
    async for key in client.scan_iter(match=f"{{t:{tenant}:*}}:ev{suffix}", count=1000):
        found.append(key.decode() if isinstance(key, bytes) else key)
    return sorted(found)


def _shard(stream: str) -> int:
    return int(stream.split(":", 2)[2].split("}", 1)[0])


async def _list(client: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    tenant = keys.check_tenant(args.tenant)
    if not 1 <= args.limit <= LIST_LIMIT_MAX:
        raise InputError(f"--limit: 1-{LIST_LIMIT_MAX}")
    rows: list[dict[str, Any]] = []
    for stream in await _streams(client, tenant, args.subscriber, ":dead" if args.dead else ""):
        for entry_id, fields in await client.xrevrange(stream, count=args.limit):
            event_entry = fields.get(b"event_entry", entry_id) if args.dead else entry_id
            event = decode_event(tenant, _shard(stream), event_entry, fields)
            if args.subscriber and event.subscriber != args.subscriber:
                continue
            if args.event_type and event.type != args.event_type:
                continue
            row = event.to_json()
            if args.dead:
                row["plugin"] = fields[b"plugin"].decode()
                row["attempts"] = int(fields[b"attempts"])
                row["error"] = fields[b"error"].decode()
            rows.append(row)
    rows.sort(key=lambda r: (r["at"], r["id"]), reverse=True)
    return rows[: args.limit]


async def _find(client: Any, event_id: str) -> Event:
    tenant, shard, entry = parse_event_id(event_id)
    prefix = keys.shard_prefix(tenant, shard)
    got = await client.xrange(keys.event_key(prefix), min=entry, max=entry)
    if got:
        return decode_event(tenant, shard, entry, got[0][1])
    # Trimmed from the event stream after every plug-in finished: a dead letter may keep it.
    for _, fields in await client.xrange(keys.dead_letter_key(prefix)):
        if fields.get(b"event_entry", b"").decode() == entry:
            return decode_event(tenant, shard, entry, fields)
    raise EventError(f"event {event_id}: not found (trimmed after delivery, or never written)")


async def _status(client: Any, event: Event) -> dict[str, str]:
    out: dict[str, str] = {}
    entry = event.entry_id
    try:
        groups = await client.xinfo_groups(event.stream)
    except RedisError:
        groups = []
    for group in groups:
        name = group["name"].decode()
        pending = await client.xpending_range(event.stream, name, min=entry, max=entry, count=1)
        last = group["last-delivered-id"].decode()
        if pending:
            out[name] = f"in progress ({pending[0]['times_delivered']} deliveries)"
        elif _key(entry) <= _key(last):
            out[name] = "delivered"
        else:
            out[name] = "waiting"
    dead = keys.dead_letter_key(keys.shard_prefix(event.tenant, event.shard))
    for _, fields in await client.xrange(dead):
        if fields.get(b"event_entry", b"").decode() == entry:
            group = f"dispatch:{fields[b'plugin'].decode()}"
            out[group] = f"dead letter after {fields[b'attempts'].decode()} attempts: " + (
                fields[b"error"].decode()
            )
    return out


def _key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def _redo(client: Any, event: Event, plugin: str) -> str:
    redo = keys.redo_key(keys.shard_prefix(event.tenant, event.shard))
    fields = {"plugin": plugin, "event_entry": event.entry_id, **encode_event_fields(event)}
    entry = await client.xadd(redo, fields)
    return str(entry.decode() if isinstance(entry, bytes) else entry)


async def _replay(client: Any, args: argparse.Namespace) -> list[str]:
    tenant = keys.check_tenant(args.tenant)
    if not 1 <= args.limit <= REPLAY_MAX:
        raise InputError(f"--limit: 1-{REPLAY_MAX}")
    start = args.start if "-" in args.start else f"{args.start}-0"
    try:
        _key(start)
    except ValueError:
        raise InputError(
            f"--from: {args.start!r} is not an entry id or unix milliseconds"
        ) from None
    queued: list[str] = []
    for stream in await _streams(client, tenant, args.subscriber, ""):
        for entry_id, fields in await client.xrange(stream, min=start, count=args.limit):
            event = decode_event(tenant, _shard(stream), entry_id, fields)
            if args.subscriber and event.subscriber != args.subscriber:
                continue
            if len(queued) >= args.limit:
                return queued
            await _redo(client, event, args.plugin)
            queued.append(event.id)
    return queued


async def _execute(args: argparse.Namespace, url: str) -> Any:
    client = aioredis.Redis.from_url(url, socket_timeout=10.0)
    try:
        if args.action == "list":
            return await _list(client, args)
        if args.action == "show":
            event = await _find(client, args.event_id)
            return {**event.to_json(), "status": await _status(client, event)}
        if args.action == "retry":
            event = await _find(client, args.event_id)
            await _redo(client, event, args.plugin)
            return {"queued": [event.id], "plugin": args.plugin}
        return {"queued": await _replay(client, args), "plugin": args.plugin}
    finally:
        await client.aclose()


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print(args: argparse.Namespace, data: Any) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    elif args.action == "list":
        print(f"{'id':<34} {'type':<15} {'subscriber':<16} at (UTC)")
        for row in data:
            extra = f"  [{row['plugin']}: {row['error']}]" if args.dead else ""
            print(f"{row['id']:<34} {row['type']:<15} {row['subscriber']:<16} "
                  f"{_when(row['at'])}{extra}")  # fmt: skip
    elif args.action == "show":
        print(f"{data['id']}  {data['type']}  subscriber {data['subscriber']}  {_when(data['at'])}")
        print(f"payload: {json.dumps(data['payload'], sort_keys=True)}")
        for group, status in sorted(data["status"].items()) or [("(no plug-in yet)", "")]:
            print(f"  {group}: {status}")
    else:
        print(f"queued {len(data['queued'])} event(s) for plug-in {data['plugin']}")


def _run(args: argparse.Namespace) -> int:
    try:
        data = asyncio.run(_execute(args, redis_url(args)))
    except (InputError, EventError, InvalidRequest, ValueError) as exc:
        code = 1 if isinstance(exc, EventError) and "not found" in str(exc) else 2
        print(f"ocs events {args.action}: {exc}", file=sys.stderr)
        return code
    except RedisSetupError as exc:
        print(f"ocs events {args.action}: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"ocs events {args.action}: Redis error: {exc}", file=sys.stderr)
        return 1
    _print(args, data)
    return 0
