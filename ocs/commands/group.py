"""``ocs group``: shared buckets of a family or corporate group (``balance.shared``).

``fill`` (re)fills the group's pool for a period from one allowance of a catalog bundle (its
kind is what the members' CCRs may spend), ``draw`` moves units from the pool to a member's
account (atomic, capped per member, idempotent on ``--op-id``), ``repair`` grants draws whose
second call was lost, ``show`` prints the pool. Exit codes: 0 done; 1 refused (unknown tenant,
bundle, group or member) or Redis unreachable; 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from balance.errors import InvalidRequest, LedgerError
from balance.ledger import Ledger, new_op_id
from balance.shared import MEMBERS_MAX, draw_shared, fill_group, read_group, repair
from ocs.catalog_store import stored_catalog
from ocs.commands.account import OP_ID, _connection_options, parse_op_id
from ocs.config import ConfigError, load_config
from ocs.ledger_runtime import RedisSetupError, resolve_redis_url
from ocs.products import BUCKET_UNITS
from tariffs.errors import CatalogError
from tariffs.model import Tenant, bucket_kind

UNITS_MAX = 2**53 - 1


class Refused(ValueError):
    """What the catalog or the group does not have: exit code 1."""


def _units(text: str, field: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= UNITS_MAX:
        raise InvalidRequest(f"{field} {text!r}: a positive whole number of units")
    return int(text)


def register(sub: Any) -> None:
    parser = sub.add_parser("group", help="shared buckets of a family or corporate group")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(name: str, help_text: str) -> argparse.ArgumentParser:
        action: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        action.add_argument("--tenant", required=True, help="tenant (MVNO) id")
        action.add_argument("group", help="group id (1-64 of A-Z a-z 0-9 _ . -)")
        _connection_options(action)
        action.set_defaults(func=_run, action_name=name)
        return action

    fill = common("fill", "(re)fill the group's pool for a period (a retried fill resets nothing)")
    fill.add_argument("--period", required=True, help="the period this fill is for, e.g. 2026-03")
    fill.add_argument("--bundle", required=True, help="catalog bundle whose allowance is shared")
    fill.add_argument("--allowance", help="the bundle's allowance (default: its first)")
    fill.add_argument("--amount", required=True, help="units in the pool (bytes, seconds, ...)")
    fill.add_argument("--member-cap", required=True, help="units one member may draw")
    fill.add_argument("--member", action="append", required=True, help="a member's MSISDN (repeat)")
    fill.add_argument("--expires", type=int, default=0, help="epoch second (default: never)")
    draw = common("draw", "move units from the pool to a member (its cap applies)")
    draw.add_argument("member", help="the member's MSISDN")
    draw.add_argument("units", help="units asked for (less is given when the pool or cap ends)")
    draw.add_argument("--min-units", default="0", help="take nothing if less than this is left")
    draw.add_argument("--op-id", help="idempotency key: a retried draw moves units once")
    common("repair", "grant the draws whose second call was lost")
    common("show", "the pool, what each member drew, draws pending")


def _kind(tenant: Tenant, bundle_id: str, allowance: str | None) -> tuple[str, str]:
    bundle = tenant.bundle(bundle_id)
    if bundle is None:
        known = ", ".join(b.id for b in tenant.bundles) or "none"
        raise Refused(f"tenant {tenant.id!r} has no bundle {bundle_id!r} (bundles: {known})")
    chosen = next((a for a in bundle.allowances if allowance is None or a.name == allowance), None)
    if chosen is None:
        names = ", ".join(a.name for a in bundle.allowances)
        raise Refused(f"bundle {bundle_id!r} has no allowance {allowance!r} ({names})")
    return bucket_kind(bundle.id, chosen.name), chosen.unit


async def _execute(args: argparse.Namespace, url: str, limits: dict[str, Any]) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, socket_timeout=10.0)
    try:
        catalog = await stored_catalog(client)
        if catalog is None:
            raise Refused("no catalog stored: load one with `ocs catalog load`")
        tenant = catalog.tenant(args.tenant)
        if tenant is None:
            raise Refused(f"unknown tenant {args.tenant!r}")
        ledger = Ledger(client, tenant.id, **limits)
        out: dict[str, Any] = {"action": args.action_name, "group": args.group}
        now = time.time()
        if args.action_name == "fill":
            if len(args.member) > MEMBERS_MAX:
                raise InvalidRequest(f"--member: at most {MEMBERS_MAX}")
            kind, unit = _kind(tenant, args.bundle, args.allowance)
            out["filled"] = await fill_group(
                ledger,
                args.group,
                period=args.period,
                kind=kind,
                unit=BUCKET_UNITS[unit],
                amount=_units(args.amount, "--amount"),
                member_cap=_units(args.member_cap, "--member-cap"),
                members=args.member,
                expires_at_s=float(args.expires),
            )
        elif args.action_name == "draw":
            if args.op_id is not None and not OP_ID.fullmatch(args.op_id):
                raise InvalidRequest(f"--op-id {args.op_id!r}: 1 to 128 of A-Z a-z 0-9 ._:@/+=-")
            draw = await draw_shared(
                ledger,
                args.group,
                args.member,
                _units(args.units, "units"),
                now_s=now,
                op_id=parse_op_id(args.op_id) or new_op_id(),
                min_units=0 if args.min_units == "0" else _units(args.min_units, "--min-units"),
            )
            out.update(units=draw.units, pool_left=draw.pool_left, member_left=draw.member_left)
        elif args.action_name == "repair":
            out["repaired"] = await repair(ledger, args.group, now_s=now)
        found = await read_group(ledger, args.group)
        if found is None:
            raise Refused(f"tenant {tenant.id!r} has no group {args.group!r}")
        pool, drawn, pending = found
        out["pool"] = {
            "period": pool.period,
            "kind": pool.kind,
            "remaining": pool.remaining,
            "member_cap": pool.member_cap,
            "expires_at_s": pool.expires_at_s,
            "drawn": drawn,
            "pending": pending,
        }
        return out
    finally:
        await client.aclose()


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        url = resolve_redis_url(
            args.redis_url or config.redis.url, data_dir=args.data_dir or config.redis.data_dir
        )
        data = asyncio.run(_execute(args, url, config.ledger.limits()))
    except (InvalidRequest, ConfigError) as exc:
        print(f"ocs group {args.action_name}: {exc}", file=sys.stderr)
        return 2
    except (Refused, LedgerError, CatalogError, RedisSetupError, RedisError, OSError) as exc:
        print(f"ocs group {args.action_name}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    pool = data["pool"]
    if "units" in data:
        print(f"drew {data['units']} for the member ({data['member_left']} left of its cap)")
    if "repaired" in data:
        print(f"{data['repaired']} pending draws granted")
    print(
        f"group {data['group']} ({pool['period']}, {pool['kind']}): {pool['remaining']} left, "
        f"cap {pool['member_cap']} per member, {pool['pending']} pending"
    )
    for member, units in sorted(pool["drawn"].items()):
        print(f"  {member}  drew {units}")
    return 0
