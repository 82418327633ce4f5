"""Converged prepaid: one subscriber charged by Diameter (Ro voice) and SIP shares one balance."""

from __future__ import annotations

from diameter.message import Message as PdMessage

from diameter_apps.codec import decode_message
from diameter_apps.events import RequestReceived
from ocs.charging.credit_control import CreditControlHandler
from ocs.charging.sessions import SessionRegistry
from ocs.config import ChargingConfig
from ocs.logging_setup import make_logger
from ocs.sip.authorizer import AuthOutcome
from tests.sip_charging.conftest import ACME_CALLER, DE_MOBILE_CALLEE, Harness
from tests.support.gy import INITIAL, MMTEL_CONTEXT, TERMINATION, Mscc, ccr, msccs_of

EUR = 1_000_000
CALLED = f"tel:+{DE_MOBILE_CALLEE}"


async def send(handler: CreditControlHandler, request: PdMessage) -> PdMessage:
    message = decode_message(request.as_bytes())
    answer = await handler(
        RequestReceived(
            message=message,
            application_id=message.application_id,
            command_code=message.command_code,
            hop_by_hop=message.hop_by_hop,
            end_to_end=message.end_to_end,
            peer_origin_host="cscf.test.local",
            received_at=0.0,
        )
    )
    return PdMessage.from_bytes(answer.encode())


async def test_diameter_and_sip_share_one_balance(harness: Harness) -> None:
    handler = CreditControlHandler(
        harness.directory,
        ChargingConfig(),
        origin_host="ocs.test.local",
        origin_realm="test.local",
        sessions=SessionRegistry(),
        log=make_logger("warning"),
        clock=harness.clock,
    )
    ledger = await harness.ledger("acme")
    await ledger.adjust(ACME_CALLER, -9 * EUR, reason="test", now_s=harness.clock.now)
    cca = await send(
        handler,
        ccr(
            "cscf;1",
            INITIAL,
            0,
            msccs=[Mscc(None, {"cc_time": 300})],
            msisdn=ACME_CALLER,
            context=MMTEL_CONTEXT,
            called=CALLED,
        ),
    )
    assert msccs_of(cca)[None]["time"] == 300  # holds 0.09 + 240 x 0.0015 = 0.45 EUR
    # The SIP grant sees what Diameter holds: 0.55 EUR left → 60 + 0.46 / 0.0015 = 366 s.
    decision = await harness.authorize()
    assert decision.outcome is AuthOutcome.AUTHORIZED
    assert decision.max_duration_s == 366
    harness.clock.now += 61
    await send(
        handler,
        ccr(
            "cscf;1",
            TERMINATION,
            1,
            msccs=[Mscc(None, None, [{"cc_time": 61}])],
            msisdn=ACME_CALLER,
            context=MMTEL_CONTEXT,
            called=CALLED,
        ),
    )
    assert decision.reservation_id is not None
    status, body = await harness.end(decision.reservation_id, 61)
    assert status == 200
    account = await harness.account(ACME_CALLER)
    assert account.balance == body["balance"] == 1 * EUR - 2 * 91_500
    assert account.held_money == 0
    usage = await harness.records(ACME_CALLER)
    assert sorted((r.session_id.startswith("sip:"), r.retail) for r in usage) == [
        (False, 91_500),
        (True, 91_500),
    ]
