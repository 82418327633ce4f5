"""``ocs account``: look at and maintain one subscriber account from the command line.

Amounts are decimal currency units on the command line (``5.00``) and integer micro-units in
the ledger; ``Decimal`` is used only here, at that edge. Exit codes: 0 done, 1 the ledger
refused (unknown subscriber, insufficient balance, ...) or Redis is unreachable, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from balance.errors import InvalidRequest, LedgerError
from balance.ledger import Ledger
from balance.records import Account, OpResult
from ocs.catalog_store import stored_catalog
from ocs.charging.notifications import publish_notice
from ocs.config import RedisConfig
from ocs.ledger_runtime import RedisSetupError, resolve_redis_url
from ocs.subscriber_lookup import LookupRefused, Target, find_target
from tariffs.errors import CatalogError
from tariffs.model import TOPUP_MAX_DEFAULT

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


def format_amount(micro: int) -> str:
    """Micro-units as a decimal with at least two places (``-1.5`` → ``-1.50``)."""
    text = f"{Decimal(micro) / MICRO_PER_UNIT:f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"


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


def register(sub: Any) -> None:
    parser = sub.add_parser("account", help="show and maintain subscriber accounts")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(name: str, help_text: str) -> argparse.ArgumentParser:
        action: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        action.add_argument(
            "--tenant",
            help="tenant (MVNO) id; optional when the catalog's ranges or entries know the number",
        )
        action.add_argument("subscriber", help="MSISDN (4917099000042 or +49 170 99000042) or IMSI")
        action.add_argument(
            "--redis-url",
            help="Redis URL (default: OCS_REDIS_URL, then <data-dir>/redis.url from `ocs serve`)",
        )
        action.add_argument(
            "--data-dir",
            default=RedisConfig().data_dir,
            help="where `ocs serve` keeps its embedded Redis (default var/redis)",
        )
        action.add_argument("--json", action="store_true", help="machine-readable output")
        action.set_defaults(func=_run, action_name=name)
        return action

    common("show", "balances, buckets and open reservations")
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
    for name, text in (("block", "stop new grants"), ("unblock", "allow grants again")):
        common(name, text).add_argument("--reason", default="")


def _account_json(tenant: str, subscriber: str, account: Account, now_s: float) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "subscriber": subscriber,
        "state": account.state.value,
        "balance": format_amount(account.balance),
        "balance_micro": account.balance,
        "held": format_amount(account.held_money),
        "held_micro": account.held_money,
        "credit_limit": format_amount(account.credit_limit),
        "credit_limit_micro": account.credit_limit,
        "buckets": [
            {
                "id": b.id,
                "kind": b.kind,
                "unit": b.unit,
                "remaining": b.remaining,
                "held": b.held,
                "priority": b.priority,
                "expires_at_s": b.expires_at_s,
                "live": b.live(now_s),
            }
            for b in account.buckets
        ],
        "reservations": [
            {
                "session_id": s.session_id,
                "rating_group": g.rating_group,
                "granted_units": g.granted_units,
                "valid_until_s": g.valid_until_s,
                "held": [
                    {"bucket_id": h.bucket_id or "balance", "amount": h.amount} for h in g.holds
                ],
            }
            for s in account.sessions
            for g in s.rating_groups
            if g.holds
        ],
    }


def _print_account(data: dict[str, Any]) -> None:
    rows = [
        ("tenant", data["tenant"]),
        ("subscriber", data["subscriber"]),
        ("state", data["state"]),
        ("balance", data["balance"]),
        ("held", data["held"]),
        ("credit limit", data["credit_limit"]),
    ]
    for label, value in rows:
        print(f"{label:<14}{value}")
    if data["buckets"]:
        print()
        header = ("bucket", "kind", "unit", "remaining", "held", "prio", "expires_at_s", "live")
        table = [header] + [
            (b["id"], b["kind"], b["unit"], str(b["remaining"]), str(b["held"]),
             str(b["priority"]), f"{b['expires_at_s']:.0f}" if b["expires_at_s"] else "never",
             "yes" if b["live"] else "expired")
            for b in data["buckets"]
        ]  # fmt: skip
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    if data["reservations"]:
        print()
        print("open reservations:")
        for r in data["reservations"]:
            held = ", ".join(f"{h['bucket_id']}={h['amount']}" for h in r["held"])
            print(
                f"  session {r['session_id']} rg {r['rating_group']}: "
                f"{r['granted_units']} units until {r['valid_until_s']:.0f} ({held})"
            )


async def _target(client: Any, args: argparse.Namespace) -> Target:
    name = args.action_name
    try:
        catalog = await stored_catalog(client)
    except CatalogError:
        catalog = None  # a stored catalog that no longer validates: `ocs catalog load` says why
    return find_target(
        catalog,
        args.tenant,
        args.subscriber,
        require_tenant=name in ("create", "topup"),
        require_number=name == "create",
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


async def _execute(args: argparse.Namespace, url: str) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, socket_timeout=5.0)
    now_s = time.time()
    try:
        target = await _target(client, args)
        ledger = Ledger(client, target.tenant)
        subscriber = target.subscriber
        result: OpResult | None = None
        name = args.action_name
        if name == "create":
            result = await ledger.provision_account(
                subscriber,
                balance=parse_amount(args.balance, signed=True),
                credit_limit=parse_amount(args.credit_limit, signed=True),
                now_s=now_s,
            )
        elif name == "topup":
            amount = parse_amount(args.amount)
            _check_topup(target, amount)
            result = await ledger.topup(
                subscriber, amount, reason=args.reason, now_s=now_s, op_id=parse_op_id(args.op_id)
            )
        elif name == "adjust":
            delta = parse_amount(args.amount, signed=True)
            limit = (
                None if args.credit_limit is None else parse_amount(args.credit_limit, signed=True)
            )
            result = await ledger.adjust(
                subscriber,
                delta,
                reason=args.reason,
                credit_limit=limit,
                now_s=now_s,
                op_id=parse_op_id(args.op_id),
            )
        elif name == "block":
            result = await ledger.block(subscriber, reason=args.reason, now_s=now_s)
        elif name == "unblock":
            result = await ledger.unblock(subscriber, reason=args.reason, now_s=now_s)
        if name in ("topup", "block") and result is not None and not result.replayed:
            # Servers owning the subscriber's live sessions send RAR (top-up) or ASR (block).
            await publish_notice(client, target.tenant, subscriber, name)
        account = await ledger.query(subscriber)
        data = _account_json(target.tenant, subscriber, account, now_s)
        data["action"] = name
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


def _run(args: argparse.Namespace) -> int:
    try:
        limit_text = getattr(args, "credit_limit", None)
        if limit_text is not None and parse_amount(limit_text, signed=True) < 0:
            raise UsageError("the credit limit must not be negative")
        parse_op_id(getattr(args, "op_id", None))
        url = resolve_redis_url(args.redis_url, data_dir=args.data_dir)
        data = asyncio.run(_execute(args, url))
    except (UsageError, InvalidRequest) as exc:
        return _fail(args, 2, "usage", str(exc))
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
        if data["replayed"] and data["action"] in ("topup", "adjust"):
            print(f"op id {args.op_id} was already applied: nothing changed this time\n")
        _print_account(data)
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
