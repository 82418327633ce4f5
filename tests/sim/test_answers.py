"""The simulator's light answer scan agrees with the product's full decoder and rejects
truncated or mis-sized answers with a Diameter error instead of crashing."""

from __future__ import annotations

import pytest

from diameter_apps.codec import Avp, Message, decode_message
from diameter_apps.codes import VENDOR_3GPP, AvpCode, CommandCode, ResultCode
from diameter_apps.credit_control.codes import CcAvp
from diameter_apps.errors import DiameterError
from sim import messages as m


def _mscc(rating_group: int, result: int, granted: Avp | None, *, final: bool = False) -> Avp:
    children = [Avp.u32(CcAvp.RATING_GROUP, rating_group), Avp.u32(AvpCode.RESULT_CODE, result)]
    if granted is not None:
        children.insert(0, Avp.grouped(CcAvp.GRANTED_SERVICE_UNIT, [granted]))
    if final:
        children.append(Avp.grouped(CcAvp.FINAL_UNIT_INDICATION, [Avp.u32(449, 0)]))
    return Avp.grouped(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL, children)


def _cca(*, error: bool = False) -> bytes:
    avps = [
        Avp.utf8(AvpCode.SESSION_ID, "sim-x;1;0"),
        Avp.utf8(AvpCode.PRODUCT_NAME, "vendor-specific", vendor=VENDOR_3GPP),
        Avp.u32(AvpCode.RESULT_CODE, ResultCode.SUCCESS),
        _mscc(10, 2001, Avp.u64(CcAvp.CC_TOTAL_OCTETS, 5_000_000_000)),
        _mscc(20, 4012, None, final=True),
        _mscc(30, 2001, Avp.u32(CcAvp.CC_TIME, 60)),
    ]
    message = Message(
        CommandCode.CREDIT_CONTROL, 4, flags=0x60 if error else 0x40,
        hop_by_hop=77, end_to_end=5, avps=avps,
    )  # fmt: skip
    return message.encode()


def test_scan_agrees_with_the_full_decoder() -> None:
    encoded = _cca()
    summary = m.summarize_answer(encoded)
    decoded = decode_message(encoded)
    assert (summary.command_code, summary.hop_by_hop) == (decoded.command_code, 77)
    assert summary.result_code == decoded.result_code == 2001 and not summary.error_bit
    assert [(a.rating_group, a.result_code, a.granted, a.final) for a in summary.msccs] == [
        (10, 2001, 5_000_000_000, False),
        (20, 4012, None, True),
        (30, 2001, 60, False),
    ]
    assert m.summarize_answer(_cca(error=True)).error_bit


@pytest.mark.parametrize("cut", [0, 10, 19, 25, 40, -3])
def test_truncated_answers_raise_a_diameter_error(cut: int) -> None:
    encoded = _cca()[:cut]
    with pytest.raises(DiameterError):
        m.summarize_answer(encoded)


def test_an_avp_longer_than_its_message_raises() -> None:
    encoded = bytearray(_cca())
    encoded[25:28] = (len(encoded)).to_bytes(3, "big")  # first AVP's length: the whole message
    with pytest.raises(DiameterError, match="claims"):
        m.summarize_answer(bytes(encoded))


def test_a_result_code_of_the_wrong_size_raises() -> None:
    bad = Message(
        CommandCode.CREDIT_CONTROL, 4, flags=0x40, hop_by_hop=1, end_to_end=1,
        avps=[Avp(AvpCode.RESULT_CODE, 0x40, 0, b"\x00\x07")],
    ).encode()  # fmt: skip
    with pytest.raises(DiameterError, match="Unsigned"):
        m.summarize_answer(bad)


def test_cached_reads_agree_with_uncached_and_tell_msccs_apart() -> None:
    cache: dict[bytes, m.MsccAnswer] = {}
    first = m.summarize_answer(_cca(), cache)
    assert first == m.summarize_answer(_cca()) and len(cache) == 3
    assert m.summarize_answer(_cca(), cache) == first and len(cache) == 3
    other = Message(
        CommandCode.CREDIT_CONTROL, 4, flags=0x40, hop_by_hop=78, end_to_end=6,
        avps=[Avp.u32(AvpCode.RESULT_CODE, 2001),
              _mscc(10, 2001, Avp.u64(CcAvp.CC_TOTAL_OCTETS, 4_999_999_999))],
    ).encode()  # fmt: skip
    assert m.summarize_answer(other, cache).msccs[0].granted == 4_999_999_999
