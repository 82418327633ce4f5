"""``ocs report exceptions --tenant T --day D``: the stored records behind the exception
alerts (leakage, wholesale above retail, Tcc releases, auto-ended SIP calls) of one UTC day.
Exit codes: 0 listed (even none), 1 the store failed or refused, 2 bad input."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from ocs.commands.store import add_store_options
from ocs.commands.usage import InputError, _fail, _run, parse_time
from ocs.config import StoreConfig
from ocs.exceptions_report import exceptions, summary
from usage.store import UsageStore

ROWS_MAX = 100_000  # a day's exceptions beyond this are summarised, not listed


def register(sub: Any) -> None:
    parser = sub.add_parser("report", help="operator reports from the usage store")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    exc = actions.add_parser("exceptions", help="a day's leakage and exception records")
    add_store_options(exc)
    exc.add_argument("--tenant", required=True)
    exc.add_argument("--day", required=True, metavar="YYYY-MM-DD", help="UTC day")
    exc.add_argument("--json", action="store_true", help="machine-readable output")
    exc.set_defaults(func=_exceptions)


def _money(micros: int) -> str:
    return f"{Decimal(micros) / Decimal(1_000_000):.6f}".rstrip("0").rstrip(".")


def _exceptions(args: argparse.Namespace) -> int:
    try:
        if len(args.day) != 10:
            raise InputError(f"--day: {args.day!r} is not a date (YYYY-MM-DD)")
        start = parse_time(args.day, "--day")
    except InputError as exc:
        return _fail(args, str(exc), 2)

    async def body(store: UsageStore, _config: StoreConfig) -> int:
        items: list[dict[str, Any]] = []
        async for chunk in store.iter_export(args.tenant, start, start + timedelta(days=1)):
            items.extend(exceptions(chunk))
            del items[ROWS_MAX:]
        counts = summary(items)
        if args.json:
            print(json.dumps({"tenant": args.tenant, "day": args.day, "summary": counts,
                              "records": items}, indent=2, sort_keys=True))  # fmt: skip
            return 0
        print(f"tenant {args.tenant}, {args.day} (UTC): {len(items)} exception record(s); "
              f"leakage {_money(counts['leakage_money'])}")  # fmt: skip
        for item in items:
            print(f"{item['ended_at']}  {item['vshard']}:{item['entry_id']}  {item['kind']:<7} "
                  f"{item['subscriber']:<16} {','.join(item['why']):<24} "
                  f"retail {_money(item['retail'])} wholesale {_money(item['wholesale'])} "
                  f"leakage {_money(item['leakage_money'])}")  # fmt: skip
        return 0

    return _run(args, body)
