"""ccr_fingerprint tells a retransmission (same content) from a reused CC-Request-Number."""

from __future__ import annotations

from diameter_apps.codec import Avp, Message, decode_message
from diameter_apps.codes import FLAG_RETRANSMIT, AvpCode, CommandCode
from diameter_apps.credit_control import ccr_fingerprint
from tests.diameter_apps.credit_control.ccr_builders import ccr_avps, mscc, rsu, units, usu


def request(avps: list[Avp], hop_by_hop: int = 1, flags: int = 0) -> Message:
    built = Message.request(CommandCode.CREDIT_CONTROL, 4, avps, hop_by_hop=hop_by_hop)
    built.flags |= flags
    return decode_message(built.encode())


BODY = [mscc(1, requested=rsu(), used=[usu(*units(total=1_000))])]


def test_retransmission_through_another_relay_has_the_same_fingerprint() -> None:
    original = request(ccr_avps(2, 4, body=BODY))
    relayed = ccr_avps(2, 4, body=BODY)
    relayed.append(Avp.utf8(AvpCode.ROUTE_RECORD, "dra1.mno.example"))
    relayed.append(Avp.grouped(AvpCode.PROXY_INFO, [Avp.utf8(AvpCode.PROXY_HOST, "dra1")]))
    retransmitted = request(relayed, hop_by_hop=99, flags=FLAG_RETRANSMIT)
    assert ccr_fingerprint(original) == ccr_fingerprint(retransmitted)
    assert len(ccr_fingerprint(original)) == 16


def test_other_usage_under_the_same_request_number_differs() -> None:
    other_body = [mscc(1, requested=rsu(), used=[usu(*units(total=1_001))])]
    first = request(ccr_avps(2, 4, body=BODY))
    reused = request(ccr_avps(2, 4, body=other_body))
    assert ccr_fingerprint(first) != ccr_fingerprint(reused)


def test_decoded_and_built_messages_digest_alike() -> None:
    """The wire path (one hash over the frame) and the built path (AVP encodings) agree, with
    and without relay AVPs; a decoded message modified afterwards falls back to its AVPs."""
    avps = ccr_avps(2, 4, body=BODY)
    built = Message.request(CommandCode.CREDIT_CONTROL, 4, avps, hop_by_hop=1)
    decoded = decode_message(built.encode())
    assert decoded.received_frame() is not None
    assert built.received_frame() is None
    assert ccr_fingerprint(built) == ccr_fingerprint(decoded)
    relayed = [*avps[:3], Avp.utf8(AvpCode.ROUTE_RECORD, "dra1.mno.example"), *avps[3:]]
    decoded_relayed = request(relayed, hop_by_hop=7)
    assert decoded_relayed.received_frame() is not None
    assert ccr_fingerprint(decoded_relayed) == ccr_fingerprint(decoded)
    decoded.avps.append(Avp.utf8(AvpCode.PROXY_HOST, "changed"))
    assert decoded.received_frame() is None
    assert ccr_fingerprint(decoded) != ccr_fingerprint(built)
