"""CCR digests across the upgrade from BLAKE2b to XXH3 (docs/guarantees.md, "Digests across an
upgrade"): an operation record an earlier release stored under the legacy digest still
replays to a retransmission, and still refuses a reused CC-Request-Number with other content.
The earlier release is simulated by rewriting a stored record's digest to the legacy one, the
only part of the record the upgrade changed."""

from __future__ import annotations

import hashlib

import pytest
from diameter.message import Message as PdMessage

from balance import keys
from diameter_apps.codec import HEADER_BYTES, decode_message
from diameter_apps.errors import DiameterError
from tests.charging.conftest import Charging
from tests.support.gy import (
    DIRECT_DEBITING,
    EVENT,
    INITIAL,
    SMS_CONTEXT,
    UPDATE,
    Mscc,
    ccr,
    msccs_of,
    result_code,
)

MIB = 1_048_576
ACME_3 = "4917099000003"
OPENING = 10_000_000


def earlier_release_digest(request: PdMessage) -> str:
    """The digest releases before XXH3 stored: BLAKE2b-128 hex of the command code and the
    frame past its header (written out here, independent of ``legacy_ccr_digest``)."""
    frame = request.as_bytes()
    command = decode_message(frame).command_code.to_bytes(4, "big")
    return hashlib.blake2b(command + frame[HEADER_BYTES:], digest_size=16).hexdigest()


async def stored_by_earlier_release(charging: Charging, request: PdMessage) -> None:
    """Rewrite the operation record of ``request`` as the earlier release wrote it."""
    message = decode_message(request.as_bytes())
    session_id = message.session_id
    number = message.find(415)
    assert session_id is not None and number is not None
    prefix = keys.subscriber_prefix("acme", ACME_3)
    key = keys.op_key(prefix, f"{session_id}:{number.as_u32()}")
    raw = await charging.client.get(key)
    assert raw is not None
    digest, _, result = raw.partition(b"\n")
    assert digest.startswith(b"x") and len(digest) == 33  # this release's format
    legacy = earlier_release_digest(request).encode()
    assert await charging.client.set(key, legacy + b"\n" + result, keepttl=True)


def _session(sid: str) -> list[PdMessage]:
    return [
        ccr(sid, INITIAL, 0, msisdn=ACME_3, msccs=[Mscc(10, {"cc_total_octets": MIB // 2})]),
        ccr(sid, UPDATE, 1, msisdn=ACME_3, msccs=[Mscc(10, {}, [{"cc_total_octets": MIB // 4}])]),
    ]


async def test_a_retransmission_of_a_ccr_answered_before_the_upgrade_is_replayed(
    charging: Charging,
) -> None:
    opening, update = _session("s;upgrade")
    await charging.send(opening)
    first = await charging.send(update)
    await stored_by_earlier_release(charging, update)
    update.header.is_retransmit = True
    again = await charging.send(update)
    assert result_code(again) == result_code(first) == 2001
    assert msccs_of(again) == msccs_of(first)
    assert len(await charging.records("acme", ACME_3)) == 1  # the CCR-U's commit, once


async def test_other_content_under_a_number_stored_before_the_upgrade_is_still_5004(
    charging: Charging,
) -> None:
    opening, update = _session("s;upgrade-conflict")
    await charging.send(opening)
    await charging.send(update)
    await stored_by_earlier_release(charging, update)
    changed = ccr(
        "s;upgrade-conflict",
        UPDATE,
        1,
        msisdn=ACME_3,
        msccs=[Mscc(10, {}, [{"cc_total_octets": MIB // 2}])],
    )
    with pytest.raises(DiameterError) as refused:
        await charging.send(changed)
    assert refused.value.result_code == 5004
    (failed,) = refused.value.failed_avps
    assert failed.code == 415 and failed.as_u32() == 1


async def test_records_written_after_the_upgrade_replay_and_conflict_as_before(
    charging: Charging,
) -> None:
    opening, update = _session("s;new-new")
    await charging.send(opening)
    first = await charging.send(update)
    update.header.is_retransmit = True
    again = await charging.send(update)
    assert msccs_of(again) == msccs_of(first)
    changed = ccr(
        "s;new-new", UPDATE, 1, msisdn=ACME_3, msccs=[Mscc(10, {}, [{"cc_total_octets": 1}])]
    )
    with pytest.raises(DiameterError) as refused:
        await charging.send(changed)
    assert refused.value.result_code == 5004


async def test_an_event_debited_before_the_upgrade_is_not_debited_again(
    charging: Charging,
) -> None:
    def sms(number: int, units: int = 1) -> PdMessage:
        return ccr(
            "smsc;sms;upgrade",
            EVENT,
            number,
            msisdn=ACME_3,
            context=SMS_CONTEXT,
            requested_action=DIRECT_DEBITING,
            msccs=[Mscc(None, {"cc_service_specific_units": units})],
        )

    assert result_code(await charging.send(sms(1))) == 2001
    await stored_by_earlier_release(charging, sms(1))
    again = await charging.send(sms(1))  # the retransmission, after the upgrade
    assert result_code(again) == 2001 and msccs_of(again)[None]["units"] == 1
    assert (await charging.account("acme", ACME_3)).balance == OPENING - 90_000
    with pytest.raises(DiameterError) as refused:
        await charging.send(sms(1, units=2))
    assert refused.value.result_code == 5004
