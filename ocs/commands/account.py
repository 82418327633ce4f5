"""``ocs account``: show, list, trace (history) and maintain subscriber accounts.

The subscriber argument is resolved against the stored catalog (``ocs.subscriber_lookup``): an
MSISDN, ``+49…`` or IMSI names its tenant and canonical MSISDN, and what could never be charged
is refused before the ledger is touched. Amounts are decimal currency units on the command line
(``5.00``) and integer micro-units in the ledger; ``Decimal`` is used only here, at that edge.
Exit codes: 0 done; 1 refused (unknown tenant or number, the ledger's refusals such as unknown
subscriber or insufficient balance) or Redis unreachable; 2 bad input. Under ``--json`` errors
are JSON on stdout too.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from balance.errors import InvalidRequest, LedgerError
from balance.ledger import Ledger, new_op_id
from balance.products import AlreadyOnPlan, current_plan
from balance.records import OpResult, RecordContext
from ocs.account_records import (
    HISTORY_LIMIT_MAX,
    HISTORY_SCAN_MAX,
    LIST_LIMIT_MAX,
    account_history,
    list_accounts,
)
from ocs.account_view import (
    Context,
    account_json,
    account_tables,
    console,
    history_json,
    history_table,
    list_json,
    list_table,
)
from ocs.catalog_store import stored_catalog
from ocs.charging.durable_requests import publish_account_notice
from ocs.charging.notifications import publish_notice
from ocs.config import Config, ConfigError, load_config
from ocs.ledger_runtime import RedisSetupError, resolve_redis_url
from ocs.plan_change import change_subscriber_plan
from ocs.products import ProductRefused, buy_addon
from ocs.subscriber_directory import PLAN_NOTICE
from ocs.subscriber_lookup import LookupRefused, Target, find_target
from ocs.subscriber_lookup import resolve as resolve_subscriber
from tariffs.display import format_amount
from tariffs.errors import CatalogError
from tariffs.model import TOPUP_MAX_DEFAULT, Catalog

MICRO_PER_UNIT = Decimal(1_000_000)
AMOUNT_ABS_MAX = Decimal(1_000_000_000)  # one billion currency units


class UsageError(ValueError):
    """Bad command-line input: exit code 2."""


def parse_amount(text: str, *, signed: bool = False) -> int:
    """``"5.00"`` → 5_000_000 micro-units; more than 6 decimals or out of range is refused."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise UsageError(f"amount {text!r} is not a decimal number (e.g. 5.00)") from None
    if not value.is_finite():
        raise UsageError(f"amount {text!r} is not a finite number")
    if not signed and value <= 0:
        raise UsageError(f"amount {text!r} must be positive")
    if abs(value) > AMOUNT_ABS_MAX:
        raise UsageError(f"amount {text!r} is larger than {AMOUNT_ABS_MAX}")
    micro = value * MICRO_PER_UNIT
    if micro != micro.to_integral_value():
        raise UsageError(f"amount {text!r} has more than 6 decimal places")
    return int(micro)


OP_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def parse_op_id(text: str | None) -> str | None:
    """An operator-chosen idempotency key, namespaced so it can never equal a Diameter one."""
    if text is None:
        return None
    if not OP_ID.fullmatch(text):
        raise UsageError(
            f"--op-id {text!r}: 1 to 128 letters, digits or ._:@/+=- (e.g. a ticket number)"
        )
    return f"cli:{text}"


def _connection_options(action: argparse.ArgumentParser) -> None:
    action.add_argument(
        "--redis-url",
        help="Redis URL (default: OCS_REDIS_URL, redis.url of --config, then "
        "<data-dir>/redis.url from `ocs serve`)",
    )
    action.add_argument(
        "--data-dir",
        help="where `ocs serve` keeps its embedded Redis (default: redis.data_dir, var/redis)",
    )
    action.add_argument(
        "--config",
        metavar="FILE",
        help="the deployment's TOML config: its [redis] and [ledger] settings (e.g. how long "
        "an --op-id is remembered: ledger.idempotency_ttl_s)",
    )
    action.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: Any) -> None:
    parser = sub.add_parser("account", help="show, list and maintain subscriber accounts")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(name: str, help_text: str) -> argparse.ArgumentParser:
        action: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        action.add_argument(
            "--tenant",
            help="tenant (MVNO) id; optional when the catalog's ranges or entries know the number",
        )
        action.add_argument(
            "subscriber", help="MSISDN (4917099000042 or '+49 170 99000042') or IMSI"
        )
        _connection_options(action)
        action.set_defaults(func=_run, action_name=name)
        return action

    common("show", "balances, buckets and open reservations")
    history = common("history", "the account's usage and admin records, newest first")
    history.add_argument(
        "--limit", type=int, default=20, help=f"records to show (1-{HISTORY_LIMIT_MAX})"
    )
    listing = actions.add_parser("list", help="list or search accounts (SCAN, bounded)")
    listing.add_argument("--tenant", help="only this tenant's accounts")
    listing.add_argument(
        "--match", default="*", help="glob on the subscriber id, e.g. '4917099*' or '*0042'"
    )
    listing.add_argument(
        "--limit", type=int, default=50, help=f"accounts to show (1-{LIST_LIMIT_MAX})"
    )
    _connection_options(listing)
    listing.set_defaults(func=_run, action_name="list", subscriber=None)
    create = common("create", "provision a new account (the catalog must cover the number)")
    create.add_argument("--balance", default="0", help="opening balance, e.g. 10.00")
    create.add_argument("--credit-limit", default="0", help="postpaid credit limit, e.g. 50.00")
    topup = common("topup", "add money to the balance (at most the tenant's topup_max)")
    topup.add_argument("amount", help="amount in currency units, e.g. 5.00")
    topup.add_argument("--reason", default="topup")
    topup.add_argument(
        "--op-id",
        help="idempotency key: a retried command with the same key credits once",
    )
    adjust = common("adjust", "operator correction (signed), with a reason")
    adjust.add_argument("amount", help="signed amount, e.g. -1.25 or 2.00")
    adjust.add_argument("--reason", required=True, help="why (kept on the ledger record)")
    adjust.add_argument("--credit-limit", help="also set the postpaid credit limit")
    adjust.add_argument(
        "--op-id", help="idempotency key: a retried command with the same key applies once"
    )
    buy = common("buy", "buy an add-on: its fee from the balance and its buckets, in one step")
    buy.add_argument("addon", help="add-on id (the catalog's addons list)")
    buy.add_argument(
        "--op-id", help="idempotency key: a retried purchase with the same key charges once"
    )
    change = common(
        "change-plan",
        "move the subscriber to another plan, now (prorated by the tenant's plan_change rules) "
        "or at its next renewal",
    )
    change.add_argument("plan", help="plan id (the tenant's plans)")
    change.add_argument(
        "--at",
        choices=("now", "next-cycle"),
        default="now",
        help="now: the new plan's cycle starts today; next-cycle: its next renewal charges "
        "and grants the new plan (again with the current plan: cancels a noted change)",
    )
    change.add_argument(
        "--actor", help="who asked for it, kept on the record (default: cli:<login name>)"
    )
    change.add_argument(
        "--op-id", help="idempotency key: a retried change with the same key applies once"
    )
    for name, text in (("block", "stop new grants"), ("unblock", "allow grants again")):
        common(name, text).add_argument("--reason", default="")


async def _catalog(client: Any) -> Catalog | None:
    try:
        return await stored_catalog(client)
    except CatalogError:
        return None  # a stored catalog that no longer validates: `ocs catalog load` says why


def _context(catalog: Catalog | None, tenant: str) -> Context:
    info = catalog.tenant(tenant) if catalog is not None else None
    if info is None:
        return Context()
    return Context(
        info.currency,
        info.timezone,
        {s.name: s.unit for s in info.services},
        {group: s.unit for s in info.services for group in s.rating_groups},
    )


def _check_topup(target: Target, amount: int) -> None:
    limit = target.tenant_info.topup_max if target.tenant_info else TOPUP_MAX_DEFAULT
    if amount > limit:
        currency = f" {target.tenant_info.currency}" if target.tenant_info else ""
        raise LookupRefused(
            f"top-up {format_amount(amount)}{currency} is more than tenant {target.tenant!r}'s "
            f"maximum single top-up of {format_amount(limit)}{currency} (catalog field "
            "topup_max)"
        )


def _check_limit(value: int, maximum: int) -> int:
    if not 1 <= value <= maximum:
        raise UsageError(f"--limit {value}: must be 1 to {maximum}")
    return value


async def _list(client: Any, args: argparse.Namespace, catalog: Catalog | None) -> Any:
    limit = _check_limit(args.limit, LIST_LIMIT_MAX)
    if args.tenant is not None and catalog is not None and catalog.tenant(args.tenant) is None:
        raise LookupRefused(
            f"unknown tenant {args.tenant!r} (the catalog has: "
            f"{', '.join(t.id for t in catalog.tenants) or 'none'})"
        )
    found, more = await list_accounts(client, args.tenant, args.match, limit)
    rows = [list_json(t, sub, account, _context(catalog, t)) for t, sub, account in found]
    return {"action": "list", "accounts": rows, "more": more}


async def _mutate(ledger: Ledger, target: Target, args: argparse.Namespace) -> OpResult | None:
    name, subscriber, now_s = args.action_name, target.subscriber, time.time()
    # Operator changes are marked as such on their records (the usage store's ``source``).
    context = RecordContext(source="admin", msisdn=subscriber, source_ref="cli")
    if name == "create":
        return await ledger.provision_account(
            subscriber,
            balance=parse_amount(args.balance, signed=True),
            credit_limit=parse_amount(args.credit_limit, signed=True),
            held=target.held,
            now_s=now_s,
            context=context,
        )
    if name == "topup":
        amount = parse_amount(args.amount)
        _check_topup(target, amount)
        return await ledger.topup(
            subscriber,
            amount,
            reason=args.reason,
            now_s=now_s,
            op_id=parse_op_id(args.op_id),
            context=context,
        )
    if name == "adjust":
        delta = parse_amount(args.amount, signed=True)
        limit = None if args.credit_limit is None else parse_amount(args.credit_limit, signed=True)
        return await ledger.adjust(
            subscriber,
            delta,
            reason=args.reason,
            credit_limit=limit,
            now_s=now_s,
            op_id=parse_op_id(args.op_id),
            context=context,
        )
    if name == "buy":
        if target.tenant_info is None:
            raise LookupRefused(f"tenant {target.tenant!r} is not in the stored catalog")
        try:
            return await buy_addon(
                ledger,
                target.tenant_info,
                subscriber,
                args.addon,
                now_s=int(now_s),
                op_id=parse_op_id(args.op_id) or new_op_id(),
                context=context,
            )
        except ProductRefused as exc:
            raise LookupRefused(str(exc)) from exc
    if name == "block":
        return await ledger.block(subscriber, reason=args.reason, now_s=now_s, context=context)
    if name == "unblock":
        return await ledger.unblock(subscriber, reason=args.reason, now_s=now_s, context=context)
    return None  # show, history: read only


async def _change_plan(
    ledger: Ledger, target: Target, args: argparse.Namespace, catalog: Catalog | None
) -> OpResult:
    if target.tenant_info is None:
        raise LookupRefused(f"tenant {target.tenant!r} is not in the stored catalog")
    actor = args.actor or f"cli:{_login()}"
    if not OP_ID.fullmatch(actor):
        raise UsageError(f"--actor {actor!r}: 1 to 128 letters, digits or ._:@/+=-")
    context = RecordContext(source="admin", msisdn=target.subscriber, source_ref=actor)
    try:
        return await change_subscriber_plan(
            ledger,
            target.tenant_info,
            target.subscriber,
            catalog_plan=_catalog_plan(catalog, target),
            to_plan=args.plan,
            at_next_cycle=args.at == "next-cycle",
            actor=actor,
            now_s=int(time.time()),
            op_id=parse_op_id(args.op_id) or new_op_id(),
            context=msgspec.structs.replace(context, plan=args.plan),
        )
    except (ProductRefused, AlreadyOnPlan) as exc:
        raise LookupRefused(str(exc)) from exc


def _catalog_plan(catalog: Catalog | None, target: Target) -> str:
    """The plan the catalog puts the subscriber on ("" = none)."""
    ref = resolve_subscriber(catalog, target.subscriber)
    return ref.plan if ref is not None and ref.tenant == target.tenant else ""


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "operator"


async def _execute(args: argparse.Namespace, url: str, config: Config) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, socket_timeout=5.0)
    try:
        catalog = await _catalog(client)
        name = args.action_name
        if name == "list":
            data: dict[str, Any] = await _list(client, args, catalog)
            return data
        target = find_target(
            catalog,
            args.tenant,
            args.subscriber,
            require_tenant=name in ("create", "topup", "buy", "change-plan"),
            require_number=name == "create",
        )
        ctx = _context(catalog, target.tenant)
        ledger = Ledger(client, target.tenant, **config.ledger.limits())
        if name == "history":
            limit = _check_limit(args.limit, HISTORY_LIMIT_MAX)
            await ledger.query(target.subscriber)  # UnknownAccount (5030) rather than nothing
            entries, truncated = await account_history(
                client, target.tenant, target.subscriber, limit
            )
            return {
                "action": name,
                "tenant": target.tenant,
                "subscriber": target.subscriber,
                "records": [history_json(e.entry_id, e.record, ctx) for e in entries],
                "truncated": truncated,
            }
        result: OpResult | None
        if name == "change-plan":
            result = await _change_plan(ledger, target, args, catalog)
            if not result.replayed and args.at == "now":
                # Every server re-reads the subscriber's plan and rates it on the new one.
                await publish_notice(client, target.tenant, target.subscriber, PLAN_NOTICE)
        else:
            result = await _mutate(ledger, target, args)
        if name in ("topup", "block", "buy") and result is not None and not result.replayed:
            # A server holding a connection to each live session's client sends it a RAR
            # (top-up, add-on bought: new credit to grant from) or an ASR (block): a durable
            # notice, taken whenever a server runs.
            notice = "topup" if name == "buy" else name
            await publish_account_notice(client, target.tenant, target.subscriber, notice)
        account = await ledger.query(target.subscriber)
        data = account_json(
            target.tenant, target.subscriber, account, time.time(), ctx, imsi=target.imsi
        )
        data["action"] = name
        if name == "change-plan":
            plan = await current_plan(ledger, target.subscriber, _catalog_plan(catalog, target))
            data["plan"] = {"plan": plan.plan, "next_cycle_plan": plan.pending or plan.plan}
        data["replayed"] = bool(result and result.replayed)
        return data
    finally:
        await client.aclose()


def _fail(args: argparse.Namespace, code: int, kind: str, message: str, **extra: Any) -> int:
    """One error: a line on stderr, or under ``--json`` an ``{"error": ...}`` object on stdout."""
    if getattr(args, "json", False):
        error = {"kind": kind, "message": message, "exit_code": code, **extra}
        print(json.dumps({"action": args.action_name, "error": error}, indent=2, sort_keys=True))
    else:
        suffix = f" (result code {extra['result_code']})" if "result_code" in extra else ""
        print(f"ocs account {args.action_name}: {message}{suffix}", file=sys.stderr)
    return code


def _print(args: argparse.Namespace, data: dict[str, Any]) -> None:
    out = console()
    name = args.action_name
    if name == "list":
        out.print(list_table(data["accounts"]))
        count = len(data["accounts"])
        more = "; more match: narrow with --match or raise --limit" if data["more"] else ""
        out.print(f"{count} account{'s' if count != 1 else ''}{more}")
        return
    if name == "history":
        out.print(f"{data['tenant']} {data['subscriber']}: latest {len(data['records'])} records")
        out.print(history_table(data["records"]))
        if data["truncated"]:
            out.print(f"(stopped after {HISTORY_SCAN_MAX} stream entries)")
        return
    if data["replayed"] and name in ("topup", "adjust", "buy", "change-plan"):
        out.print(f"op id {args.op_id} was already applied: nothing changed this time\n")
    if name == "change-plan":
        plans = data["plan"]
        later = plans["next_cycle_plan"]
        suffix = f" (from its next renewal: {later})" if later != plans["plan"] else ""
        out.print(f"plan {plans['plan']}{suffix}\n")
    for table in account_tables(data):
        out.print(table)


def _run(args: argparse.Namespace) -> int:
    try:
        limit_text = getattr(args, "credit_limit", None)
        if limit_text is not None and parse_amount(limit_text, signed=True) < 0:
            raise UsageError("the credit limit must not be negative")
        parse_op_id(getattr(args, "op_id", None))
        config = load_config(args.config)
        url = resolve_redis_url(
            args.redis_url or config.redis.url, data_dir=args.data_dir or config.redis.data_dir
        )
        data = asyncio.run(_execute(args, url, config))
    except (UsageError, InvalidRequest) as exc:
        return _fail(args, 2, "usage", str(exc))
    except ConfigError as exc:
        return _fail(args, 2, "config", str(exc))
    except LookupRefused as exc:
        return _fail(args, 1, "refused", str(exc))
    except LedgerError as exc:
        return _fail(args, 1, type(exc).__name__, _describe(exc, args), result_code=exc.result_code)
    except RedisSetupError as exc:
        return _fail(args, 1, "redis", str(exc))
    except (RedisError, OSError) as exc:
        return _fail(args, 1, "redis", f"Redis error: {exc}")
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        _print(args, data)
    return 0


def _describe(exc: LedgerError, args: argparse.Namespace) -> str:
    name = type(exc).__name__
    if name == "UnknownAccount":
        where = f" in tenant {args.tenant!r}" if args.tenant else ""
        return f"no account for subscriber {args.subscriber!r}{where}"
    if name == "AccountExists":
        return f"subscriber {args.subscriber!r} already has an account"
    if name == "OperationConflict" and getattr(args, "op_id", None):
        return f"op id {args.op_id!r} was already used for a different operation on this account"
    return str(exc) or name
