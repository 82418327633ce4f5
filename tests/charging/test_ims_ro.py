"""IMS Ro through the Diameter path as a stock client sends it (Kamailio ims_charging's
defaults): context defaults, terminating legs, the roaming zone from IMS-Information."""

from __future__ import annotations

from tests.charging.conftest import Charging
from tests.support.gy import INITIAL, TERMINATION, UPDATE, Mscc, ccr, msccs_of, result_code

KAMAILIO_CONTEXT = "ext.01.001.8.32260@3gpp.org"  # ims_charging: ext.<mnc>.<mcc>.<rel>.32260
ACME_1 = "4917099000001"
OPENING = 10_000_000
CALLED = "sip:+4915112345678@ims.mnc001.mcc262.3gppnetwork.org;user=phone"  # acme de_mobile


def kamailio_ccr(sid: str, kind: int, number: int, mscc: Mscc, **ims: object) -> object:
    """A CCR shaped like ims_charging's: Rating-Group 100 and Service-Identifier 1000 in the
    MSCC, Subscription-Id E.164, IMS-Information with Role-Of-Node and Called-Party-Address."""
    return ccr(
        sid,
        kind,
        number,
        msisdn=ACME_1,
        context=KAMAILIO_CONTEXT,
        called=ims.pop("called", CALLED),
        msccs=[mscc],
        **ims,  # type: ignore[arg-type]
    )


def voice(requested: dict[str, int] | None, used: list[dict[str, int]] | None = None) -> Mscc:
    return Mscc(100, requested, used or [], service_identifier=1000)


async def test_kamailio_defaults_are_charged_as_voice_by_context_default(
    charging: Charging,
) -> None:
    sid = "scscf;ro;defaults"
    cca = await charging.send(kamailio_ccr(sid, INITIAL, 0, voice({"cc_time": 60})))
    assert result_code(cca) == 2001
    assert msccs_of(cca)[100]["result_code"] == 2001 and msccs_of(cca)[100]["time"] == 60
    charging.clock.now += 30
    cca = await charging.send(
        kamailio_ccr(sid, UPDATE, 1, voice({"cc_time": 60}, [{"cc_time": 30}]))
    )
    assert msccs_of(cca)[100]["time"] == 60
    charging.clock.now += 31
    cca = await charging.send(kamailio_ccr(sid, TERMINATION, 2, voice(None, [{"cc_time": 31}])))
    assert result_code(cca) == 2001
    records = await charging.records("acme", ACME_1)
    # Peak de_mobile 0.09/min, first increment 60 s then per second: 30 s -> 0.045 (charged up
    # to 60 s on the first report), then 31 s more: 61 s in all = 0.0915.
    assert sum(r.retail for r in records) == 91_500
    assert {r.service for r in records} == {"voice"} and {r.rating_group for r in records} == {100}
    assert (await charging.account("acme", ACME_1)).balance == OPENING - 91_500


async def test_terminating_leg_at_home_is_free_not_an_outgoing_call(charging: Charging) -> None:
    # The called party of an MT leg is the subscriber: rated as an outgoing call to it, this
    # would cost 0.09/min (de_mobile peak); the tenant's mt row at home says free.
    sid = "scscf;ro;mt-home"
    me = "sip:+4917099000001@ims.mnc001.mcc262.3gppnetwork.org"
    cca = await charging.send(
        kamailio_ccr(sid, INITIAL, 0, voice({"cc_time": 600}), called=me, role_of_node=1)
    )
    assert msccs_of(cca)[100]["result_code"] == 2001 and msccs_of(cca)[100]["time"] == 600
    charging.clock.now += 300
    cca = await charging.send(
        kamailio_ccr(
            sid, TERMINATION, 1, voice(None, [{"cc_time": 300}]), called=me, role_of_node=1
        )
    )
    assert result_code(cca) == 2001
    (record,) = await charging.records("acme", ACME_1)
    assert (record.units, record.retail, record.wholesale) == (300, 0, 0)
    assert (await charging.account("acme", ACME_1)).balance == OPENING


# -- the roaming zone from IMS-Information ------------------------------------------------------

PANI_FRANCE = "3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=2081000A1B2C3D45; network-provided"
PANI_HOME_BY_UE = "3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=2620100A1B2C3D45"  # no network-provided
VISITED_US = "ims.mnc260.mcc310.3gppnetwork.org"


async def test_outgoing_call_roaming_in_the_eu_by_the_p_cscf_cell(charging: Charging) -> None:
    sid = "scscf;ro;mo-eu"
    cells = {"access_network_info": [PANI_HOME_BY_UE, PANI_FRANCE]}
    await charging.send(kamailio_ccr(sid, INITIAL, 0, voice({"cc_time": 60}), **cells))
    charging.clock.now += 45
    await charging.send(kamailio_ccr(sid, TERMINATION, 1, voice(None, [{"cc_time": 45}]), **cells))
    (record,) = await charging.records("acme", ACME_1)
    # acme eu voice: 0.19/min, first increment 30 s then per second: 45 s = 0.1425. At home
    # (what the UE's own header claims) it would be de_mobile peak, 0.09 for the first minute.
    assert (record.retail, record.wholesale) == (142_500, 30_000)


async def test_terminating_leg_roaming_is_charged_by_the_visited_network(
    charging: Charging,
) -> None:
    sid = "scscf;ro;mt-us"
    me = "tel:+4917099000001"
    roaming = {"called": me, "role_of_node": 1, "ims_visited_network": VISITED_US}
    await charging.send(kamailio_ccr(sid, INITIAL, 0, voice({"cc_time": 120}), **roaming))
    charging.clock.now += 61
    cca = await charging.send(
        kamailio_ccr(sid, TERMINATION, 1, voice(None, [{"cc_time": 61}]), **roaming)
    )
    assert result_code(cca) == 2001
    (record,) = await charging.records("acme", ACME_1)
    # acme mt world: 0.79 per started minute (61 s = 2 minutes), wholesale 0.35/min.
    assert (record.retail, record.wholesale) == (1_580_000, 355_834)
    assert (await charging.account("acme", ACME_1)).balance == OPENING - 1_580_000
