"""``ocs settle``: a host MNO's month from invoice to statements.

    ocs settle check                          the wholesale catalog (file:line problems)
    ocs settle open MNO MONTH                 open the period
    ocs settle import-invoice MNO MONTH FILE  the MNO's invoice CSV
    ocs settle import-detail MNO MONTH FILE   the MNO's record-level detail CSV (optional)
    ocs settle reconcile MNO MONTH            our usage against the invoice; the identity
    ocs settle exceptions MNO MONTH           what the ops team reviews
    ocs settle dispute raise|list|send|accept|reject|credit|evidence ...
    ocs settle approve MNO MONTH              refused unless the identity holds
    ocs settle close MNO MONTH
    ocs settle status MNO MONTH               state and every transition (who, when)
    ocs settle statement TENANT MONTH         HTML, CSV and PDF for one MVNO
    ocs settle summary MONTH                  the portfolio view

Every step that changes a period or dispute records ``--actor`` (default: the login name).
Exit codes: 0 done, 1 the store failed or is unreachable, 2 bad input (file:line problems,
catalog, arguments), 3 refused (a step the state does not allow, a period that does not add
up, nothing to dispute).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import io
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocs.commands.store import add_store_options, resolve_url
from ocs.config import ConfigError
from ocs.embedded_postgres import StoreSetupError
from settlement.catalog import load_settlement_catalog
from settlement.disputes import DisputeEvent
from settlement.errors import InputFileError, SettlementError, TransitionError
from settlement.invoice import INVOICE_BYTES_MAX, parse_invoice
from settlement.model import HostMno, SettlementCatalog
from settlement.periods import check_actor, check_month
from settlement.reconcile import Identity, owner_label
from settlement.statement import money as _money_trimmed
from settlement.statement import render_csv, render_html, render_pdf
from tariffs.errors import CatalogError
from tariffs.loader import load_catalog
from tariffs.model import Catalog
from usage.settle_reports import portfolio_summary, record_statement, statement_view
from usage.settle_store import SettlementStore

EXIT_OK, EXIT_STORE, EXIT_INPUT, EXIT_REFUSED = 0, 1, 2, 3
DEFAULT_CATALOG = "examples/catalog"


def money(micro: int) -> str:
    """Micro-units with all 6 decimals, so columns of figures line up."""
    text = _money_trimmed(micro)
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(6, '0')}"


class _Refused(Exception):
    """A step refused with EXIT_REFUSED (the message says why)."""


def _period_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mno", metavar="MNO", help="host MNO id (<catalog>/wholesale/<mno>.yaml)")
    parser.add_argument("month", metavar="MONTH", type=_month, help="YYYY-MM")


def _month(text: str) -> str:
    try:
        return check_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(parser: argparse.ArgumentParser, actor: bool = True) -> None:
    """Store and catalog options; ``--actor`` everywhere (a read-only command ignores it)."""
    add_store_options(parser)
    parser.add_argument(
        "--catalog",
        metavar="DIR",
        default=DEFAULT_CATALOG,
        help="catalog directory: tenant files, wholesale/ and contracts/ "
        f"(default {DEFAULT_CATALOG})",
    )
    if actor:
        parser.add_argument(
            "--actor", default=None, help="who takes the step (recorded; default the login name)"
        )


def register(sub: Any) -> None:
    parser = sub.add_parser("settle", help="wholesale settlement: invoices, disputes, statements")
    actions = parser.add_subparsers(dest="settle_action", metavar="ACTION")
    actions.required = True

    p = actions.add_parser("check", help="validate the wholesale catalog (MNOs and contracts)")
    p.add_argument("--catalog", metavar="DIR", default=DEFAULT_CATALOG)
    p.set_defaults(func=_check)

    for name, help_text, func in (
        ("open", "open the settlement period of a host MNO and month", _open),
        ("reconcile", "reconcile our usage against the invoice; print the identity", _reconcile),
        ("approve", "approve the period (refused unless it adds up to the micro-unit)", _approve),
        ("close", "close the approved period", _close),
    ):
        p = actions.add_parser(name, help=help_text)
        _period_args(p)
        _common(p, actor=True)
        p.set_defaults(func=func)

    for name, help_text, func in (
        ("import-invoice", "import the MNO's invoice CSV (day,service,zone,...)", _import_invoice),
        ("import-detail", "import the MNO's record-level detail CSV (COPY)", _import_detail),
    ):
        p = actions.add_parser(name, help=help_text)
        _period_args(p)
        p.add_argument("file", metavar="FILE")
        _common(p, actor=True)
        p.set_defaults(func=func)

    p = actions.add_parser("status", help="the period's state and its transitions")
    _period_args(p)
    _common(p)
    p.set_defaults(func=_status)

    p = actions.add_parser("exceptions", help="discrepancies to review, largest first")
    _period_args(p)
    _common(p)
    who = p.add_mutually_exclusive_group()
    who.add_argument("--tenant", help="only this MVNO's")
    who.add_argument("--unallocated", action="store_true", help="only those of no MVNO")
    p.add_argument("--kind", help="missing_ours, missing_theirs, quantity_mismatch, ...")
    p.add_argument("--all", action="store_true", help="also those within tolerance")
    p.add_argument("--limit", type=int, default=20, help="rows to list (default 20)")
    p.set_defaults(func=_exceptions)

    dispute = actions.add_parser("dispute", help="disputes with the host MNO")
    steps = dispute.add_subparsers(dest="dispute_action", metavar="STEP")
    steps.required = True
    p = steps.add_parser("raise", help="one dispute per MVNO and kind over tolerance")
    _period_args(p)
    _common(p, actor=True)
    p.set_defaults(func=_dispute_raise)
    p = steps.add_parser("list", help="the period's disputes")
    _period_args(p)
    _common(p)
    p.set_defaults(func=_dispute_list)
    for event in DisputeEvent:
        p = steps.add_parser(event.value, help=f"{event.value} a dispute")
        p.add_argument("id", type=int, metavar="ID")
        if event is DisputeEvent.ACCEPT:
            p.add_argument("--amount", help="accepted amount (default: all that was claimed)")
        p.add_argument("--note", default="", help="recorded with the step")
        _common(p, actor=True)
        p.set_defaults(func=_dispute_step, event=event)
    p = steps.add_parser("evidence", help="a dispute's discrepancies as CSV (invoice lines, ids)")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    _common(p)
    p.set_defaults(func=_dispute_evidence)

    p = actions.add_parser("statement", help="an MVNO's statement: HTML, CSV and PDF")
    p.add_argument("tenant", metavar="TENANT")
    p.add_argument("month", metavar="MONTH", type=_month)
    p.add_argument(
        "--out", metavar="DIR", default="var/statements", help="(default var/statements)"
    )
    p.add_argument("--formats", default="html,csv,pdf", help="any of html,csv,pdf")
    _common(p)
    p.set_defaults(func=_statement)

    p = actions.add_parser("summary", help="portfolio: exposure, margin and status per operator")
    p.add_argument("month", metavar="MONTH", type=_month)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _common(p)
    p.set_defaults(func=_summary)


# -- plumbing ------------------------------------------------------------------------------------


def _fail(message: str, code: int) -> int:
    print(message, file=sys.stderr)
    return code


def _catalogs(args: argparse.Namespace) -> tuple[Catalog, SettlementCatalog]:
    tenants = load_catalog(args.catalog)
    return tenants, load_settlement_catalog(args.catalog, tenants)


def _mno(catalog: SettlementCatalog, mno_id: str) -> HostMno:
    mno = catalog.mno(mno_id)
    if mno is None:
        known = ", ".join(m.id for m in catalog.mnos) or "none"
        raise ValueError(f"unknown host MNO {mno_id!r} (the catalog has: {known})")
    return mno


def _actor(args: argparse.Namespace) -> str:
    return check_actor(args.actor or getpass.getuser())


def _run(
    args: argparse.Namespace,
    body: Callable[[SettlementStore, Catalog, SettlementCatalog], Awaitable[int]],
) -> int:
    """Load the catalogs, open the store, run ``body``; map every failure to its exit code."""
    try:
        tenants, catalog = _catalogs(args)
        _config, url = resolve_url(args)
    except CatalogError as exc:
        return _fail(str(exc), EXIT_INPUT)
    except (ConfigError, StoreSetupError, ValueError) as exc:
        return _fail(str(exc), EXIT_INPUT)

    async def main() -> int:
        async with await SettlementStore.open(url) as store:
            return await body(store, tenants, catalog)

    try:
        return asyncio.run(main())
    except InputFileError as exc:
        return _fail(str(exc), EXIT_INPUT)
    except (TransitionError, _Refused) as exc:
        return _fail(str(exc), EXIT_REFUSED)
    except SettlementError as exc:
        refused = not str(exc).startswith(("cannot connect", "no usage store", "usage store"))
        return _fail(str(exc), EXIT_REFUSED if refused else EXIT_STORE)
    except ValueError as exc:
        return _fail(str(exc), EXIT_INPUT)


def _identity_lines(identity: Identity, currency: str) -> list[str]:
    lines = [
        f"  invoice total      {money(identity.invoice_total):>20} {currency}",
    ]
    for tenant, amount in sorted(identity.allocated.items()):
        lines.append(f"  allocated {tenant:<9}{money(amount):>20}")
    lines += [
        f"  unallocated        {money(identity.unallocated):>20}",
        f"  disputed           {money(identity.disputed):>20}",
        f"  tolerated          {money(identity.tolerated):>20}",
        "  " + ("adds up to the micro-unit" if identity.balanced else
                f"DOES NOT ADD UP: {money(identity.residual)} unexplained"),
    ]  # fmt: skip
    return lines


def _now() -> float:
    return time.time()


# -- commands ------------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    try:
        tenants, catalog = _catalogs(args)
    except CatalogError as exc:
        return _fail(str(exc), EXIT_INPUT)
    for mno in catalog.mnos:
        print(
            f"host MNO {mno.id} ({mno.name}): {len(mno.services)} services, "
            f"{len(mno.zones)} zones, {len(mno.prices)} prices, {mno.currency}"
        )
    for c in catalog.contracts:
        print(
            f"contract {c.tenant}: {'/'.join(c.host_mnos)}, margin {c.margin_ppm / 10_000:g} %, "
            f"{len(c.markups)} markups, fee {money(c.platform_fee)} per active subscriber, "
            f"commitment {money(c.minimum_commitment)} {c.currency}"
        )
    missing = [t.id for t in tenants.tenants if catalog.contract(t.id) is None]
    if missing:
        print(f"tenants without a contract (not settled): {', '.join(missing)}")
    return EXIT_OK


def _open(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        mno = _mno(catalog, args.mno)
        period = await store.open_period(mno, args.month, _actor(args), _now())
        print(f"period {mno.id} {args.month} opened (id {period.id}), state {period.state}")
        return EXIT_OK

    return _run(args, body)


def _import_invoice(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        mno = _mno(catalog, args.mno)
        path = Path(args.file)
        try:
            if path.stat().st_size > INVOICE_BYTES_MAX:
                return _fail(f"{path}:0: (file): larger than {INVOICE_BYTES_MAX} bytes", EXIT_INPUT)
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return _fail(f"{path}:0: (file): cannot read: {exc}", EXIT_INPUT)
        invoice = parse_invoice(text, str(path), mno, args.month)
        period = await store.import_invoice(mno, args.month, invoice, _actor(args), _now())
        print(
            f"invoice {path}: {len(invoice.lines)} lines, total {money(invoice.total)} "
            f"{mno.currency}; period {mno.id} {args.month} is {period.state}"
        )
        return EXIT_OK

    return _run(args, body)


def _import_detail(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        mno = _mno(catalog, args.mno)
        count = await store.import_detail(mno, args.month, args.file, _actor(args), _now())
        print(f"detail {args.file}: {count:,} records loaded")
        return EXIT_OK

    return _run(args, body)


def _reconcile(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, tenants: Catalog, catalog: SettlementCatalog) -> int:
        mno = _mno(catalog, args.mno)
        started = time.perf_counter()
        result = await store.reconcile(mno, args.month, tenants, _actor(args), _now())
        took = time.perf_counter() - started
        print(
            f"reconciled {mno.id} {args.month}: {result.records:,} usage records in {took:.1f} s"
            + (f", detail matched in {result.match_rounds} rounds" if result.match_rounds else "")
        )
        print("\n".join(_identity_lines(result.identity, mno.currency)))
        _print_summary(result.summary)
        if result.rate_checks:
            print(f"{result.rate_checks} invoice lines differ from the price list (see exceptions)")
        return EXIT_OK if result.identity.balanced else EXIT_REFUSED

    return _run(args, body)


def _print_summary(summary: list[tuple[Any, ...]]) -> None:
    if not summary:
        print("no discrepancies: every cell agrees exactly")
        return
    print(f"  {'owner':<12} {'level':<6} {'kind':<18} {'over tol.':<9} {'count':>9} {'amount':>16}")
    for owner, level, kind, over, count, total in summary:
        print(
            f"  {owner_label(owner):<12} {level:<6} {kind:<18} {'yes' if over else 'no':<9} "
            f"{count:>9,} {money(int(total)):>16}"
        )


def _status(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        mno = _mno(catalog, args.mno)
        period = await store.period(mno.id, args.month)
        print(f"period {mno.id} {args.month}: {period.state}")
        if period.invoice_file:
            print(f"  invoice {period.invoice_file}")
        if period.detail_services:
            print(f"  detail for {', '.join(period.detail_services)}")
        if period.cutoff is not None:
            print(f"  records stored up to {period.cutoff.isoformat()} (later ones: next period)")
        if period.identity is not None:
            print("\n".join(_identity_lines(period.identity, mno.currency)))
        for seq, old, new, event, actor, at, note in await store.transitions(period.id):
            print(f"  {seq:>3} {at.isoformat()} {actor:<12} {event:<15} {old} -> {new} {note}")
        return EXIT_OK

    return _run(args, body)


def _exceptions(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        mno = _mno(catalog, args.mno)
        owner = "" if args.unallocated else args.tenant
        limit = max(1, min(int(args.limit), 10_000))
        period, summary, rows = await store.exceptions(
            mno.id, args.month, owner, args.kind, args.all, limit
        )
        print(f"period {mno.id} {args.month}: {period.state}")
        _print_summary([tuple(r) for r in summary])
        if rows:
            print(f"largest {len(rows)}:")
        for r in rows:
            (did, level, kind, own, day, service, zone, oq, tq, oa, ta, delta, over, ev, disp) = r
            print(
                f"  #{did} {level} {kind} {owner_label(own)} {day} {service}/{zone}: ours {oq} "
                f"units {money(oa)}, theirs {tq} units {money(ta)}, difference {money(delta)}"
                f"{'' if over else ' (within tolerance)'}"
                f"{f' [dispute {disp}]' if disp else ''} {ev}"
            )
        return EXIT_OK

    return _run(args, body)


def _dispute_raise(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        mno = _mno(catalog, args.mno)
        created = await store.raise_disputes(mno.id, args.month, _actor(args), _now())
        for did, owner, kind, count, claimed in created:
            print(
                f"dispute {did}: {owner_label(owner)} {kind}, {count:,} discrepancies, claimed "
                f"{money(claimed)} {mno.currency}"
            )
        return EXIT_OK

    return _run(args, body)


def _dispute_list(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        mno = _mno(catalog, args.mno)
        for did, owner, kind, count, claimed, accepted, state in await store.disputes(
            mno.id, args.month
        ):
            extra = f", accepted {money(int(accepted))}" if accepted is not None else ""
            print(
                f"dispute {did}: {state:<9} {owner_label(owner)} {kind}, {count:,} discrepancies, "
                f"claimed {money(int(claimed))}{extra}"
            )
        return EXIT_OK

    return _run(args, body)


def _dispute_step(args: argparse.Namespace) -> int:
    from settlement.invoice import parse_amount

    async def body(store: SettlementStore, _t: Catalog, _c: SettlementCatalog) -> int:
        amount = getattr(args, "amount", None)
        accepted = parse_amount(amount) if amount is not None else None
        state = await store.dispute(args.id, args.event, _actor(args), _now(), accepted, args.note)
        print(f"dispute {args.id}: {state}")
        return EXIT_OK

    return _run(args, body)


def _dispute_evidence(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, _c: SettlementCatalog) -> int:
        rows = await store.dispute_evidence(args.id)
        if not rows:
            raise _Refused(f"dispute {args.id} has no evidence (no such dispute?)")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ("discrepancy", "level", "kind", "owner", "day", "service", "zone", "our_quantity",
             "their_quantity", "our_amount", "their_amount", "difference", "evidence")
        )  # fmt: skip
        for r in rows:
            writer.writerow((*r[:3], owner_label(r[3]), *r[4:]))
        if args.out:
            Path(args.out).write_text(out.getvalue(), encoding="utf-8")
            print(f"{len(rows)} discrepancies written to {args.out}")
        else:
            sys.stdout.write(out.getvalue())
        return EXIT_OK

    return _run(args, body)


def _approve(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        mno = _mno(catalog, args.mno)
        identity = await store.approve(mno.id, args.month, _actor(args), _now())
        print(f"approved {mno.id} {args.month}:")
        print("\n".join(_identity_lines(identity, mno.currency)))
        return EXIT_OK

    return _run(args, body)


def _close(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        mno = _mno(catalog, args.mno)
        period = await store.close_period(mno.id, args.month, _actor(args), _now())
        print(f"period {mno.id} {args.month} is {period.state}; later records go to the next one")
        return EXIT_OK

    return _run(args, body)


def _statement(args: argparse.Namespace) -> int:
    formats = {f.strip() for f in args.formats.split(",") if f.strip()}
    if not formats or not formats <= {"html", "csv", "pdf"}:
        return _fail(f"--formats: expected any of html,csv,pdf, got {args.formats!r}", EXIT_INPUT)

    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        contract = catalog.contract(args.tenant)
        if contract is None:
            raise _Refused(f"tenant {args.tenant!r} has no contract (<catalog>/contracts/)")
        issued = datetime.now(UTC).replace(microsecond=0).isoformat()
        view = await statement_view(store, args.tenant, args.month, contract, catalog, issued)
        if not view.sections:
            raise _Refused(f"no reconciled period of {args.month} has usage of {args.tenant}")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{args.tenant}-{args.month}"
        html = render_html(view)
        written = []
        if "html" in formats:
            stem.with_suffix(".html").write_text(html, encoding="utf-8")
            written.append(str(stem.with_suffix(".html")))
        if "csv" in formats:
            stem.with_suffix(".csv").write_text(render_csv(view), encoding="utf-8")
            written.append(str(stem.with_suffix(".csv")))
        if "pdf" in formats:
            stem.with_suffix(".pdf").write_bytes(render_pdf(html))
            written.append(str(stem.with_suffix(".pdf")))
        await record_statement(store, view)
        s = view.settlement
        print(
            f"statement {args.tenant} {args.month}: wholesale {money(s.wholesale)}, margin "
            f"{money(s.margin + sum(s.markups.values()))}, platform fee {money(s.platform_fee)} "
            f"({s.active_subscribers} active), shortfall {money(s.commitment_shortfall)}, "
            f"disputes {money(s.rejected_disputes)}, amount due {money(s.amount_due)} "
            f"{view.currency}"
        )
        for path in written:
            print(f"  {path}")
        return EXIT_OK

    return _run(args, body)


def _summary(args: argparse.Namespace) -> int:
    async def body(store: SettlementStore, _t: Catalog, catalog: SettlementCatalog) -> int:
        s = await portfolio_summary(store, args.month, catalog)
        if args.json:
            print(json.dumps(_summary_json(s), indent=2, sort_keys=True))
            return EXIT_OK
        print(f"portfolio {args.month}")
        print(
            f"  {'host MNO':<12} {'state':<17} {'invoice':>14} {'payable':>14} "
            f"{'allocated':>14} {'unallocated':>12} {'disputed':>12} {'open claims':>12}"
        )
        for m in s.mnos:
            print(
                f"  {m.mno:<12} {m.state:<17} {money(m.invoice_total):>14} {money(m.payable):>14} "
                f"{money(m.allocated):>14} {money(m.unallocated):>12} {money(m.disputed):>12} "
                f"{money(m.open_claims):>12}{'' if m.balanced else '  NOT BALANCED'}"
            )
        print(f"  exposure {money(s.exposure)}, covered by MVNO wholesale {money(s.covered)}, "
              f"at risk {money(s.at_risk)}")  # fmt: skip
        print(f"  {'operator':<12} {'status':<17} {'wholesale':>14} {'margin+fees':>14} "
              f"{'% of whs.':>9} {'amount due':>14} statement")  # fmt: skip
        for o in s.operators:
            f = o.figures
            pct = f"{100 * o.margin / f.wholesale:.1f}" if f.wholesale else "-"
            print(
                f"  {o.tenant:<12} {o.status:<17} {money(f.wholesale):>14} {money(o.margin):>14} "
                f"{pct:>9} {money(f.amount_due):>14} {'issued' if o.statement_issued else '-'}"
            )
        return EXIT_OK

    return _run(args, body)


def _summary_json(s: Any) -> dict[str, Any]:
    return {
        "month": s.month,
        "exposure": s.exposure,
        "covered": s.covered,
        "at_risk": s.at_risk,
        "mnos": [
            {
                "mno": m.mno, "state": m.state, "invoice_total": m.invoice_total,
                "payable": m.payable, "allocated": m.allocated, "unallocated": m.unallocated,
                "disputed": m.disputed, "tolerated": m.tolerated, "open_claims": m.open_claims,
                "balanced": m.balanced,
            }
            for m in s.mnos
        ],
        "operators": [
            {
                "tenant": o.tenant, "status": o.status, "wholesale": o.figures.wholesale,
                "margin": o.margin, "amount_due": o.figures.amount_due,
                "statement_issued": o.statement_issued,
            }
            for o in s.operators
        ],
    }  # fmt: skip
