"""Two subscribers of one tenant on two plans, charged differently for the same usage through
the Diameter path; the plan is named on the usage record's price key."""

from __future__ import annotations

from tests.charging.conftest import Charging
from tests.support.gy import INITIAL, MMTEL_CONTEXT, TERMINATION, Mscc, ccr, result_code

NO_PLAN = "4917099000001"  # acme's first range: the tenant's rate cards as they are
DATA10 = "4917099500001"  # acme's data10 plan: its own de_fixed voice rate
OPENING = 10_000_000


async def call(charging: Charging, msisdn: str, seconds: int) -> None:
    sid = f"cscf;plan;{msisdn}"
    called = "tel:+49301234567"  # de_fixed
    cca = await charging.send(
        ccr(
            sid,
            INITIAL,
            0,
            msisdn=msisdn,
            context=MMTEL_CONTEXT,
            called=called,
            msccs=[Mscc(None, {"cc_time": 300})],
        )
    )
    assert result_code(cca) == 2001
    charging.clock.now += seconds
    cca = await charging.send(
        ccr(
            sid,
            TERMINATION,
            1,
            msisdn=msisdn,
            context=MMTEL_CONTEXT,
            called=called,
            msccs=[Mscc(None, None, [{"cc_time": seconds}])],
        )
    )
    assert result_code(cca) == 2001


async def test_same_call_costs_what_each_plan_says(charging: Charging) -> None:
    await call(charging, NO_PLAN, 90)
    await call(charging, DATA10, 90)
    (plain,) = await charging.records("acme", NO_PLAN)
    (planned,) = await charging.records("acme", DATA10)
    # 0.04/min in 60 s steps vs the plan's 0.02/min in 60 s steps: 2 minutes each.
    assert (plain.retail, planned.retail) == (80_000, 40_000)
    assert [leg.leg_key.split(":")[1] for leg in plain.legs] == ["acme-2026-01"]
    assert [leg.leg_key.split(":")[1] for leg in planned.legs] == ["acme-2026-01@data10"]
    assert plain.context is not None and planned.context is not None
    assert (plain.context.plan, planned.context.plan) == ("", "data10")
    assert planned.context.rate_card_version == "acme-2026-01@data10"
    assert (await charging.account("acme", NO_PLAN)).balance == OPENING - 80_000
    assert (await charging.account("acme", DATA10)).balance == OPENING - 40_000
