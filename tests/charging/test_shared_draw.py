"""Group members draw from the group's shared bucket while they use the service, through the
Diameter path on a real Redis: granted from the pool when their own units end, never beyond
the pool or a member's cap, once per CCR however often it is retransmitted; a subscriber in no
group makes exactly the Redis calls it made before."""

from __future__ import annotations

import asyncio
from typing import Any

from balance.ledger import Ledger
from balance.records import BucketUnit
from balance.shared import (
    Membership,
    draw_shared,
    fill_group,
    member_drawn,
    read_group,
    read_memberships,
)
from ocs.app import OcsApp
from ocs.charging.directory import TenantDirectory
from ocs.charging.notifications import AccountNotice
from ocs.charging.shared_draw import GROUP_NOTICE
from ocs.config import load_config
from tests.charging.conftest import Charging
from tests.support.charging import DEMO_CATALOG
from tests.support.gy import INITIAL, UPDATE, Mscc, ccr, msccs_of, result_code

MIB = 1024 * 1024
ROAMING = "310260"  # world zone: only the roaming add-on's buckets or money pay (5.00/MiB)
POOL_KIND = "roam_world_500m.data"
A, B, OUTSIDER = "4917099000011", "4917099000012", "4917099000013"


async def setup_group(charging: Charging, amount: int, cap: int, members: list[str]) -> None:
    """The members' own money gone, a pool of the roaming kind filled, the index loaded."""
    ledger = await charging.ledger("acme")
    now = charging.clock.now
    for member in [*members, OUTSIDER]:
        balance = (await ledger.query(member)).balance
        await ledger.adjust(member, -balance, reason="test: no own credit", now_s=now)
    await fill_group(
        ledger, "fam", period="2026-11", kind=POOL_KIND, unit=BucketUnit.BYTES,
        amount=amount, member_cap=cap, members=members, expires_at_s=0.0,
    )  # fmt: skip
    charging.directory.groups.replace("acme", await read_memberships(charging.client, "acme"))


def roaming(sid: str, kind: int, number: int, msisdn: str, used: int = 0) -> Any:
    reported = [{"cc_total_octets": used}] if used else []
    return ccr(sid, kind, number, msisdn=msisdn, visited_plmn=ROAMING,
               msccs=[Mscc(10, {"cc_total_octets": 10 * MIB}, reported)])  # fmt: skip


def octets(cca: Any) -> int:
    granted = msccs_of(cca)[10]["octets"]
    return granted if isinstance(granted, int) else 0


async def pool_left(charging: Charging) -> int:
    found = await read_group(await charging.ledger("acme"), "fam")
    assert found is not None
    remaining: int = found[0].remaining
    return remaining


async def test_member_without_own_units_is_granted_from_the_pool(charging: Charging) -> None:
    await setup_group(charging, amount=100 * MIB, cap=60 * MIB, members=[A, B])
    # Without a group the same request is refused: nothing of its own pays.
    cca = await charging.send(roaming("s;out", INITIAL, 0, OUTSIDER))
    assert msccs_of(cca)[10]["result_code"] == 4012

    cca = await charging.send(roaming("s;a", INITIAL, 0, A))
    assert result_code(cca) == 2001
    assert msccs_of(cca)[10]["octets"] == 10 * MIB
    ledger = await charging.ledger("acme")
    assert await member_drawn(ledger, "fam", A) == 10 * MIB
    assert await pool_left(charging) == 90 * MIB
    # The next CCR-U commits the 10 MiB from the drawn bucket (no money) and draws again.
    charging.clock.now += 60
    cca = await charging.send(roaming("s;a", UPDATE, 1, A, used=10 * MIB))
    assert msccs_of(cca)[10]["octets"] == 10 * MIB
    assert await member_drawn(ledger, "fam", A) == 20 * MIB
    account = await charging.account("acme", A)
    assert account.balance == 0
    drawn = [b for b in account.buckets if b.kind == POOL_KIND]
    assert (sum(b.remaining for b in drawn), sum(b.held for b in drawn)) == (0, 10 * MIB)
    (record,) = await charging.records("acme", A)
    from_pool = sum(b.units for b in record.buckets)
    assert (record.units, record.retail, from_pool) == (10 * MIB, 0, 10 * MIB)


async def test_two_members_at_once_never_overdraw_the_pool(charging: Charging) -> None:
    await setup_group(charging, amount=45 * MIB, cap=30 * MIB, members=[A, B])

    async def session(member: str) -> int:
        sid = f"s;conc;{member}"
        cca = await charging.send(roaming(sid, INITIAL, 0, member))
        granted = last = octets(cca)
        for number in range(1, 8):
            charging.clock.now += 1
            cca = await charging.send(roaming(sid, UPDATE, number, member, used=last))
            last = octets(cca)
            granted += last
        return granted

    got_a, got_b = await asyncio.gather(session(A), session(B))
    ledger = await charging.ledger("acme")
    drawn_a, drawn_b = await member_drawn(ledger, "fam", A), await member_drawn(ledger, "fam", B)
    # Every unit of the pool went to one member, none beyond the pool or a member's cap.
    assert drawn_a + drawn_b == 45 * MIB and await pool_left(charging) == 0
    assert drawn_a <= 30 * MIB and drawn_b <= 30 * MIB
    assert (got_a, got_b) == (drawn_a, drawn_b)  # each granted exactly what it drew


async def test_retransmitted_ccr_draws_once(charging: Charging) -> None:
    await setup_group(charging, amount=100 * MIB, cap=60 * MIB, members=[A, B])
    request = roaming("s;retry", INITIAL, 0, A)
    first = await charging.send(request)
    again = await charging.send(request)
    assert msccs_of(first)[10]["octets"] == msccs_of(again)[10]["octets"] == 10 * MIB
    ledger = await charging.ledger("acme")
    assert await member_drawn(ledger, "fam", A) == 10 * MIB
    account = await charging.account("acme", A)
    assert [b.held for b in account.buckets if b.kind == POOL_KIND] == [10 * MIB]
    assert account.held_money == 0


async def command_calls(charging: Charging) -> dict[str, int]:
    stats = await charging.client.info("commandstats")
    return {name: int(row["calls"]) for name, row in stats.items() if name != "cmdstat_info"}


async def calls_of(charging: Charging, request: Any) -> dict[str, int]:
    before = await command_calls(charging)
    await charging.send(request)
    after = await command_calls(charging)
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


async def test_non_member_makes_the_same_redis_calls(charging: Charging) -> None:
    outsider = "4917099000020"  # keeps its own credit
    await charging.send(roaming("s;warm", INITIAL, 0, outsider))  # loads scripts and ledger
    without_groups = await calls_of(charging, roaming("s;n1", INITIAL, 0, outsider))
    await setup_group(charging, amount=100 * MIB, cap=60 * MIB, members=[A, B])
    assert len(charging.directory.groups) == 2
    with_groups = await calls_of(charging, roaming("s;n2", INITIAL, 0, outsider))
    # One script call (its own MGET/SET counted inside), the same with and without groups.
    assert with_groups == without_groups
    assert with_groups["cmdstat_fcall"] == 1 and "cmdstat_hget" not in with_groups
    # A member whose own units cover the request does not draw either (A has no money: use
    # home data, which its data_1g bucket pays).
    home = ccr("s;home", INITIAL, 0, msisdn=A, msccs=[Mscc(10, {"cc_total_octets": MIB})])
    member_calls = await calls_of(charging, home)
    assert member_calls["cmdstat_fcall"] == 1 and "cmdstat_hkeys" not in member_calls
    assert await member_drawn(await charging.ledger("acme"), "fam", A) == 0


async def test_server_reads_the_member_index_at_start_resync_and_notice(redis_url: str) -> None:
    config = load_config(
        overrides={"redis": {"url": redis_url}, "catalog": {"path": str(DEMO_CATALOG)}},
        environ={},
    )
    app = OcsApp(config)
    await app._start_ledger()
    try:
        catalog = await app._load_catalog()
        assert app.ledger.admin is not None
        ledger = Ledger(app.ledger.admin, "acme")  # fills are the operator's (ocs group fill)
        await fill_group(
            ledger, "fam", period="2026-11", kind=POOL_KIND, unit=BucketUnit.BYTES,
            amount=MIB, member_cap=MIB, members=[A], expires_at_s=0.0,
        )  # fmt: skip
        app.directory = TenantDirectory(catalog, app._ledger_for, app.dynamic)
        await app._read_group_members(catalog)  # what start() does
        assert app.directory.groups.get("acme", A) == Membership("fam", POOL_KIND)
        await fill_group(
            ledger, "fam", period="2026-12", kind=POOL_KIND, unit=BucketUnit.BYTES,
            amount=MIB, member_cap=MIB, members=[B], expires_at_s=0.0,
        )  # fmt: skip
        await app._on_notice(AccountNotice("acme", "fam", GROUP_NOTICE))  # ocs group fill's
        assert app.directory.groups.get("acme", A) is None
        assert app.directory.groups.get("acme", B) == Membership("fam", POOL_KIND)
        app.directory.groups.replace("acme", {})  # a notice missed: the resync repairs it
        await app._resync_directory()
        assert app.directory.groups.get("acme", B) == Membership("fam", POOL_KIND)
        # The server draws on the tenant's own ACL user: its commands allow the whole draw.
        served = await app._ledger_for("acme")
        draw = await draw_shared(served, "fam", B, 1000, now_s=1.0, op_id="acl-check")
        assert (draw.units, await member_drawn(ledger, "fam", B)) == (1000, 1000)
    finally:
        await app.ledger.stop()
