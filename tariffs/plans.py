"""Plans and add-ons of a tenant's catalog: the YAML schema, its validation, and the rate cards a
plan resolves to.

A tenant without ``plans`` prices every subscriber with its own ``rate_cards`` (as before). With
plans, each plan either brings its own effective-dated ``rate_cards`` or overrides ``rates`` rows
of the tenant's cards: a row with the same (service, leg, zone, dest, band) replaces the tenant's
row in every card, any other row is added. An override plan's card versions are named
``<card>@<plan>`` so the price key of every usage record names the plan that priced it.

``addons`` lists the bundles a subscriber may buy, each at its bundle's ``fee``.

Errors are collected as ``file:line: field: what is wrong`` by the loader's reader, like every
other section; this module is called once per tenant file from ``tariffs.loader``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Protocol, cast, get_args

from yaml.nodes import Node

from tariffs.model import (
    BucketsOnChange,
    Bundle,
    Cycle,
    Plan,
    PlanChangePolicy,
    Proration,
    RateCard,
    RateRow,
    RenewalPolicy,
)
from tariffs.numbers import parse_duration
from tariffs.yamlread import Reader

PLAN_KEYS = frozenset({"id", "rate_cards", "rates", "bundles", "fee", "cycle"})
RENEWAL_KEYS = frozenset({"grace", "retry"})
PLAN_CHANGE_KEYS = frozenset({"proration", "buckets"})
PRORATIONS: tuple[str, ...] = get_args(Proration)
BUCKET_RULES: tuple[str, ...] = get_args(BucketsOnChange)
ROLLOVER_CAP_MAX = 2**53 - 1
PLANS_MAX = 256
CYCLES: tuple[str, ...] = get_args(Cycle)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

_RowKey = tuple[str, str, str | None, str | None, str | None]


class PlanSections(Protocol):
    """What this module needs of the loader's per-file reader (its own section readers)."""

    r: Reader
    currency: str | None

    def _name_list(self, node: Node | None, field: str) -> tuple[str, ...]: ...


ReadRates = Callable[[Node, str], list[RateRow]]
ReadCards = Callable[[Node], list[RateCard]]


def _row_key(row: RateRow) -> _RowKey:
    return (row.service, row.leg, row.zone, row.dest, row.band)


def overridden(cards: tuple[RateCard, ...], plan_id: str, rows: list[RateRow]) -> list[RateCard]:
    """The tenant's ``cards`` with ``rows`` replacing (or added to) each card's rows."""
    out: list[RateCard] = []
    for card in cards:
        by_key = {_row_key(row): row for row in rows}
        merged = [by_key.pop(_row_key(row), row) for row in card.rates]
        merged.extend(row for row in rows if _row_key(row) in by_key)
        out.append(RateCard(f"{card.version}@{plan_id}", card.effective_from, tuple(merged)))
    return out


def read_plans(
    sections: PlanSections,
    node: Node | None,
    cards: list[RateCard],
    bundles: Mapping[str, Bundle],
    read_rates: ReadRates,
    read_cards: ReadCards,
) -> dict[str, Plan]:
    """``plans:`` → plan id → Plan (problems recorded on the reader)."""
    r = sections.r
    plans: dict[str, Plan] = {}
    if node is None:
        return plans
    items = r.sequence(node, "plans") or []
    if len(items) > PLANS_MAX:
        r.problem(node, "plans", f"a tenant has at most {PLANS_MAX} plans")
        return plans
    for index, item in enumerate(items):
        field = f"plans[{index}]"
        m = r.mapping(item, field, PLAN_KEYS, ("id",))
        if m is None or "id" not in m:
            continue
        plan_id = r.string(m["id"], f"{field}.id", _NAME, "a plan id (lowercase letters, digits)")
        if plan_id is not None and plan_id in plans:
            r.problem(m["id"], f"{field}.id", f"plan {plan_id!r} is defined twice")
            plan_id = None
        if "rates" in m and "rate_cards" in m:
            r.problem(m["rate_cards"], f"{field}.rate_cards", "give rates or rate_cards, not both")
            continue
        plan_cards: list[RateCard] = list(cards)
        if "rate_cards" in m:
            plan_cards = read_cards(m["rate_cards"])
            if not plan_cards:
                r.problem(m["rate_cards"], f"{field}.rate_cards", "at least one rate card")
        elif "rates" in m and plan_id is not None:
            plan_cards = overridden(tuple(cards), plan_id, read_rates(m["rates"], f"{field}.rates"))
        elif plan_id is not None:
            # No rates of its own: the tenant's cards, still named after the plan on records.
            plan_cards = overridden(tuple(cards), plan_id, [])
        included = sections._name_list(m.get("bundles"), f"{field}.bundles")
        for bundle_id in included:
            if bundle_id not in bundles:
                r.problem(m["bundles"], f"{field}.bundles", f"bundle {bundle_id!r} is not defined")
        fee = 0
        if "fee" in m:
            fee = r.money(m["fee"], f"{field}.fee", sections.currency) or 0
            if fee < 0:
                r.problem(m["fee"], f"{field}.fee", "must not be negative")
        cycle: str | None = None
        if "cycle" in m:
            cycle = r.string(m["cycle"], f"{field}.cycle")
            if cycle is not None and cycle not in CYCLES:
                r.problem(m["cycle"], f"{field}.cycle", f"one of {', '.join(CYCLES)}")
                cycle = None
        elif fee > 0:
            r.problem(m["fee"], f"{field}.fee", "a plan fee needs a cycle (e.g. cycle: monthly)")
        if plan_id is None:
            continue
        plans[plan_id] = Plan(
            id=plan_id,
            rate_cards=tuple(plan_cards),
            bundles=included,
            fee=fee,
            cycle=cast("Cycle | None", cycle),
        )
    return plans


def read_addons(
    sections: PlanSections, node: Node | None, bundles: Mapping[str, Bundle]
) -> tuple[str, ...]:
    """``addons: [bundle ids]``: bundles a subscriber may buy at the bundle's fee."""
    if node is None:
        return ()
    ids = sections._name_list(node, "addons")
    for bundle_id in ids:
        if bundle_id not in bundles:
            sections.r.problem(node, "addons", f"bundle {bundle_id!r} is not defined")
    if len(set(ids)) != len(ids):
        sections.r.problem(node, "addons", "an add-on is listed twice")
    return ids


def read_plan_ref(
    sections: PlanSections, m: Mapping[str, Node], field: str, inherited: str, plans: set[str]
) -> str:
    """A subscribers / range / entry ``plan:`` (inherited from ``subscribers`` when absent)."""
    if "plan" not in m:
        return inherited
    plan_id = sections.r.string(m["plan"], f"{field}.plan") or ""
    if plan_id not in plans:
        known = ", ".join(sorted(plans)) or "none: define plans first"
        sections.r.problem(m["plan"], f"{field}.plan", f"plan {plan_id!r} is not defined ({known})")
        return inherited
    return plan_id


def read_rollover(sections: PlanSections, m: Mapping[str, Node], field: str) -> int:
    """A bundle's ``rollover_cap``: units per allowance carried into a renewed bucket."""
    if "rollover_cap" not in m:
        return 0
    cap = sections.r.integer(m["rollover_cap"], f"{field}.rollover_cap", 0, ROLLOVER_CAP_MAX)
    return cap or 0


def read_renewal(sections: PlanSections, node: Node | None) -> RenewalPolicy:
    """``renewal: {grace: P3D, retry: PT6H}``: the tenant's policy for unpaid renewals."""
    if node is None:
        return RenewalPolicy()
    r = sections.r
    m = r.mapping(node, "renewal", RENEWAL_KEYS)
    if m is None:
        return RenewalPolicy()
    values = {"grace": RenewalPolicy().grace_s, "retry": RenewalPolicy().retry_s}
    for key in ("grace", "retry"):
        if key not in m:
            continue
        duration = r.convert(m[key], f"renewal.{key}", parse_duration)
        if duration is None:
            continue
        seconds = duration.seconds
        if duration.months or seconds <= 0:
            r.problem(m[key], f"renewal.{key}", "a positive duration in days or hours (P3D, PT6H)")
            continue
        values[key] = seconds
    return RenewalPolicy(grace_s=values["grace"], retry_s=values["retry"])


def read_plan_change(sections: PlanSections, node: Node | None) -> PlanChangePolicy:
    """``plan_change: {proration: daily, buckets: replace}``: the tenant's rules for a
    subscriber's immediate plan change (``ocs account change-plan``)."""
    if node is None:
        return PlanChangePolicy()
    r = sections.r
    m = r.mapping(node, "plan_change", PLAN_CHANGE_KEYS)
    if m is None:
        return PlanChangePolicy()
    chosen: dict[str, str] = {
        "proration": PlanChangePolicy().proration,
        "buckets": PlanChangePolicy().buckets,
    }
    for key, allowed in (("proration", PRORATIONS), ("buckets", BUCKET_RULES)):
        if key not in m:
            continue
        value = r.string(m[key], f"plan_change.{key}")
        if value is None:
            continue
        if value not in allowed:
            r.problem(m[key], f"plan_change.{key}", f"one of {', '.join(allowed)}")
            continue
        chosen[key] = value
    return PlanChangePolicy(
        proration=cast("Proration", chosen["proration"]),
        buckets=cast("BucketsOnChange", chosen["buckets"]),
    )
