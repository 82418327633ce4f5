"""ccr_digest tells a retransmission (same content) from a reused CC-Request-Number;
legacy_ccr_digest is the earlier releases' digest of the same content."""

from __future__ import annotations

import hashlib

from diameter_apps.codec import HEADER_BYTES, Avp, Message, decode_message
from diameter_apps.codes import FLAG_RETRANSMIT, AvpCode, CommandCode
from diameter_apps.credit_control import ccr_digest, legacy_ccr_digest
from diameter_apps.message import message_of
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
    assert ccr_digest(original) == ccr_digest(retransmitted)
    digest = ccr_digest(original)
    assert digest[0] == "x" and len(digest) == 33 and int(digest[1:], 16) >= 0
    assert legacy_ccr_digest(original) == legacy_ccr_digest(retransmitted)


def test_other_usage_under_the_same_request_number_differs() -> None:
    other_body = [mscc(1, requested=rsu(), used=[usu(*units(total=1_001))])]
    first = request(ccr_avps(2, 4, body=BODY))
    reused = request(ccr_avps(2, 4, body=other_body))
    assert ccr_digest(first) != ccr_digest(reused)
    assert legacy_ccr_digest(first) != legacy_ccr_digest(reused)


def test_decoded_and_built_messages_digest_alike() -> None:
    """The wire path (one hash over the frame) and the built path (AVP encodings) agree, with
    and without relay AVPs; a decoded message modified afterwards falls back to its AVPs."""
    avps = ccr_avps(2, 4, body=BODY)
    built = Message.request(CommandCode.CREDIT_CONTROL, 4, avps, hop_by_hop=1)
    decoded = decode_message(built.encode())
    assert decoded.received_frame() is not None
    assert built.received_frame() is None
    assert ccr_digest(built) == ccr_digest(decoded)
    relayed = [*avps[:3], Avp.utf8(AvpCode.ROUTE_RECORD, "dra1.mno.example"), *avps[3:]]
    decoded_relayed = request(relayed, hop_by_hop=7)
    assert decoded_relayed.received_frame() is not None
    assert ccr_digest(decoded_relayed) == ccr_digest(decoded)
    decoded.avps.append(Avp.utf8(AvpCode.PROXY_HOST, "changed"))
    assert decoded.received_frame() is None
    assert ccr_digest(decoded) != ccr_digest(built)


def test_the_legacy_digest_is_the_earlier_releases() -> None:
    """BLAKE2b-128 hex of the command code and the frame past its header, as releases before
    XXH3 stored it (a record of theirs must still match a retransmission)."""
    built = Message.request(CommandCode.CREDIT_CONTROL, 4, ccr_avps(2, 4, body=BODY))
    frame = built.encode()
    command = int(CommandCode.CREDIT_CONTROL).to_bytes(4, "big")
    expected = hashlib.blake2b(command + frame[HEADER_BYTES:], digest_size=16).hexdigest()
    assert legacy_ccr_digest(decode_message(frame)) == expected
    assert legacy_ccr_digest(built) == expected


def test_the_shape_map_and_the_lookups_agree_on_relay_avps() -> None:
    """A message with the decoder's positions map (the server's) and one without (lookups by
    ``find``) digest alike, with and without a relay AVP."""
    plain = ccr_avps(2, 4, body=BODY)
    relayed = [*plain, Avp.utf8(AvpCode.ROUTE_RECORD, "dra1.mno.example")]
    for avps in (plain, relayed):
        frame = Message.request(CommandCode.CREDIT_CONTROL, 4, avps).encode()
        decoded = decode_message(frame)
        positions: dict[tuple[int, int], tuple[int, ...]] = {}
        for at, avp in enumerate(decoded.avps):
            key = (avp.code, avp.vendor)
            positions[key] = (*positions.get(key, ()), at)
        mapped = message_of(frame, list(decoded.avps), positions)  # as the shape cache does
        assert mapped.shared_positions() is positions and decoded.shared_positions() is None
        assert ccr_digest(mapped) == ccr_digest(decoded) == ccr_digest(request(plain))
