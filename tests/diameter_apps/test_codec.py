"""Codec: builders and getters, padding, vendor bit, limits, and interop with python-diameter."""

from __future__ import annotations

import ipaddress

import pytest
from diameter.message import Message as PdMessage
from diameter.message.avp import Avp as PdAvp
from diameter.message.commands import CreditControlAnswer, CreditControlRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from diameter_apps.codec import Avp, Message, decode_avps, decode_message
from diameter_apps.codes import VENDOR_3GPP, AvpCode
from diameter_apps.errors import (
    InvalidAvpLength,
    InvalidAvpValue,
    InvalidMessageLength,
    UnableToComply,
    UnsupportedVersion,
)
from diameter_apps.limits import CodecLimits


def test_typed_values_round_trip() -> None:
    avps = [
        Avp.u32(1, 4_000_000_000),
        Avp.i32(2, -5),
        Avp.u64(3, 2**63 + 5),
        Avp.i64(4, -(2**40)),
        Avp.f32(5, 1.5),
        Avp.f64(6, -2.25),
        Avp.utf8(7, "héllo"),
        Avp.octets(8, b"\x00\xff"),
        Avp.time(9, 1_700_000_000),
        Avp.address(10, "10.1.2.3"),
        Avp.address(11, "2001:db8::1"),
        Avp.enum(12, 3),
    ]
    decoded = decode_message(Message.request(272, 4, avps).encode()).avps
    assert decoded == avps
    assert decoded[0].as_u32() == 4_000_000_000
    assert decoded[1].as_i32() == -5
    assert decoded[2].as_u64() == 2**63 + 5
    assert decoded[3].as_i64() == -(2**40)
    assert decoded[4].as_f32() == 1.5
    assert decoded[5].as_f64() == -2.25
    assert decoded[6].as_str() == "héllo"
    assert decoded[7].as_bytes() == b"\x00\xff"
    assert decoded[8].as_time() == 1_700_000_000
    assert decoded[9].as_address() == ipaddress.IPv4Address("10.1.2.3")
    assert decoded[10].as_address() == ipaddress.IPv6Address("2001:db8::1")
    assert decoded[11].as_i32() == 3


def test_time_after_2036_uses_the_next_ntp_era() -> None:
    after_rollover = 2_085_978_496 + 100  # 2036-02-07T06:28:16Z + 100 s
    assert Avp.time(55, after_rollover).as_time() == after_rollover


def test_padding_and_vendor_bit_on_the_wire() -> None:
    avp = Avp.utf8(831, "abcde", vendor=VENDOR_3GPP)
    wire = avp.encode()
    assert len(wire) == 12 + 5 + 3
    assert wire[4] == 0xC0  # V and M
    assert int.from_bytes(wire[5:8], "big") == 17  # length excludes padding
    assert int.from_bytes(wire[8:12], "big") == VENDOR_3GPP
    assert wire[-3:] == b"\0\0\0"
    assert decode_avps(wire) == [avp]


def test_nested_grouped_is_decoded_lazily_and_found() -> None:
    mscc = Avp.grouped(
        456,
        [Avp.u32(432, 10), Avp.grouped(437, [Avp.u64(421, 1000)]), Avp.u32(432, 11)],
    )
    message = decode_message(Message.request(272, 4, [mscc]).encode())
    top = message.find(456)
    assert top is not None and not top.children_decoded
    assert [a.as_u32() for a in top.find_all(432)] == [10, 11]
    rsu = top.find(437)
    assert rsu is not None and rsu.depth == 2
    total = rsu.find(421)
    assert total is not None and total.as_u64() == 1000 and total.depth == 3
    assert top.find(999) is None


def test_grouped_depth_limit_is_5004_with_the_grouped_avp() -> None:
    inner = Avp.u32(1, 1)
    for _ in range(5):
        inner = Avp.grouped(456, [inner])
    message = decode_message(Message.request(272, 4, [inner]).encode())
    avp = message.avps[0]
    with pytest.raises(InvalidAvpValue) as caught:
        while True:
            avp = avp.children(CodecLimits(avp_depth_max=3))[0]
    assert caught.value.result_code == 5004
    assert caught.value.failed_avps[0].depth == 3


def test_avps_max_is_enforced() -> None:
    message = Message.request(272, 4, [Avp.u32(1, i) for i in range(11)])
    with pytest.raises(UnableToComply):
        decode_message(message.encode(), CodecLimits(avps_max=10))
    assert len(decode_message(message.encode(), CodecLimits(avps_max=11)).avps) == 11


def test_bad_avp_length_is_5014_keeping_the_avps_before_it() -> None:
    good = Avp.utf8(AvpCode.SESSION_ID, "s;1").encode()
    bad = bytearray(Avp.u32(416, 1).encode())
    bad[5:8] = (200).to_bytes(3, "big")  # overruns the message
    body = good + bytes(bad)
    header = Message.request(272, 4).encode()
    wire = bytearray(header + body)
    wire[1:4] = len(wire).to_bytes(3, "big")
    with pytest.raises(InvalidAvpLength) as caught:
        decode_message(bytes(wire))
    error = caught.value
    assert error.result_code == 5014
    assert error.failed_avps[0].code == 416
    assert error.request is not None and error.request.session_id == "s;1"


def test_header_faults() -> None:
    wire = bytearray(Message.request(272, 4, [Avp.u32(1, 1)]).encode())
    with pytest.raises(InvalidMessageLength):
        decode_message(bytes(wire[:16]))
    wire[0] = 2
    with pytest.raises(UnsupportedVersion) as caught:
        decode_message(bytes(wire))
    assert caught.value.request is not None and caught.value.request.command_code == 272


def test_wrong_size_for_a_fixed_type_is_5014() -> None:
    with pytest.raises(InvalidAvpLength):
        Avp(1, 0x40, 0, b"\x00\x01").as_u32()
    with pytest.raises(InvalidAvpValue):
        Avp(1, 0x40, 0, b"\xff\xfe").as_str()
    with pytest.raises(InvalidAvpValue):
        Avp(1, 0x40, 0, b"\x00\x03abcd").as_address()


# --- interop with python-diameter, an independent codec ---------------------------------


def _python_diameter_ccr() -> CreditControlRequest:
    ccr = CreditControlRequest()
    ccr.header.hop_by_hop_identifier = 0x1234
    ccr.header.end_to_end_identifier = 0x5678
    ccr.header.application_id = 4
    ccr.session_id = "pgw1.mno.example;1;2"
    ccr.origin_host = b"pgw1.mno.example"
    ccr.origin_realm = b"mno.example"
    ccr.destination_realm = b"mvno.example"
    ccr.service_context_id = "32251@3gpp.org"
    ccr.cc_request_type = 2
    ccr.cc_request_number = 3
    ccr.append_avp(
        PdAvp.new(
            456,
            value=[PdAvp.new(432, value=7), PdAvp.new(446, value=[PdAvp.new(421, value=99)])],
        )
    )
    ccr.append_avp(PdAvp.new(22, VENDOR_3GPP, value=b"\x82\x02\xf8\x10"))
    return ccr


def test_decodes_what_python_diameter_encodes() -> None:
    message = decode_message(_python_diameter_ccr().as_bytes())
    assert (message.command_code, message.application_id) == (272, 4)
    assert (message.hop_by_hop, message.end_to_end) == (0x1234, 0x5678)
    assert message.is_request and message.is_proxiable
    assert message.session_id == "pgw1.mno.example;1;2"
    assert message.origin_host == "pgw1.mno.example"
    mscc = message.find(456)
    assert mscc is not None
    usu = mscc.find(446)
    assert usu is not None
    total = usu.find(421)
    assert total is not None and total.as_u64() == 99
    location = message.find(22, VENDOR_3GPP)
    assert location is not None and location.as_bytes() == b"\x82\x02\xf8\x10"


def test_python_diameter_decodes_what_we_encode() -> None:
    answer = Message(
        272,
        4,
        flags=0x40,
        hop_by_hop=9,
        end_to_end=10,
        avps=[
            Avp.utf8(263, "s;1"),
            Avp.u32(268, 2001),
            Avp.utf8(264, "ocs"),
            Avp.utf8(296, "mvno.example"),
            Avp.u32(258, 4),
            Avp.i32(416, 2),
            Avp.u32(415, 3),
            Avp.grouped(
                456,
                [
                    Avp.grouped(431, [Avp.u64(421, 5_000_000)]),
                    Avp.u32(432, 7),
                    Avp.u32(448, 600),
                    Avp.u32(268, 2001),
                ],
            ),
            Avp.u32(871, 30, vendor=VENDOR_3GPP),
        ],
    )
    parsed = PdMessage.from_bytes(answer.encode())
    assert isinstance(parsed, CreditControlAnswer)
    assert parsed.header.hop_by_hop_identifier == 9
    assert parsed.session_id == "s;1"
    assert parsed.result_code == 2001
    mscc = parsed.multiple_services_credit_control[0]
    assert mscc.granted_service_unit.cc_total_octets == 5_000_000
    assert mscc.validity_time == 600
    assert parsed.avps[-1].vendor_id == VENDOR_3GPP and parsed.avps[-1].value == 30


# --- property: round trip of generated messages ------------------------------------------

_leaf = st.builds(
    Avp,
    st.integers(0, 2**32 - 1),
    st.sampled_from([0x00, 0x40, 0x20, 0x60]),
    st.just(0),
    st.binary(max_size=40),
)
_vendor_leaf = st.builds(
    Avp,
    st.integers(0, 2**32 - 1),
    st.sampled_from([0x80, 0xC0]),
    st.integers(1, 2**32 - 1),
    st.binary(max_size=40),
)
_avp = st.recursive(
    st.one_of(_leaf, _vendor_leaf),
    lambda children: st.builds(
        Avp.grouped,
        st.integers(0, 2**32 - 1),
        st.lists(children, max_size=4),
        st.sampled_from([0, VENDOR_3GPP]),
        st.booleans(),
    ),
    max_leaves=12,
)


def _tree(avps: list[Avp]) -> list[object]:
    out: list[object] = []
    for avp in avps:
        out.append((avp.code, avp.flags, avp.vendor, avp.data))
    return out


@settings(max_examples=150, deadline=None)
@given(
    command=st.integers(0, 2**24 - 1),
    app=st.integers(0, 2**32 - 1),
    flags=st.sampled_from([0x00, 0x80, 0xC0, 0x40, 0x60, 0x90]),
    ids=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    avps=st.lists(_avp, max_size=8),
)
def test_round_trip_of_generated_messages(
    command: int, app: int, flags: int, ids: tuple[int, int], avps: list[Avp]
) -> None:
    message = Message(command, app, flags=flags, hop_by_hop=ids[0], end_to_end=ids[1], avps=avps)
    wire = message.encode()
    decoded = decode_message(wire)
    assert (decoded.command_code, decoded.application_id, decoded.flags) == (command, app, flags)
    assert (decoded.hop_by_hop, decoded.end_to_end) == ids
    assert _tree(decoded.avps) == _tree(avps)
    assert decoded.encode() == wire
    for original, again in zip(avps, decoded.avps, strict=True):
        if original._children is not None and original.data:
            again_children = again.children()
            assert _tree(again_children) == _tree(original._children)


_BUILDERS = st.one_of(
    st.builds(Avp.u32, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(Avp.i32, st.integers(0, 2**32 - 1), st.integers(-(2**31), 2**31 - 1)),
    st.builds(Avp.u64, st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)),
    st.builds(Avp.i64, st.integers(0, 2**32 - 1), st.integers(-(2**63), 2**63 - 1)),
    st.builds(Avp.f64, st.integers(0, 2**32 - 1), st.floats(allow_nan=False)),
    st.builds(Avp.time, st.integers(0, 2**32 - 1), st.integers(0, 2**32)),
    st.builds(Avp.utf8, st.integers(0, 2**32 - 1), st.text(max_size=9)),
    st.builds(Avp.octets, st.integers(0, 2**32 - 1), st.binary(max_size=9)),
)


@settings(max_examples=150, deadline=None)
@given(
    build=_BUILDERS,
    vendor=st.sampled_from([0, VENDOR_3GPP]),
    m=st.booleans(),
    group=st.booleans(),
)
def test_the_wire_form_built_with_an_avp_is_the_encoding_of_its_fields(
    build: Avp, vendor: int, m: bool, group: bool
) -> None:
    # What a builder computed along with the AVP is what encoding its fields gives; the same
    # for an OctetString and a Grouped built with the drawn vendor and M bit.
    plain = Avp(build.code, build.flags, build.vendor, build.data)
    assert build.encode() == plain.encode()
    avp = Avp.octets(build.code, build.data, vendor=vendor, m=m)
    if group:
        avp = Avp.grouped(avp.code, [avp, build], vendor=vendor, m=m)
    fresh = Avp(avp.code, avp.flags, avp.vendor, avp.data)
    assert avp.encode() == fresh.encode()
    assert decode_avps(avp.encode()) == [fresh]
    assert avp.flags & 0x80 == (0x80 if vendor else 0) and bool(avp.flags & 0x40) == m


def test_vendor_and_m_bits_of_the_fixed_size_builders() -> None:
    for build in (Avp.u32, Avp.i32, Avp.u64, Avp.i64, Avp.f32, Avp.f64):
        for vendor in (0, VENDOR_3GPP):
            for m in (True, False):
                avp = build(7, 1, vendor=vendor, m=m)
                assert avp.encode() == Avp(7, avp.flags, vendor, avp.data).encode()
                assert avp.flags == (0x80 if vendor else 0) | (0x40 if m else 0)
                assert decode_avps(avp.encode()) == [avp]
