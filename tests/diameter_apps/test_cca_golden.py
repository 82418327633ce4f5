"""Byte-identical CCAs for faulty and unusual CCRs: the wire-side guard for work that makes the
parse / fingerprint / answer path cheaper (issue #17) without changing one answer.

tests/ocs/test_recorded_answers.py records well-formed sessions; this records what the wire side
decides on its own: missing AVPs (5005 with Failed-AVP), bad values (5004), an unknown mandatory
AVP (5001), relay AVPs (Route-Record, Proxy-Info echoed in the answer), retransmissions with and
without the T flag (the relay AVPs excluded from the duplicate digest), a reused
CC-Request-Number with other content, three MSCCs in one request, and watchdogs in between.

The CCR bytes are recorded with their answers and replayed as recorded (they are also rebuilt
and compared, so a change of the builders shows). The server runs in-process on the demo catalog
with a fixed clock and a fresh Redis: nothing in a CCA varies between runs (a DWA's
Origin-State-Id does: DWAs are compared by outcome). To re-record
after a deliberate change of answers: ``OCS_RECORD_ANSWERS=1 pytest <this file>``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from diameter_apps.avp import Avp
from diameter_apps.codec import decode_message
from diameter_apps.codes import AvpCode
from diameter_apps.credit_control.codes import CcAvp
from ocs.embedded_redis import EmbeddedRedis
from sim import messages as m
from sim.population import load_population
from tests.ocs.test_recorded_answers import CATALOG, PEER, REALM, replay

FIXTURE = Path(__file__).parent / "golden" / "cca_golden.json"
_SUBSCRIPTION_ID = int(CcAvp.SUBSCRIPTION_ID)
_SESSION_ID = int(AvpCode.SESSION_ID)
_CC_REQUEST_TYPE = int(CcAvp.CC_REQUEST_TYPE)
_MSCC = int(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL)
_DEVICE_WATCHDOG = 280


def _edit(data: bytes, *, drop: int | None = None, add: list[Avp] | None = None,
          replace: dict[int, Avp] | None = None) -> bytes:  # fmt: skip
    """``data`` with the AVPs of code ``drop`` removed, those in ``replace`` swapped, ``add``
    appended (the header kept)."""
    message = decode_message(data)
    avps = [(replace or {}).get(a.code, a) for a in message.avps if a.code != drop or a.vendor != 0]
    message.avps = avps + list(add or [])
    return message.encode()


def _proxy_info(host: str, state: bytes) -> Avp:
    return Avp.grouped(
        AvpCode.PROXY_INFO,
        [Avp.utf8(AvpCode.PROXY_HOST, host), Avp.octets(33, state)],
    )


def golden_requests() -> list[bytes]:
    """The CCRs (and a few DWRs), encoded by the simulator's encoder with fixed ids."""
    subs = load_population(str(CATALOG), per_tenant_max=2)
    encoder = m.CcrEncoder(PEER, REALM)
    out: list[bytes] = []
    ident = 500

    def next_id() -> int:
        nonlocal ident
        ident += 1
        return ident

    def encode(spec: m.CcrSpec, **kw: bool) -> bytes:
        i = next_id()
        return encoder.encode(spec, hop_by_hop=i, end_to_end=i, **kw)

    def gy(rgs: tuple[int, ...], requested: int | None, used: int) -> tuple[m.MsccRequest, ...]:
        return tuple(m.MsccRequest(rg, m.Unit.BYTES, requested=requested, used=used) for rg in rgs)

    sub, other = subs[0], subs[1]
    spec = m.CcrSpec  # short
    s1 = "golden-gw.sim.local;1;1"
    # A session with three MSCCs (one rating group twice in a row would be a client fault; 30
    # is not in every tariff), relay AVPs on the update and retransmissions of it.
    out.append(encode(spec(s1, 1, 0, m.GY_CONTEXT, sub.msisdn, sub.imsi, gy((10, 20, 30), 0, 0))))
    update = encode(spec(s1, 2, 1, m.GY_CONTEXT, sub.msisdn, sub.imsi, gy((10, 20, 30), 0, 7_000)))
    relayed = _edit(
        update,
        add=[Avp.utf8(AvpCode.ROUTE_RECORD, "relay-a.sim.local"), _proxy_info("relay-a", b"s1")],
    )
    out.append(relayed)
    # Retransmitted through another relay (T flag, new hop-by-hop, another Route-Record and
    # Proxy-Info): the same digest, the stored answer (with the Proxy-Info it was stored with).
    again = _edit(
        update,
        add=[Avp.utf8(AvpCode.ROUTE_RECORD, "relay-b.sim.local"), _proxy_info("relay-b", b"s2")],
    )
    out.append(m.with_hop_by_hop(again, next_id(), retransmit=True))
    # The same bytes again without the T flag and with the original hop-by-hop.
    out.append(relayed)
    # The same CC-Request-Number with other content: a client fault.
    out.append(encode(spec(s1, 2, 1, m.GY_CONTEXT, sub.msisdn, sub.imsi, gy((10,), 0, 9_999))))
    i = next_id()
    out.append(m.dwr(PEER, hop_by_hop=i, end_to_end=i))
    out.append(encode(spec(s1, 2, 2, m.GY_CONTEXT, sub.msisdn, sub.imsi, gy((10, 20), None, 1))))
    out.append(encode(spec(s1, 3, 3, m.GY_CONTEXT, sub.msisdn, sub.imsi, gy((10, 20), None, 5))))
    # A retransmitted CCR-T, then an update of the terminated session.
    out.append(m.with_hop_by_hop(out[-1], next_id(), retransmit=True))
    out.append(encode(spec(s1, 2, 4, m.GY_CONTEXT, sub.msisdn, sub.imsi, gy((10,), 0, 0))))

    def fresh(n: int) -> bytes:
        """A well-formed CCR-I of a session of its own: each fault is judged on its own."""
        s = f"golden-gw.sim.local;2;{n}"
        return encode(spec(s, 1, 0, m.GY_CONTEXT, other.msisdn, other.imsi, gy((10,), 0, 0)))

    s2 = "golden-gw.sim.local;2;0"
    base = encode(spec(s2, 1, 0, m.GY_CONTEXT, other.msisdn, other.imsi, gy((10,), 0, 0)))
    # Missing AVPs: 5005 with Failed-AVP.
    out.append(encode(spec("golden-gw.sim.local;2;1", 1, 0, m.GY_CONTEXT, other.msisdn,
                           other.imsi, gy((10,), 0, 0)), omit_request_type=True))  # fmt: skip
    out.append(_edit(fresh(2), drop=_SUBSCRIPTION_ID))
    out.append(_edit(fresh(3), drop=_SESSION_ID))
    # A CC-Request-Type out of range: 5004 with Failed-AVP.
    out.append(_edit(fresh(4), replace={_CC_REQUEST_TYPE: Avp.enum(_CC_REQUEST_TYPE, 9)}))
    # An unknown AVP with the M bit: 5001.
    out.append(_edit(fresh(5), add=[Avp.utf8(4242, "surprise")]))
    # An unknown AVP without the M bit: ignored.
    out.append(_edit(fresh(6), add=[Avp.utf8(4243, "ignored", m=False)]))
    # An MSCC with a Rating-Group of the wrong size: 5014.
    bad_rg = Avp(_MSCC, 0x40, 0, Avp.octets(int(CcAvp.RATING_GROUP), b"\x00\x0a").encode())
    out.append(_edit(fresh(7), drop=_MSCC, add=[bad_rg]))
    # The original, well-formed, then an event (direct debit) and an unknown subscriber.
    out.append(base)
    sms = (m.MsccRequest(None, m.Unit.EVENTS, requested=1),)
    out.append(encode(spec("golden-gw.sim.local;3;1", 4, 0, m.SMS_CONTEXT, other.msisdn,
                           other.imsi, sms, sms_recipient="4915112345678")))  # fmt: skip
    out.append(encode(spec("golden;unknown", 1, 0, m.GY_CONTEXT, "999000001", None,
                           gy((10,), 0, 0))))  # fmt: skip
    # Many MSCCs in an update, with used units only.
    out.append(encode(spec(s2, 2, 1, m.GY_CONTEXT, other.msisdn, other.imsi,
                           gy((10, 20, 30, 40), None, 1_000))))  # fmt: skip
    return out


def test_faulty_and_relayed_ccrs_get_byte_identical_answers(tmp_path: Path) -> None:
    requests = golden_requests()
    record = bool(os.environ.get("OCS_RECORD_ANSWERS"))
    if not record:
        recorded = json.loads(FIXTURE.read_text(encoding="utf-8"))
        assert [p["request"] for p in recorded] == [q.hex() for q in requests]
        requests = [bytes.fromhex(p["request"]) for p in recorded]
    with EmbeddedRedis(tmp_path / "redis") as redis_server:
        answers = asyncio.run(replay(redis_server.url, tmp_path, requests))
    if record:
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        pairs = [
            {"request": q.hex(), "answer": a.hex()} for q, a in zip(requests, answers, strict=True)
        ]
        FIXTURE.write_text(json.dumps(pairs, indent=0) + "\n", encoding="utf-8")
        recorded = pairs
    for number, (pair, answer) in enumerate(zip(recorded, answers, strict=True)):
        if m.summarize_answer(answer).command_code == _DEVICE_WATCHDOG:
            # A DWA carries the process's Origin-State-Id: only its outcome is compared.
            assert m.summarize_answer(answer).result_code == 2001
            continue
        assert answer.hex() == pair["answer"], f"answer {number} changed"
    codes = [m.summarize_answer(a).result_code for a in answers]
    # The recording exercises the wire side's own decisions, not only grants.
    assert {2001, 5001, 5004, 5005} <= set(codes), codes
