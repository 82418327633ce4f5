"""Plans and add-ons in the catalog: validation with file:line, rating per plan, resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from tariffs.errors import CatalogError
from tariffs.loader import load_catalog, load_texts
from tariffs.price import retail as retail_of
from tariffs.provisioning import provision_subscribers
from tariffs.rating import Rater, UsageRequest
from tariffs.subscribers import Resolver
from tests.tariffs.catalogs import MINIMAL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
MIB = 1_048_576

PLANS = (
    MINIMAL
    + """\
bundles:
  - {id: d5, fee: 0, validity: P1M, priority: 5, on_exhaust: payg,
     allowances: [{name: data, service: data, amount: 5000}]}
  - {id: pass, fee: 2.50, validity: P7D, priority: 9, on_exhaust: payg,
     allowances: [{name: data, service: data, amount: 1000}]}
plans:
  - id: basic
  - id: big
    fee: 10
    cycle: monthly
    bundles: [d5]
    rates:
      - {service: data, price: 0.25, cost: 0.5, per: 1048576}
      - {service: voice, dest: de, price: 0.05, cost: 0.01, per: 60}
  - id: iot
    rate_cards:
      - version: iot-1
        effective_from: "2026-01-01T00:00:00Z"
        rates:
          - {service: data, price: 2, cost: 0.5, per: 1048576}
          - {service: voice, price: 1, cost: 0.5, per: 60}
addons: [pass]
subscribers:
  plan: basic
  ranges:
    - {imsi_first: "262010000000000", imsi_last: "262010000000009",
       msisdn_first: "4915100000000", msisdn_last: "4915100000009", plan: big}
  entries:
    - {msisdn: "4915200000001"}
    - {msisdn: "4915200000002", plan: iot}
"""
)


def problems_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_texts([("t.yaml", text)])
    return [str(p) for p in caught.value.problems]


def test_plans_load_with_resolved_rate_cards() -> None:
    tenant = load_texts([("t.yaml", PLANS)]).tenants[0]
    assert [p.id for p in tenant.plans] == ["basic", "big", "iot"]
    basic, big, iot = tenant.plans
    assert [c.version for c in basic.rate_cards] == ["1@basic"]
    assert basic.rate_cards[0].rates == tenant.rate_cards[0].rates
    (card,) = big.rate_cards
    assert card.version == "1@big"
    # data replaced in place, voice to de added after the tenant's rows
    assert [(r.service, r.dest) for r in card.rates] == [
        ("voice", None),
        ("data", None),
        ("voice", "de"),
    ]
    assert card.rates[1].price != tenant.rate_cards[0].rates[1].price
    assert (big.fee, big.cycle, big.bundles) == (10_000_000, "monthly", ("d5",))
    assert [c.version for c in iot.rate_cards] == ["iot-1"]
    assert tenant.addons == ("pass",)


def test_rating_uses_the_plan() -> None:
    catalog = load_texts([("t.yaml", PLANS)])
    rater = Rater(catalog)

    def retail(plan: str) -> int:
        rating = rater.rate(
            UsageRequest("mini", 1_800_000_000, "32251@3gpp.org", rating_group=10, plan=plan)
        )
        return retail_of(rating.price, MIB)

    assert (retail(""), retail("basic"), retail("big"), retail("iot")) == (
        1_000_000,
        1_000_000,
        250_000,
        2_000_000,
    )
    big = rater.rate(UsageRequest("mini", 1_800_000_000, "32251@3gpp.org", 10, plan="big"))
    assert big.version == "1@big" and big.price_key == "mini:1@big:1"
    with pytest.raises(Exception, match="plan 'nope'"):
        rater.rate(UsageRequest("mini", 1_800_000_000, "32251@3gpp.org", 10, plan="nope"))


def test_subscribers_resolve_to_their_plan_and_get_its_bundles() -> None:
    catalog = load_texts([("t.yaml", PLANS)])
    resolver = Resolver(catalog)
    assert resolver.by_msisdn("4915100000003").plan == "big"  # type: ignore[union-attr]
    assert resolver.by_imsi("262010000000003").plan == "big"  # type: ignore[union-attr]
    assert resolver.by_msisdn("4915200000001").plan == "basic"  # type: ignore[union-attr]
    assert resolver.by_msisdn("4915200000002").plan == "iot"  # type: ignore[union-attr]
    provisions = {p.subscriber_id: p for p in provision_subscribers(catalog.tenants[0], 0)}
    assert [b.kind for b in provisions["4915100000003"].buckets] == ["d5.data"]
    assert provisions["4915200000001"].buckets == ()


def test_unknown_plan_of_a_range_is_reported_at_its_line() -> None:
    text = PLANS.replace("plan: big}", "plan: huge}")
    (problem,) = problems_of(text)
    line = text.splitlines().index(
        '       msisdn_first: "4915100000000", msisdn_last: "4915100000009", plan: huge}'
    )
    assert problem.startswith(f"t.yaml:{line + 1}: subscribers.ranges[0].plan: plan 'huge'")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    bundles: [d5]", "    bundles: [d9]", "plans[1].bundles: bundle 'd9' is not defined"),
        ("    cycle: monthly", "    cycle: yearly", "plans[1].cycle: one of monthly"),
        ("    cycle: monthly", "", "plans[1].fee: a plan fee needs a cycle"),
        ("addons: [pass]", "addons: [pas]", "addons: bundle 'pas' is not defined"),
        ("  - id: iot", "  - id: big", "plans[2].id: plan 'big' is defined twice"),
        (
            "      - {service: data, price: 0.25, cost: 0.5, per: 1048576}",
            "      - {service: fax, price: 0.25, cost: 0.5, per: 1048576}",
            "plans[1].rates[0].service",
        ),
    ],
)
def test_plan_problems(old: str, new: str, expected: str) -> None:
    assert PLANS.count(old) == 1
    problems = problems_of(PLANS.replace(old, new))
    assert any(expected in p for p in problems), problems


def test_plan_change_rules() -> None:
    text = PLANS.replace("addons: [pass]", "addons: [pass]\nplan_change: {proration: daily}")
    tenant = load_texts([("t.yaml", text)]).tenants[0]
    assert (tenant.plan_change.proration, tenant.plan_change.buckets) == ("daily", "expire")
    assert load_texts([("t.yaml", PLANS)]).tenants[0].plan_change.proration == "none"
    bad = PLANS.replace("addons: [pass]", "addons: [pass]\nplan_change: {buckets: swap}")
    line = bad.splitlines().index("plan_change: {buckets: swap}") + 1
    assert problems_of(bad) == [f"t.yaml:{line}: plan_change.buckets: one of keep, expire, replace"]


def test_demo_catalog_has_two_plans_and_an_addon_per_tenant() -> None:
    catalog = load_catalog(EXAMPLES)
    for tenant in catalog.tenants:
        assert len(tenant.plans) >= 2 and tenant.addons, tenant.id
        assert any(block.plan for block in tenant.ranges), tenant.id
