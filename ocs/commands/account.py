"""``ocs account``: look at and maintain one subscriber account from the command line.

Amounts are decimal currency units on the command line (``5.00``) and integer micro-units in
the ledger; ``Decimal`` is used only here, at that edge. Exit codes: 0 done, 1 the ledger
refused (unknown subscriber, insufficient balance, ...) or Redis is unreachable, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from balance.errors import InvalidRequest, LedgerError
from balance.ledger import Ledger
from balance.records import Account, OpResult, RecordContext
from ocs.charging.notifications import publish_notice
from ocs.config import RedisConfig
from ocs.ledger_runtime import RedisSetupError, resolve_redis_url

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


def register(sub: Any) -> None:
    parser = sub.add_parser("account", help="show and maintain subscriber accounts")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(name: str, help_text: str) -> argparse.ArgumentParser:
        action: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        action.add_argument("--tenant", required=True, help="tenant (MVNO) id")
        action.add_argument("subscriber", help="subscriber id (as provisioned, e.g. MSISDN)")
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
    create = common("create", "provision a new account")
    create.add_argument("--balance", default="0", help="opening balance, e.g. 10.00")
    create.add_argument("--credit-limit", default="0", help="postpaid credit limit, e.g. 50.00")
    topup = common("topup", "add money to the balance")
    topup.add_argument("amount", help="amount in currency units, e.g. 5.00")
    topup.add_argument("--reason", default="topup")
    adjust = common("adjust", "operator correction (signed), with a reason")
    adjust.add_argument("amount", help="signed amount, e.g. -1.25 or 2.00")
    adjust.add_argument("--reason", required=True, help="why (kept on the ledger record)")
    adjust.add_argument("--credit-limit", help="also set the postpaid credit limit")
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


async def _execute(args: argparse.Namespace, url: str) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, socket_timeout=5.0)
    ledger = Ledger(client, args.tenant)
    now_s = time.time()
    # Operator changes are marked as such on their records (the usage store's ``source``).
    context = RecordContext(source="admin", msisdn=args.subscriber, source_ref="cli")
    try:
        result: OpResult | None = None
        name = args.action_name
        if name == "create":
            result = await ledger.provision_account(
                args.subscriber,
                balance=parse_amount(args.balance, signed=True),
                credit_limit=parse_amount(args.credit_limit, signed=True),
                now_s=now_s,
                context=context,
            )
        elif name == "topup":
            amount = parse_amount(args.amount)
            result = await ledger.topup(
                args.subscriber, amount, reason=args.reason, now_s=now_s, context=context
            )
        elif name == "adjust":
            delta = parse_amount(args.amount, signed=True)
            limit = (
                None if args.credit_limit is None else parse_amount(args.credit_limit, signed=True)
            )
            result = await ledger.adjust(
                args.subscriber,
                delta,
                reason=args.reason,
                credit_limit=limit,
                now_s=now_s,
                context=context,
            )
        elif name == "block":
            result = await ledger.block(
                args.subscriber, reason=args.reason, now_s=now_s, context=context
            )
        elif name == "unblock":
            result = await ledger.unblock(
                args.subscriber, reason=args.reason, now_s=now_s, context=context
            )
        if name in ("topup", "block") and result is not None and not result.replayed:
            # Servers owning the subscriber's live sessions send RAR (top-up) or ASR (block).
            await publish_notice(client, args.tenant, args.subscriber, name)
        account = await ledger.query(args.subscriber)
        data = _account_json(args.tenant, args.subscriber, account, now_s)
        data["action"] = name
        data["replayed"] = bool(result and result.replayed)
        return data
    finally:
        await client.aclose()


def _run(args: argparse.Namespace) -> int:
    try:
        limit_text = getattr(args, "credit_limit", None)
        if limit_text is not None and parse_amount(limit_text, signed=True) < 0:
            raise UsageError("the credit limit must not be negative")
        url = resolve_redis_url(args.redis_url, data_dir=args.data_dir)
        data = asyncio.run(_execute(args, url))
    except (UsageError, InvalidRequest) as exc:
        print(f"ocs account {args.action_name}: {exc}", file=sys.stderr)
        return 2
    except LedgerError as exc:
        print(f"ocs account {args.action_name}: {_describe(exc, args)} "
              f"(result code {exc.result_code})", file=sys.stderr)  # fmt: skip
        return 1
    except RedisSetupError as exc:
        print(f"ocs account {args.action_name}: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"ocs account {args.action_name}: Redis error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        _print_account(data)
    return 0


def _describe(exc: LedgerError, args: argparse.Namespace) -> str:
    name = type(exc).__name__
    if name == "UnknownAccount":
        return f"no subscriber {args.subscriber!r} in tenant {args.tenant!r}"
    if name == "AccountExists":
        return f"subscriber {args.subscriber!r} already has an account in tenant {args.tenant!r}"
    return str(exc) or name
