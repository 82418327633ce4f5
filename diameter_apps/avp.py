"""The Diameter AVP (RFC 6733 §4): one flat :class:`Avp` value class, its builders and typed
getters, and the framing decoder of a run of AVPs.

- one flat class (code, flags, vendor, raw ``data``) instead of a class per type; typed values
  are read on demand (``avp.as_u32()``), Grouped children are decoded lazily on the first
  ``children()`` call and cached;
- builders compute an AVP's wire form with it (one ``struct`` pack for the fixed-size types),
  so encoding a message is one join.

The checking decoder and the rules it reads live in :mod:`diameter_apps.codec`.

Building answers::

    Avp.u32(AvpCode.RESULT_CODE, 2001)
    Avp.grouped(456, [Avp.u32(432, 10), Avp.grouped(431, [Avp.u64(421, 1_000_000)])])
    Avp.utf8(831, "sip:alice@example.net", vendor=VENDOR_3GPP)
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping
from typing import ClassVar, Protocol

import msgspec

from diameter_apps.codes import AVP_FLAG_MANDATORY, AVP_FLAG_VENDOR
from diameter_apps.errors import InvalidAvpLength, InvalidAvpValue, UnableToComply
from diameter_apps.limits import DEFAULT_LIMITS, CodecLimits

NTP_UNIX_OFFSET_S = 2_208_988_800
"""Seconds between the NTP epoch (1900, used by the Diameter Time type) and the Unix epoch."""

_AVP_HEAD = struct.Struct(">II")
_AVP_HEAD_VENDOR = struct.Struct(">III")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")
_pack_head = _AVP_HEAD.pack
_unpack_u32 = _U32.unpack
_unpack_i32 = _I32.unpack
_unpack_u64 = _U64.unpack
_unpack_i64 = _I64.unpack
_unpack_f32 = _F32.unpack
_unpack_f64 = _F64.unpack
_pack_vendor_head = _AVP_HEAD_VENDOR.pack
_FLAGS = (0, AVP_FLAG_VENDOR, AVP_FLAG_MANDATORY, AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY)
"""AVP flags by (vendor present) | (M wanted) << 1."""
_ADDRESS_FAMILY_IPV4 = 1
_ADDRESS_FAMILY_IPV6 = 2
_ADDRESS_PAYLOAD_MIN = 6  # family + an IPv4 address, the shortest Address

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class _IntegerBuilder(Protocol):
    def __call__(self, code: int, value: int, vendor: int = 0, m: bool = True) -> Avp: ...


class _FloatBuilder(Protocol):
    def __call__(self, code: int, value: float, vendor: int = 0, m: bool = True) -> Avp: ...


def _wire(code: int, flags: int, vendor: int, data: bytes) -> bytes:
    """The AVP on the wire, padded to a multiple of 4 bytes."""
    size = len(data)
    if flags & 0x80:  # V: the header carries the Vendor-Id
        head = _pack_vendor_head(code, (flags << 24) | (size + 12), vendor)
    else:
        head = _pack_head(code, (flags << 24) | (size + 8))
    return head + data + _PADDING[size & 3]


class Avp(msgspec.Struct, gc=False, repr_omit_defaults=True):
    """One AVP: header fields plus its raw payload (without padding).

    ``flags`` keeps the V/M/P bits exactly as received; the V bit decides whether a Vendor-Id is
    written. ``depth`` is 1 for AVPs directly in a message, 2 for their children, and so on.
    A ``msgspec.Struct`` because its C constructor is ~3x cheaper than a Python ``__init__``, which
    matters at tens of AVPs per message (``gc=False``: AVPs never form reference cycles).
    Equality compares the wire fields (code, flags, vendor, data) only.

    An AVP is a value: its wire form is computed once (by the builders, or on the first
    :meth:`encode`) and kept, so build a new AVP rather than assigning to a field of one.
    """

    code: int
    flags: int
    vendor: int
    data: bytes
    depth: int = 1
    _children: list[Avp] | None = None
    _wire: bytes | None = None

    @property
    def children_decoded(self) -> bool:
        return self._children is not None

    # --- builders --------------------------------------------------------------------------
    # Each builds the wire form along with the payload: an answer is encoded right after.

    @staticmethod
    def _flags(vendor: int, m: bool) -> int:
        return _FLAGS[(1 if vendor else 0) | (2 if m else 0)]

    @classmethod
    def octets(cls, code: int, value: bytes, vendor: int = 0, m: bool = True) -> Avp:
        flags = _FLAGS[(1 if vendor else 0) | (2 if m else 0)]
        return cls(code, flags, vendor, value, 1, None, _wire(code, flags, vendor, value))

    @classmethod
    def utf8(cls, code: int, value: str, vendor: int = 0, m: bool = True) -> Avp:
        """UTF8String, DiameterIdentity and DiameterURI values."""
        flags = _FLAGS[(1 if vendor else 0) | (2 if m else 0)]
        data = value.encode()
        return cls(code, flags, vendor, data, 1, None, _wire(code, flags, vendor, data))

    identity = utf8
    uri = utf8

    # Fixed-size types: header and value packed by one struct (see _fixed_size_builder).
    u32: ClassVar[_IntegerBuilder]
    """Unsigned32 (and Enumerated values, which are never negative in practice)."""
    i32: ClassVar[_IntegerBuilder]
    """Integer32 and Enumerated."""
    enum: ClassVar[_IntegerBuilder]
    u64: ClassVar[_IntegerBuilder]
    i64: ClassVar[_IntegerBuilder]
    f32: ClassVar[_FloatBuilder]
    f64: ClassVar[_FloatBuilder]

    @classmethod
    def time(cls, code: int, unix_s: int, vendor: int = 0, m: bool = True) -> Avp:
        """Time: seconds since 1900 on the wire, wrapping in 2036 as RFC 5905 eras do."""
        return cls.u32(code, (unix_s + NTP_UNIX_OFFSET_S) & 0xFFFFFFFF, vendor, m)

    @classmethod
    def address(cls, code: int, value: str | IpAddress, vendor: int = 0, m: bool = True) -> Avp:
        ip = ipaddress.ip_address(value) if isinstance(value, str) else value
        family = _ADDRESS_FAMILY_IPV4 if ip.version == 4 else _ADDRESS_FAMILY_IPV6
        return cls.octets(code, family.to_bytes(2, "big") + ip.packed, vendor, m)

    @classmethod
    def grouped(cls, code: int, children: Iterable[Avp], vendor: int = 0, m: bool = True) -> Avp:
        kids = children if type(children) is list else list(children)
        flags = _FLAGS[(1 if vendor else 0) | (2 if m else 0)]
        data = b"".join([c._wire or c.encode() for c in kids])  # a multiple of 4: no padding
        if vendor:
            wire = _pack_vendor_head(code, (flags << 24) | (len(data) + 12), vendor) + data
        else:
            wire = _pack_head(code, (flags << 24) | (len(data) + 8)) + data
        return cls(code, flags, vendor, data, 1, kids, wire)

    # --- header facts ----------------------------------------------------------------------

    @property
    def is_mandatory(self) -> bool:
        return bool(self.flags & AVP_FLAG_MANDATORY)

    @property
    def key(self) -> tuple[int, int]:
        """(code, vendor): the identity of the AVP in the dictionary."""
        return (self.code, self.vendor)

    # --- typed getters: a wrong size is 5014, a bad value 5004, with this AVP as Failed-AVP --

    def _wrong_size(self, size: int) -> InvalidAvpLength:
        return InvalidAvpLength(
            f"AVP {self.code} holds {len(self.data)} bytes, its type needs {size}",
            failed_avps=(self,),
        )

    def as_bytes(self) -> bytes:
        return self.data

    def as_str(self) -> str:
        """UTF8String / DiameterIdentity / DiameterURI; invalid UTF-8 is 5004."""
        try:
            return self.data.decode()
        except UnicodeDecodeError:
            raise InvalidAvpValue(
                f"AVP {self.code} is not valid UTF-8", failed_avps=(self,)
            ) from None

    def as_u32(self) -> int:
        try:
            value: int = _unpack_u32(self.data)[0]
        except struct.error:
            raise self._wrong_size(4) from None
        return value

    def as_i32(self) -> int:
        try:
            value: int = _unpack_i32(self.data)[0]
        except struct.error:
            raise self._wrong_size(4) from None
        return value

    def as_u64(self) -> int:
        try:
            value: int = _unpack_u64(self.data)[0]
        except struct.error:
            raise self._wrong_size(8) from None
        return value

    def as_i64(self) -> int:
        try:
            value: int = _unpack_i64(self.data)[0]
        except struct.error:
            raise self._wrong_size(8) from None
        return value

    def as_f32(self) -> float:
        try:
            value: float = _unpack_f32(self.data)[0]
        except struct.error:
            raise self._wrong_size(4) from None
        return value

    def as_f64(self) -> float:
        try:
            value: float = _unpack_f64(self.data)[0]
        except struct.error:
            raise self._wrong_size(8) from None
        return value

    def as_time(self) -> int:
        """Unix seconds; values below 2**31 are in NTP era 1 (after 2036-02-07)."""
        ntp = self.as_u32()
        if ntp < 0x80000000:
            ntp += 1 << 32
        return ntp - NTP_UNIX_OFFSET_S

    def as_address(self) -> IpAddress:
        data = self.data
        if len(data) < 2:
            raise InvalidAvpLength(f"Address AVP {self.code} is too short", failed_avps=(self,))
        family = int.from_bytes(data[:2], "big")
        raw = data[2:]
        if family == _ADDRESS_FAMILY_IPV4 and len(raw) == 4:
            return ipaddress.IPv4Address(raw)
        if family == _ADDRESS_FAMILY_IPV6 and len(raw) == 16:
            return ipaddress.IPv6Address(raw)
        raise InvalidAvpValue(
            f"Address AVP {self.code}: unsupported family {family} or size {len(raw)}",
            failed_avps=(self,),
        )

    def children(self, limits: CodecLimits = DEFAULT_LIMITS) -> list[Avp]:
        """The AVPs inside a Grouped AVP, decoded once and cached."""
        kids = self._children
        if kids is not None:
            return kids
        if self.depth >= limits.avp_depth_max:
            raise InvalidAvpValue(
                f"Grouped AVP {self.code} nests deeper than {limits.avp_depth_max} levels",
                failed_avps=(self,),
            )
        kids = decode_avps(self.data, self.depth + 1, limits)
        self._children = kids
        return kids

    def find(self, code: int, vendor: int = 0) -> Avp | None:
        """First child with this (code, vendor), or None."""
        kids = self._children
        if kids is None:
            kids = self.children()
        for avp in kids:
            if avp.code == code and avp.vendor == vendor:
                return avp
        return None

    def find_all(self, code: int, vendor: int = 0) -> list[Avp]:
        kids = self._children
        if kids is None:
            kids = self.children()
        return [a for a in kids if a.code == code and a.vendor == vendor]

    # --- wire ------------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The AVP on the wire, padded to a multiple of 4 bytes (computed once)."""
        wire = self._wire
        if wire is None:
            wire = self._wire = _wire(self.code, self.flags, self.vendor, self.data)
        return wire

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Avp):
            return NotImplemented
        return (self.code, self.flags, self.vendor, self.data) == (
            other.code,
            other.flags,
            other.vendor,
            other.data,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        vendor = f", vendor={self.vendor}" if self.vendor else ""
        return f"Avp({self.code}, flags=0x{self.flags:02x}{vendor}, data={self.data!r})"


def _fixed_size_builder(value_format: str) -> _FloatBuilder:
    """A builder for a fixed-size type: one ``struct`` pack gives header and value (typed for
    floats, which also accepts the ints of the integer types)."""
    plain = struct.Struct(">II" + value_format).pack
    with_vendor = struct.Struct(">III" + value_format).pack
    size = struct.calcsize(">" + value_format)
    word_m = (AVP_FLAG_MANDATORY << 24) | (size + 8)
    word_vm = ((AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY) << 24) | (size + 12)
    new_avp = Avp

    def build(code: int, value: float, vendor: int = 0, m: bool = True) -> Avp:
        if vendor:
            wire = with_vendor(code, word_vm if m else word_vm ^ 0x40000000, vendor, value)
            return new_avp(code, 0xC0 if m else 0x80, vendor, wire[12:], 1, None, wire)
        wire = plain(code, word_m if m else word_m ^ 0x40000000, value)
        return new_avp(code, 0x40 if m else 0, 0, wire[8:], 1, None, wire)

    return build


Avp.u32 = staticmethod(_fixed_size_builder("I"))  # type: ignore[assignment]
Avp.i32 = Avp.enum = staticmethod(_fixed_size_builder("i"))  # type: ignore[assignment]
Avp.u64 = staticmethod(_fixed_size_builder("Q"))  # type: ignore[assignment]
Avp.i64 = staticmethod(_fixed_size_builder("q"))  # type: ignore[assignment]
Avp.f32 = staticmethod(_fixed_size_builder("f"))  # type: ignore[assignment]
Avp.f64 = staticmethod(_fixed_size_builder("d"))  # type: ignore[assignment]


# --- decoding ------------------------------------------------------------------------------

RULE_M_MAY = -1
RULE_M_MUST = AVP_FLAG_MANDATORY
RULE_M_MUST_NOT = 0
KIND_OTHER = 0
KIND_GROUPED = 1  # the checking decoder's loop uses these four as literals
KIND_TEXT = 2
KIND_ADDRESS = 3
AvpRule = tuple[int, int, int]
"""(M bit expected: RULE_M_*, fixed payload size or 0, KIND_*): what the checking decoder
needs to know of an AVP."""
AvpRules = Mapping[int, AvpRule]
"""Rules by ``rule_key(code, vendor)``: an int key, cheaper to hash than a tuple."""


def rule_key(code: int, vendor: int) -> int:
    return (vendor << 32) | code


def decode_avps(data: bytes, depth: int = 1, limits: CodecLimits = DEFAULT_LIMITS) -> list[Avp]:
    """Decode a run of AVPs (a message body or a Grouped payload), without their children.

    A header that does not fit, or a length that is too small or overruns the run, is 5014 with
    the offending AVP header as Failed-AVP. More than ``limits.avps_max`` AVPs is 5012.
    """
    avps: list[Avp] = []
    decode_avps_into(avps, data, 0, depth, limits.avps_max)
    return avps


def bad_length_error(
    data: bytes, pos: int, end: int, depth: int, rules: AvpRules | None = None
) -> InvalidAvpLength:
    """5014 for the AVP at ``pos``, whose length field is unusable. Failed-AVP is what of its
    header is there with, as RFC 6733 §7.1.5 asks, a zero-filled payload of the minimum length
    of its type when ``rules`` know the type (empty for Grouped, strings and unknown AVPs)."""
    if end - pos < 8:
        return InvalidAvpLength(
            f"{end - pos} trailing bytes cannot hold an AVP header",
            failed_avps=(Avp(0, 0, 0, b"", depth),),
        )
    code, word = _AVP_HEAD.unpack_from(data, pos)
    flags = word >> 24
    vendor = (
        _U32.unpack_from(data, pos + 8)[0] if flags & AVP_FLAG_VENDOR and end - pos >= 12 else 0
    )
    rule = rules.get((vendor << 32) | code) if rules is not None else None
    payload = 0
    if rule is not None:
        _, size, kind = rule
        payload = size or (_ADDRESS_PAYLOAD_MIN if kind == KIND_ADDRESS else 0)
    return InvalidAvpLength(
        f"AVP {code} length {word & 0xFFFFFF} is invalid",
        failed_avps=(Avp(code, flags, vendor, bytes(payload), depth),),
    )


def decode_avps_into(avps: list[Avp], data: bytes, pos: int, depth: int, avps_max: int) -> None:
    """Append the AVPs of ``data[pos:]`` to ``avps``: on error, those decoded so far stay."""
    append = avps.append
    head_unpack = _AVP_HEAD.unpack_from
    u32_unpack = _U32.unpack_from
    end = len(data)
    while pos < end:
        if end - pos < 8:
            raise bad_length_error(data, pos, end, depth)
        code, word = head_unpack(data, pos)
        length = word & 0xFFFFFF
        stop = pos + length
        if word & 0x80000000:
            if length < 12 or stop > end:
                raise bad_length_error(data, pos, end, depth)
            append(
                Avp(
                    code,
                    word >> 24,
                    u32_unpack(data, pos + 8)[0],
                    data[pos + 12 : stop],
                    depth,
                    None,
                    None,
                )
            )
        else:
            if length < 8 or stop > end:
                raise bad_length_error(data, pos, end, depth)
            append(Avp(code, word >> 24, 0, data[pos + 8 : stop], depth, None, None))
        # The padding of the last AVP may be missing from a sloppy peer; tolerate that.
        pos = (stop + 3) & ~3
    if len(avps) > avps_max:
        raise UnableToComply(f"more than {avps_max} AVPs in one list")
