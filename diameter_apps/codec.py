"""Diameter message and AVP codec (RFC 6733 §3, §4): bytes ⇄ :class:`Message` / :class:`Avp`.

Built for the hot path (decode a CCR, encode a CCA in a few tens of µs):

- one flat :class:`Avp` class (code, flags, vendor, raw ``data``) instead of a class per type;
  typed values are read on demand (``avp.as_u32()``), Grouped children are decoded lazily on the
  first ``children()`` call and cached;
- ``struct`` codecs compiled once at import; the checking decoder (:func:`decode_checked`)
  looks up one cached verdict per AVP, keyed by (code, flags, vendor), and reads the dictionary
  rule only on the first sight of a combination;
- builders compute an AVP's wire form with it (one ``struct`` pack for the fixed-size types),
  so encoding a message is one join.

Which checks apply, and the memory of request shapes that lets most requests skip the walk,
live in :mod:`diameter_apps.validation`; :func:`decode_message` alone only enforces framing
facts: lengths, padding, the Grouped depth and AVP count limits.

Building answers::

    Avp.u32(AvpCode.RESULT_CODE, 2001)
    Avp.grouped(456, [Avp.u32(432, 10), Avp.grouped(431, [Avp.u64(421, 1_000_000)])])
    Avp.utf8(831, "sip:alice@example.net", vendor=VENDOR_3GPP)
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import ClassVar, Protocol

import msgspec

from diameter_apps.codes import (
    AVP_FLAG_MANDATORY,
    AVP_FLAG_VENDOR,
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMIT,
    AvpCode,
)
from diameter_apps.errors import (
    AvpUnsupported,
    DiameterError,
    InvalidAvpBits,
    InvalidAvpLength,
    InvalidAvpValue,
    InvalidMessageLength,
    UnableToComply,
    UnsupportedVersion,
)
from diameter_apps.limits import DEFAULT_LIMITS, CodecLimits

HEADER_BYTES = 20
NTP_UNIX_OFFSET_S = 2_208_988_800
"""Seconds between the NTP epoch (1900, used by the Diameter Time type) and the Unix epoch."""

_HEADER = struct.Struct(">IIIII")
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
_AVP_FLAGS_RESERVED = 0x1F
# Plain ints for lookups on the hot path: an IntEnum member in a key tuple hashes slower.
_SESSION_ID = int(AvpCode.SESSION_ID)
_ORIGIN_HOST = int(AvpCode.ORIGIN_HOST)
_RESULT_CODE = int(AvpCode.RESULT_CODE)

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
    _decode_into(avps, data, 0, depth, limits.avps_max)
    return avps


def _bad_length(
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


def _decode_into(avps: list[Avp], data: bytes, pos: int, depth: int, avps_max: int) -> None:
    """Append the AVPs of ``data[pos:]`` to ``avps``: on error, those decoded so far stay."""
    append = avps.append
    head_unpack = _AVP_HEAD.unpack_from
    u32_unpack = _U32.unpack_from
    end = len(data)
    while pos < end:
        if end - pos < 8:
            raise _bad_length(data, pos, end, depth)
        code, word = head_unpack(data, pos)
        length = word & 0xFFFFFF
        stop = pos + length
        if word & 0x80000000:
            if length < 12 or stop > end:
                raise _bad_length(data, pos, end, depth)
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
                raise _bad_length(data, pos, end, depth)
            append(Avp(code, word >> 24, 0, data[pos + 8 : stop], depth, None, None))
        # The padding of the last AVP may be missing from a sloppy peer; tolerate that.
        pos = (stop + 3) & ~3
    if len(avps) > avps_max:
        raise UnableToComply(f"more than {avps_max} AVPs in one list")


VERDICT_UNCHECKED = 0
VERDICT_GROUPED = -1
VERDICT_TEXT = -2
VERDICT_ADDRESS = -3
_VERDICT_OF_KIND = (VERDICT_UNCHECKED, VERDICT_GROUPED, VERDICT_TEXT, VERDICT_ADDRESS)
Verdicts = dict[int, int]
"""What the checking decoder still has to check of an AVP whose header passed, by
``verdict_key(code, flags, vendor)``: a positive value is the AVP length (header included) its
fixed-size type requires, else one of ``VERDICT_*``. Filled on first sight of each (code, flags,
vendor) the dictionary knows and accepts without remark, so it stays bounded by the dictionary."""


def verdict_key(code: int, flags: int, vendor: int) -> int:
    return (vendor << 40) | (code << 8) | flags


def _first_sight(
    avp: Avp, rules: AvpRules, verdicts: Verdicts, strict: bool, deviations: list[str]
) -> int:
    """The slow path of the checking decoder: an AVP whose (code, flags, vendor) has no verdict
    yet. Unknown with the M bit is 5001; an M bit against the rule is 3009 when ``strict``, else a
    deviation (then the verdict is not cached, so every occurrence is reported)."""
    code = avp.code
    flags = avp.flags
    vendor = avp.vendor
    rule = rules.get((vendor << 32) | code)
    if rule is None:
        if flags & AVP_FLAG_MANDATORY:
            raise AvpUnsupported(
                f"AVP {code} (vendor {vendor}) is unknown and has the M bit", failed_avps=(avp,)
            )
        return VERDICT_UNCHECKED  # not cached: unknown codes are the peer's to choose
    m_expected, size, kind = rule
    clean = not flags & _AVP_FLAGS_RESERVED
    if m_expected >= 0 and flags & AVP_FLAG_MANDATORY != m_expected:
        state = "set" if m_expected == 0 else "clear"
        fault = f"AVP {code} (vendor {vendor}) has the M bit {state}"
        if strict:
            raise InvalidAvpBits(fault, failed_avps=(avp,))
        deviations.append(fault)
        clean = False
    # A fixed size is checked as the AVP length: the header size follows from the V bit.
    header = 12 if flags & AVP_FLAG_VENDOR else 8
    verdict = size + header if size else _VERDICT_OF_KIND[kind]
    if clean:
        verdicts[verdict_key(code, flags, vendor)] = verdict
    return verdict


def _check_address(avp: Avp) -> None:
    """An Address payload: 2-byte family, then 4 (IPv4) or 16 (IPv6) bytes; 5014 / 5004."""
    data = avp.data
    if len(data) < 2:
        raise InvalidAvpLength(f"Address AVP {avp.code} is too short", failed_avps=(avp,))
    family = (data[0] << 8) | data[1]
    size = len(data) - 2
    if not (
        (family == _ADDRESS_FAMILY_IPV4 and size == 4)
        or (family == _ADDRESS_FAMILY_IPV6 and size == 16)
    ):
        raise InvalidAvpValue(
            f"Address AVP {avp.code}: unsupported family {family} or size {size}",
            failed_avps=(avp,),
        )


def _decode_checked(
    top: list[Avp],
    message_data: bytes,
    limits: CodecLimits,
    rules: AvpRules,
    verdicts: Verdicts,
    strict: bool,
    deviations: list[str],
) -> None:
    """Decode and check a message body in one pass, Grouped AVPs included (the request hot path).

    Unknown AVPs with the M bit are 5001; an M bit against the rule is 3009 when ``strict``,
    else a deviation; a fixed-size type of another size is 5014; invalid UTF-8 or Address is
    5004; known Grouped AVPs are decoded (and checked) eagerly, deeper than
    ``limits.avp_depth_max`` is 5004. Unknown AVPs without the M bit are kept, unchecked.

    Per AVP: one header unpack, one payload slice, one Avp, one lookup of the (code, flags,
    vendor) verdict; the dictionary rule is read only on the first sight of a combination
    (:func:`_first_sight`). One loop over an explicit stack of AVP runs: a call per Grouped
    would cost more than the checks themselves.
    """
    # Hot loop: literals instead of module constants (0x80 = V; verdicts -1/-2 = Grouped/text)
    # and locals for everything looked up per AVP.
    head_unpack = _AVP_HEAD.unpack_from
    u32_unpack = _U32.unpack_from
    verdict_of = verdicts.get
    new_avp = Avp
    depth_max = limits.avp_depth_max
    avps_max = limits.avps_max
    runs: list[tuple[list[Avp], bytes, int, int]] = [(top, message_data, HEADER_BYTES, 1)]
    while runs:
        avps, data, pos, depth = runs.pop()
        append = avps.append
        end = len(data)
        try:
            while pos < end:
                code, word = head_unpack(data, pos)
                length = word & 0xFFFFFF
                stop = pos + length
                flags = word >> 24
                if flags & 0x80:
                    if length < 12 or stop > end:
                        raise _bad_length(data, pos, end, depth, rules)
                    vendor = u32_unpack(data, pos + 8)[0]
                    avp = new_avp(code, flags, vendor, data[pos + 12 : stop], depth, None, None)
                    verdict = verdict_of((vendor << 40) | (code << 8) | flags)
                else:
                    if length < 8 or stop > end:
                        raise _bad_length(data, pos, end, depth, rules)
                    avp = new_avp(code, flags, 0, data[pos + 8 : stop], depth, None, None)
                    verdict = verdict_of((code << 8) | flags)
                append(avp)
                pos = (stop + 3) & ~3
                if verdict is None:
                    verdict = _first_sight(avp, rules, verdicts, strict, deviations)
                if not verdict:
                    continue
                if verdict > 0:
                    if length != verdict:
                        raise InvalidAvpLength(
                            f"AVP {code} holds {len(avp.data)} bytes, its type needs "
                            f"{verdict - (12 if flags & 0x80 else 8)}",
                            failed_avps=(avp,),
                        )
                elif verdict == -1:  # VERDICT_GROUPED
                    if depth >= depth_max:
                        raise InvalidAvpValue(
                            f"Grouped AVP {code} nests deeper than {depth_max} levels",
                            failed_avps=(avp,),
                        )
                    kids: list[Avp] = []
                    avp._children = kids
                    runs.append((kids, avp.data, 0, depth + 1))
                elif verdict == -2:  # VERDICT_TEXT
                    payload = avp.data
                    if not payload.isascii():
                        try:
                            payload.decode()
                        except UnicodeDecodeError:
                            raise InvalidAvpValue(
                                f"AVP {code} is not valid UTF-8", failed_avps=(avp,)
                            ) from None
                else:
                    _check_address(avp)
        except struct.error:  # fewer than 8 bytes left for a header
            raise _bad_length(data, pos, end, depth, rules) from None
        if len(avps) > avps_max:
            raise UnableToComply(f"more than {avps_max} AVPs in one list")


class Message:
    """A Diameter message: header fields plus top-level AVPs (children decoded lazily)."""

    __slots__ = (
        "_index",
        "_indexed",
        "_indexed_len",
        "_positions",
        "_raw",
        "_raw_avps",
        "_raw_count",
        "application_id",
        "avps",
        "command_code",
        "end_to_end",
        "flags",
        "hop_by_hop",
        "version",
    )

    def __init__(
        self,
        command_code: int,
        application_id: int,
        *,
        flags: int = 0,
        hop_by_hop: int = 0,
        end_to_end: int = 0,
        avps: list[Avp] | None = None,
        version: int = 1,
    ) -> None:
        self.version = version
        self.flags = flags
        self.command_code = command_code
        self.application_id = application_id
        self.hop_by_hop = hop_by_hop
        self.end_to_end = end_to_end
        self.avps: list[Avp] = avps if avps is not None else []
        # Lookups by (code, vendor) describe ``_indexed`` while it is ``avps`` with the same
        # length: ``_positions`` (given by the decoder, see message_of) or ``_index`` (built
        # on the first lookup).
        self._indexed: list[Avp] | None = None
        self._indexed_len = 0
        self._positions: Mapping[tuple[int, int], tuple[int, ...]] | None = None
        self._index: dict[tuple[int, int], list[Avp]] | None = None
        # The frame the AVPs were decoded from (see received_frame).
        self._raw: bytes | None = None
        self._raw_avps: list[Avp] | None = None
        self._raw_count = -1

    @classmethod
    def request(
        cls,
        command_code: int,
        application_id: int,
        avps: Sequence[Avp] = (),
        *,
        proxiable: bool = True,
        hop_by_hop: int = 0,
        end_to_end: int = 0,
    ) -> Message:
        flags = FLAG_REQUEST | (FLAG_PROXIABLE if proxiable else 0)
        return cls(
            command_code,
            application_id,
            flags=flags,
            hop_by_hop=hop_by_hop,
            end_to_end=end_to_end,
            avps=list(avps),
        )

    # --- header flags ----------------------------------------------------------------------

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)

    @property
    def is_proxiable(self) -> bool:
        return bool(self.flags & FLAG_PROXIABLE)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    @property
    def is_retransmit(self) -> bool:
        return bool(self.flags & FLAG_RETRANSMIT)

    # --- AVP access ------------------------------------------------------------------------

    def received_frame(self) -> bytes | None:
        """The bytes this message was decoded from, while ``avps`` is still the list decoded
        from them with the same length (None for a built or modified message): lets a digest
        of the request hash the wire bytes instead of re-packing every AVP."""
        avps = self.avps
        if self._raw_avps is avps and self._raw_count == len(avps):
            return self._raw
        return None

    def _decoded_from(self, data: bytes) -> None:
        self._raw = data
        self._raw_avps = self.avps
        self._raw_count = len(self.avps)

    def index(self) -> Mapping[tuple[int, int], list[Avp]]:
        """Top-level AVPs by (code, vendor), in order; rebuilt when ``avps`` changed size or
        was replaced (mutating an element in place is not tracked)."""
        avps = self.avps
        if self._indexed is not avps or self._indexed_len != len(avps):
            self._positions = self._index = None
            self._indexed = avps
            self._indexed_len = len(avps)
        index = self._index
        if index is None:
            index = self._index = {}
            for avp in avps:
                key = (avp.code, avp.vendor)
                bucket = index.get(key)
                if bucket is None:
                    index[key] = [avp]
                else:
                    bucket.append(avp)
        return index

    def find(self, code: int, vendor: int = 0) -> Avp | None:
        """First top-level AVP with this (code, vendor), or None."""
        avps = self.avps
        positions = self._positions
        if positions is not None and self._indexed is avps and self._indexed_len == len(avps):
            at = positions.get((code, vendor))
            if not at:
                return None
            avp = avps[at[0]]
            if avp.code == code and avp.vendor == vendor:  # not replaced in place
                return avp
            self._positions = None
        bucket = self.index().get((code, vendor))
        return bucket[0] if bucket else None

    def find_all(self, code: int, vendor: int = 0) -> list[Avp]:
        avps = self.avps
        positions = self._positions
        if positions is not None and self._indexed is avps and self._indexed_len == len(avps):
            at = positions.get((code, vendor))
            if not at:
                return []
            found = [avps[i] for i in at]
            for avp in found:
                if avp.code != code or avp.vendor != vendor:  # replaced in place
                    self._positions = None
                    break
            else:
                return found
        bucket = self.index().get((code, vendor))
        return bucket[:] if bucket else []

    def walk(self) -> Iterator[Avp]:
        """Every top-level AVP; children are reached through :meth:`Avp.children`."""
        return iter(self.avps)

    @property
    def session_id(self) -> str | None:
        avp = self.find(_SESSION_ID)
        return None if avp is None else avp.as_str()

    @property
    def origin_host(self) -> str | None:
        avp = self.find(_ORIGIN_HOST)
        return None if avp is None else avp.as_str()

    @property
    def result_code(self) -> int | None:
        # A scan, not find(): this is read once per answer we send (metrics), on a built answer
        # that has no index yet and where Result-Code sits second; building the index costs
        # more than the scan.
        for avp in self.avps:
            if avp.code == _RESULT_CODE and not avp.vendor:
                return avp.as_u32()
        return None

    # --- wire ------------------------------------------------------------------------------

    def encode(self) -> bytes:
        body = b"".join([avp._wire or avp.encode() for avp in self.avps])
        return (
            _HEADER.pack(
                (self.version << 24) | (HEADER_BYTES + len(body)),
                (self.flags << 24) | self.command_code,
                self.application_id,
                self.hop_by_hop,
                self.end_to_end,
            )
            + body
        )

    def __repr__(self) -> str:
        return (
            f"Message(cmd={self.command_code}, app={self.application_id}, "
            f"flags=0x{self.flags:02x}, hbh={self.hop_by_hop}, e2e={self.end_to_end}, "
            f"avps={len(self.avps)})"
        )


def decode_header(data: bytes) -> Message:
    """The header of a message as a Message without AVPs (``data`` holds ≥ 20 bytes)."""
    word0, word1, application_id, hop_by_hop, end_to_end = _HEADER.unpack_from(data)
    # Message.__init__ without its keyword parsing: this runs once per message received.
    message = Message.__new__(Message)
    message.version = word0 >> 24
    message.flags = word1 >> 24
    message.command_code = word1 & 0xFFFFFF
    message.application_id = application_id
    message.hop_by_hop = hop_by_hop
    message.end_to_end = end_to_end
    message.avps = []
    message._indexed = None
    message._indexed_len = 0
    message._positions = None
    message._index = None
    message._raw = message._raw_avps = None
    message._raw_count = -1
    return message


def message_of(
    data: bytes, avps: list[Avp], positions: Mapping[tuple[int, int], tuple[int, ...]]
) -> Message:
    """The message framed in ``data`` with its top-level ``avps``, decoded by the caller, and
    ``positions``: the indices in ``avps`` of each (code, vendor), in order, which lookups then
    use instead of building an index (until ``avps`` is replaced or changes size)."""
    word0, word1, application_id, hop_by_hop, end_to_end = _HEADER.unpack_from(data)
    message = Message.__new__(Message)
    message.version = word0 >> 24
    message.flags = word1 >> 24
    message.command_code = word1 & 0xFFFFFF
    message.application_id = application_id
    message.hop_by_hop = hop_by_hop
    message.end_to_end = end_to_end
    message.avps = avps
    message._indexed = avps
    message._indexed_len = len(avps)
    message._positions = positions
    message._index = None
    message._raw = data
    message._raw_avps = avps
    message._raw_count = len(avps)
    return message


def _checked_header(data: bytes) -> Message:
    if len(data) < HEADER_BYTES:
        raise InvalidMessageLength(f"{len(data)} bytes cannot hold a Diameter header")
    message = decode_header(data)
    length = _U32.unpack_from(data)[0] & 0xFFFFFF
    if message.version != 1:
        raise UnsupportedVersion(f"version {message.version} is not 1", request=message)
    if length != len(data) or length & 3:
        raise InvalidMessageLength(
            f"header length {length} does not match the {len(data)} bytes received",
            request=message,
        )
    return message


def decode_message(data: bytes, limits: CodecLimits = DEFAULT_LIMITS) -> Message:
    """Decode one complete message (as the framer delivers it); Grouped children stay lazy.

    Errors carry ``request`` = the header plus the AVPs decoded before the fault, so the answer
    can still echo Session-Id and Proxy-Info that came first.
    """
    message = _checked_header(data)
    try:
        _decode_into(message.avps, data, HEADER_BYTES, 1, limits.avps_max)
    except DiameterError as error:
        error.request = message
        raise
    message._decoded_from(data)
    return message


def decode_checked(
    data: bytes,
    limits: CodecLimits,
    rules: AvpRules,
    *,
    strict: bool,
    verdicts: Verdicts | None = None,
) -> tuple[Message, list[str]]:
    """Decode a request and check every AVP against ``rules`` in one pass (see
    :func:`_decode_checked`); returns the message and the tolerated deviations.

    ``verdicts`` is the caller's cache of what ``rules`` say per (code, flags, vendor): pass the
    same dict (for the same ``rules``) on every call; without it each call starts cold.
    """
    message = _checked_header(data)
    deviations: list[str] = []
    try:
        _decode_checked(
            message.avps,
            data,
            limits,
            rules,
            {} if verdicts is None else verdicts,
            strict,
            deviations,
        )
    except DiameterError as error:
        # The answer must still echo Session-Id and every Proxy-Info, wherever they sit:
        # re-read the top level without checks when it is at least framed correctly.
        whole: list[Avp] = []
        try:
            _decode_into(whole, data, HEADER_BYTES, 1, limits.avps_max)
            message.avps = whole
        except DiameterError:
            pass
        error.request = message
        raise
    message._decoded_from(data)
    return message, deviations


def replace_hop_by_hop(encoded: bytes, hop_by_hop: int) -> bytes:
    """An encoded message with another Hop-by-Hop id: replaying a cached answer to a duplicate."""
    return encoded[:12] + _U32.pack(hop_by_hop) + encoded[16:]
