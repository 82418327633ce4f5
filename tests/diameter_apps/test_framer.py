"""Framer: partial reads, several messages per read, bad lengths refused before buffering."""

from __future__ import annotations

import pytest

from diameter_apps.codec import Avp, Message
from diameter_apps.errors import FramingError
from diameter_apps.framer import Framer
from diameter_apps.limits import CodecLimits


def _wire(n: int) -> bytes:
    return Message.request(272, 4, [Avp.u32(415, n), Avp.utf8(263, "x" * n)]).encode()


def test_several_messages_in_one_read_and_a_partial_tail() -> None:
    one, two, three = _wire(1), _wire(2), _wire(3)
    framer = Framer(CodecLimits())
    assert framer.feed(one + two + three[:7]) == [one, two]
    assert framer.buffered_bytes == 7
    assert framer.feed(three[7:]) == [three]
    assert framer.buffered_bytes == 0


def test_byte_by_byte() -> None:
    stream = _wire(5) + _wire(9)
    framer = Framer(CodecLimits())
    frames = []
    for i in range(len(stream)):
        frames.extend(framer.feed(stream[i : i + 1]))
    assert frames == [_wire(5), _wire(9)]


@pytest.mark.parametrize("length", [0, 19, 22, 65_540])
def test_bad_length_closes_before_buffering_the_body(length: int) -> None:
    framer = Framer(CodecLimits(message_bytes_max=65_536))
    header = bytes([1]) + length.to_bytes(3, "big")
    with pytest.raises(FramingError):
        framer.feed(header)  # only 4 bytes: refused as soon as the length is known
    assert framer.buffered_bytes == 0
    with pytest.raises(FramingError):
        framer.feed(b"more")


def test_other_version_is_framed_so_it_can_be_answered_5011() -> None:
    wire = bytearray(_wire(1))
    wire[0] = 2
    assert Framer(CodecLimits()).feed(bytes(wire)) == [bytes(wire)]
