"""Tariff switches on the wire (RFC 4006 §8.20-8.21) through the Diameter path: the grant
announces the band change (Tariff-Time-Change) instead of ending there, the next CCR-U reports
usage split by Tariff-Change-Usage and each side is priced at its own tariff; the
``validity_cap`` fallback ends the grant before the change, earlier by a per-session jitter."""

from __future__ import annotations

import msgspec
from diameter.message import Message as PdMessage
from diameter.message.avp.grouped import UsedServiceUnit

from tariffs.model import TariffSwitch
from tariffs.tariff_switch import session_jitter_s
from tests.charging.conftest import Charging
from tests.support.gy import (
    INITIAL,
    MMTEL_CONTEXT,
    TERMINATION,
    UPDATE,
    Mscc,
    ccr,
    msccs_of,
    result_code,
    tariff_time_changes,
)

ACME_1 = "4917099000001"
CALLED = "tel:+4915112345678"  # de_mobile: peak 0.09/min until 19:00, then off-peak 0.05/min
PEAK_END = 1_794_906_000 + 9 * 3600  # a Tuesday, 19:00 Berlin
OPENING = 10_000_000


def voice(sid: str, kind: int, number: int, mscc: Mscc) -> PdMessage:
    return ccr(sid, kind, number, msisdn=ACME_1, context=MMTEL_CONTEXT, called=CALLED, msccs=[mscc])


async def test_grant_announces_the_change_and_split_usage_is_priced_per_side(
    charging: Charging,
) -> None:
    charging.clock.now = PEAK_END - 60
    sid = "cscf;ttc;1"
    raw = await charging.send_raw(voice(sid, INITIAL, 0, Mscc(None, {"cc_time": 300})))
    answer = msccs_of(PdMessage.from_bytes(raw))[None]
    # No re-authorisation at 19:00: the full Validity-Time, and the change announced.
    assert answer["validity"] == 3600 and tariff_time_changes(raw) == {None: PEAK_END}
    # The CCR-U comes 5 minutes after the change (the client was idle): placed on the clock,
    # all 150 s would be off-peak; the client's split says 60 s before and 90 s after.
    charging.clock.now = PEAK_END + 300
    request = voice(sid, UPDATE, 1, Mscc(None, {"cc_time": 300}))
    mscc = request.multiple_services_credit_control[0]
    mscc.used_service_unit = [
        UsedServiceUnit(cc_time=60, tariff_change_usage=0),  # UNIT_BEFORE_TARIFF_CHANGE
        UsedServiceUnit(cc_time=90, tariff_change_usage=1),  # UNIT_AFTER_TARIFF_CHANGE
    ]
    raw = await charging.send_raw(request)
    assert result_code(PdMessage.from_bytes(raw)) == 2001
    assert tariff_time_changes(raw) == {None: None}  # the next change is tomorrow 08:00
    (record,) = await charging.records("acme", ACME_1)
    # 60 s at peak (first increment 60 s): 0.09; 90 s off-peak (60 + 30 x 1 s): 0.075.
    assert [(leg.units, leg.retail) for leg in record.legs] == [(60, 90_000), (90, 75_000)]
    assert record.legs[0].leg_key != record.legs[1].leg_key
    cca = await charging.send(voice(sid, TERMINATION, 2, Mscc(None, None, [{"cc_time": 0}])))
    assert result_code(cca) == 2001
    assert (await charging.account("acme", ACME_1)).balance == OPENING - 165_000


async def test_indeterminate_usage_is_priced_at_the_tariff_of_the_grant(
    charging: Charging,
) -> None:
    charging.clock.now = PEAK_END - 60
    sid = "cscf;ttc;2"
    await charging.send(voice(sid, INITIAL, 0, Mscc(None, {"cc_time": 300})))
    charging.clock.now = PEAK_END + 60
    request = voice(sid, TERMINATION, 1, Mscc(None, None))
    request.multiple_services_credit_control[0].used_service_unit = [
        UsedServiceUnit(cc_time=120, tariff_change_usage=2)  # UNIT_INDETERMINATE
    ]
    assert result_code(await charging.send(request)) == 2001
    (record,) = await charging.records("acme", ACME_1)
    assert [(leg.units, leg.retail) for leg in record.legs] == [(120, 180_000)]  # all at peak


async def test_validity_cap_fallback_with_jitter_from_the_session_id(charging: Charging) -> None:
    catalog = charging.directory.snapshot.catalog
    capped = [
        msgspec.structs.replace(t, tariff_switch=TariffSwitch("validity_cap", 30))
        if t.id == "acme"
        else t
        for t in catalog.tenants
    ]
    charging.directory.replace_catalog(msgspec.structs.replace(catalog, tenants=tuple(capped)))
    charging.clock.now = PEAK_END - 600
    validities = {}
    for n in range(4):
        sid = f"cscf;cap;{n}"
        raw = await charging.send_raw(voice(sid, INITIAL, 0, Mscc(None, {"cc_time": 300})))
        validities[sid] = msccs_of(PdMessage.from_bytes(raw))[None]["validity"]
        assert tariff_time_changes(raw) == {None: None}  # not announced: the cap instead
    # Each session re-authorises up to 30 s before 19:00, by its own Session-Id: exactly.
    assert validities == {sid: 600 - session_jitter_s(sid, 30) for sid in validities}
    assert len(set(validities.values())) > 1  # spread, not all in the same second
    # Within the jitter window of the change: the grant ends at the change itself.
    charging.clock.now = PEAK_END - 1
    raw = await charging.send_raw(voice("cscf;cap;late", INITIAL, 0, Mscc(None, {"cc_time": 9})))
    assert msccs_of(PdMessage.from_bytes(raw))[None]["validity"] == 1
