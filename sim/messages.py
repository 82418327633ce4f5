"""Diameter messages the simulated gateways send and the answers they read, built and read with
the product's sans-IO codec (:mod:`diameter_apps.codec`), so the simulator exercises the same
wire format the server speaks and costs a few µs per message instead of python-diameter's
hundreds.

Everything here is pure: values in, encoded bytes (or a decoded summary) out.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import msgspec

from diameter_apps.codec import HEADER_BYTES, Avp, Message
from diameter_apps.codes import (
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMIT,
    VENDOR_3GPP,
    ApplicationId,
    AvpCode,
    CommandCode,
    DisconnectCause,
    ResultCode,
)
from diameter_apps.credit_control.codes import (
    CcAvp,
    CcRequestType,
    GppAvp,
    MultipleServicesIndicator,
    RequestedAction,
    SubscriptionIdType,
)
from diameter_apps.errors import InvalidAvpLength, InvalidMessageLength

GY_CONTEXT = "32251@3gpp.org"
MMTEL_CONTEXT = "32275@3gpp.org"
SMS_CONTEXT = "32274@3gpp.org"
PRODUCT_NAME = "mvna-ocs-sim"
TERMINATION_CAUSE_LOGOUT = 1  # RFC 4006 §8.15 DIAMETER_LOGOUT

_CC = int(ApplicationId.CREDIT_CONTROL)
_CCR = int(CommandCode.CREDIT_CONTROL)


class Unit:
    """Which unit AVP carries a service's amount (bytes, seconds, events)."""

    BYTES = int(CcAvp.CC_TOTAL_OCTETS)
    SECONDS = int(CcAvp.CC_TIME)
    EVENTS = int(CcAvp.CC_SERVICE_SPECIFIC_UNITS)


# The per-request value objects below hold only strings, numbers and each other, so they can
# never be part of a reference cycle: gc=False keeps them out of the cyclic collector, which
# otherwise runs every few hundred CCRs to walk them.


class MsccRequest(msgspec.Struct, frozen=True, gc=False):
    """One Multiple-Services-Credit-Control of a request: ask ``requested`` (None: no RSU, 0: an
    empty RSU), report ``used`` (0: no USU), in ``unit``."""

    rating_group: int | None
    unit: int
    requested: int | None = None
    used: int = 0


class PeerIdentity(msgspec.Struct, frozen=True, gc=False):
    origin_host: str
    origin_realm: str
    host_ip: str = "127.0.0.1"


class CcrSpec(msgspec.Struct, frozen=True, gc=False):
    """What distinguishes one Credit-Control-Request from another."""

    session_id: str
    request_type: int
    request_number: int
    context: str
    msisdn: str
    imsi: str | None
    msccs: tuple[MsccRequest, ...] = ()
    visited_plmn: str | None = None
    called: str | None = None
    sms_recipient: str | None = None


class MsccAnswer(msgspec.Struct, frozen=True, gc=False):
    rating_group: int | None
    result_code: int | None
    granted: int | None
    final: bool


class AnswerSummary(msgspec.Struct, frozen=True, gc=False):
    """What the simulator needs from an answer: its command Result-Code and its grants."""

    command_code: int
    hop_by_hop: int
    result_code: int | None
    error_bit: bool
    msccs: tuple[MsccAnswer, ...] = ()


def _u32(code: int, value: int) -> Avp:
    return Avp.u32(code, value)


def _identity_avps(peer: PeerIdentity) -> list[Avp]:
    return [
        Avp.utf8(AvpCode.ORIGIN_HOST, peer.origin_host),
        Avp.utf8(AvpCode.ORIGIN_REALM, peer.origin_realm),
    ]


def cer(peer: PeerIdentity, *, hop_by_hop: int, end_to_end: int) -> bytes:
    """Capabilities-Exchange-Request advertising credit control (plain and as 3GPP)."""
    avps = [
        *_identity_avps(peer),
        Avp.address(AvpCode.HOST_IP_ADDRESS, peer.host_ip),
        _u32(AvpCode.VENDOR_ID, 0),
        Avp.utf8(AvpCode.PRODUCT_NAME, PRODUCT_NAME, m=False),
        _u32(AvpCode.ORIGIN_STATE_ID, os.getpid() & 0xFFFFFFFF),
        _u32(AvpCode.SUPPORTED_VENDOR_ID, VENDOR_3GPP),
        _u32(AvpCode.AUTH_APPLICATION_ID, _CC),
        Avp.grouped(
            AvpCode.VENDOR_SPECIFIC_APPLICATION_ID,
            [_u32(AvpCode.VENDOR_ID, VENDOR_3GPP), _u32(AvpCode.AUTH_APPLICATION_ID, _CC)],
        ),
    ]
    return Message.request(
        CommandCode.CAPABILITIES_EXCHANGE,
        0,
        avps,
        proxiable=False,
        hop_by_hop=hop_by_hop,
        end_to_end=end_to_end,
    ).encode()


def dwr(peer: PeerIdentity, *, hop_by_hop: int, end_to_end: int) -> bytes:
    return Message.request(
        CommandCode.DEVICE_WATCHDOG,
        0,
        _identity_avps(peer),
        proxiable=False,
        hop_by_hop=hop_by_hop,
        end_to_end=end_to_end,
    ).encode()


def dpr(peer: PeerIdentity, *, hop_by_hop: int, end_to_end: int) -> bytes:
    avps = [
        *_identity_avps(peer),
        _u32(AvpCode.DISCONNECT_CAUSE, DisconnectCause.DO_NOT_WANT_TO_TALK_TO_YOU),
    ]
    return Message.request(
        CommandCode.DISCONNECT_PEER,
        0,
        avps,
        proxiable=False,
        hop_by_hop=hop_by_hop,
        end_to_end=end_to_end,
    ).encode()


def answer_to(request: Message, peer: PeerIdentity, result_code: int) -> bytes:
    """A plain answer to a server request (DWA, DPA, RAA, ASA): Session-Id echoed when present."""
    avps: list[Avp] = []
    session = request.find(AvpCode.SESSION_ID)
    if session is not None:
        avps.append(session)
    avps += [_u32(AvpCode.RESULT_CODE, result_code), *_identity_avps(peer)]
    if request.command_code == CommandCode.DEVICE_WATCHDOG:
        avps.append(_u32(AvpCode.ORIGIN_STATE_ID, os.getpid() & 0xFFFFFFFF))
    if request.application_id == _CC:
        avps.append(_u32(AvpCode.AUTH_APPLICATION_ID, _CC))
    return Message(
        request.command_code,
        request.application_id,
        flags=request.flags & ~(FLAG_REQUEST | FLAG_RETRANSMIT) & 0xFF,
        hop_by_hop=request.hop_by_hop,
        end_to_end=request.end_to_end,
        avps=avps,
    ).encode()


def _unit_avp(unit: int, amount: int) -> Avp:
    """CC-Time is Unsigned32; CC-Total-Octets and CC-Service-Specific-Units are Unsigned64."""
    return _u32(unit, amount) if unit == Unit.SECONDS else Avp.u64(unit, amount)


def _mscc_avp(mscc: MsccRequest) -> Avp:
    children: list[Avp] = []
    if mscc.requested is not None:  # 0: an empty RSU (the server picks the grant size)
        amount = [_unit_avp(mscc.unit, mscc.requested)] if mscc.requested > 0 else []
        children.append(Avp.grouped(CcAvp.REQUESTED_SERVICE_UNIT, amount))
    if mscc.used:
        children.append(Avp.grouped(CcAvp.USED_SERVICE_UNIT, [_unit_avp(mscc.unit, mscc.used)]))
    if mscc.rating_group is not None:
        children.append(_u32(CcAvp.RATING_GROUP, mscc.rating_group))
    return Avp.grouped(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL, children)


def _service_information(spec: CcrSpec) -> Avp | None:
    parts: list[Avp] = []
    if spec.visited_plmn is not None:
        parts.append(
            Avp.grouped(
                GppAvp.PS_INFORMATION,
                [Avp.utf8(GppAvp.SGSN_MCC_MNC, spec.visited_plmn, vendor=VENDOR_3GPP)],
                vendor=VENDOR_3GPP,
            )
        )
    if spec.called is not None:
        parts.append(
            Avp.grouped(
                GppAvp.IMS_INFORMATION,
                [
                    Avp.i32(GppAvp.ROLE_OF_NODE, 0, vendor=VENDOR_3GPP),
                    Avp.utf8(GppAvp.CALLED_PARTY_ADDRESS, spec.called, vendor=VENDOR_3GPP),
                ],
                vendor=VENDOR_3GPP,
            )
        )
    if spec.sms_recipient is not None:
        address = Avp.grouped(
            GppAvp.RECIPIENT_ADDRESS,
            [Avp.utf8(GppAvp.ADDRESS_DATA, spec.sms_recipient, vendor=VENDOR_3GPP)],
            vendor=VENDOR_3GPP,
        )
        parts.append(
            Avp.grouped(
                GppAvp.SMS_INFORMATION,
                [Avp.grouped(GppAvp.RECIPIENT_INFO, [address], vendor=VENDOR_3GPP)],
                vendor=VENDOR_3GPP,
            )
        )
    if not parts:
        return None
    return Avp.grouped(GppAvp.SERVICE_INFORMATION, parts, vendor=VENDOR_3GPP)


_HEADER = struct.Struct(">IIIII")
_AVP_HEAD = struct.Struct(">II")
_U32_AVP = struct.Struct(">III")
_MANDATORY = 0x40 << 24  # the M bit in an AVP's flags-and-length word
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")  # by length % 4, to the next 32-bit boundary
_SESSION_ID = int(AvpCode.SESSION_ID)
_CC_REQUEST_NUMBER = int(CcAvp.CC_REQUEST_NUMBER)
_CCR_WORD = ((FLAG_REQUEST | FLAG_PROXIABLE) << 24) | _CCR
_T = TypeVar("_T")
CACHE_ENTRIES_MAX = 100_000  # per encoder: subscribers, MSCC shapes, visited networks


class CcrEncoder:
    """Encodes CCRs for one peer: AVPs that repeat (identities, realm, Subscription-Ids of a
    subscriber, MSCCs of the same shape, location) are encoded once with the product's AVP
    builders and their bytes reused, so a CCR costs a few µs to build."""

    def __init__(self, peer: PeerIdentity, destination_realm: str) -> None:
        self._fixed = b"".join(
            avp.encode()
            for avp in (
                *_identity_avps(peer),
                Avp.utf8(AvpCode.DESTINATION_REALM, destination_realm),
                _u32(AvpCode.AUTH_APPLICATION_ID, _CC),
            )
        )
        self._request_types = {t: _u32(CcAvp.CC_REQUEST_TYPE, t).encode() for t in (1, 2, 3, 4)}
        self._tails: dict[int, bytes] = {
            CcRequestType.EVENT: _u32(
                CcAvp.REQUESTED_ACTION, RequestedAction.DIRECT_DEBITING
            ).encode(),
            CcRequestType.TERMINATION: _u32(
                CcAvp.TERMINATION_CAUSE, TERMINATION_CAUSE_LOGOUT
            ).encode(),
        }
        self._msi = _u32(
            CcAvp.MULTIPLE_SERVICES_INDICATOR, MultipleServicesIndicator.MULTIPLE_SERVICES_SUPPORTED
        ).encode()
        self._cache: dict[object, bytes] = {}

    def _cached(self, key: object, build: Callable[[_T], bytes], source: _T) -> bytes:
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= CACHE_ENTRIES_MAX:
                self._cache.clear()
            found = self._cache[key] = build(source)
        return found

    def encode(
        self, spec: CcrSpec, *, hop_by_hop: int, end_to_end: int, omit_request_type: bool = False
    ) -> bytes:
        cached = self._cached
        session = spec.session_id.encode()
        parts = [
            _AVP_HEAD.pack(_SESSION_ID, _MANDATORY | (8 + len(session))),
            session + _PADDING[len(session) & 3],
            self._fixed,
            cached(("ctx", spec.context), _context_bytes, spec),
            b"" if omit_request_type else self._request_types[spec.request_type],
            _U32_AVP.pack(_CC_REQUEST_NUMBER, _MANDATORY | 12, spec.request_number),
            cached(("sub", spec.msisdn, spec.imsi), _subscription_ids, spec),
            self._tails.get(spec.request_type, b""),
        ]
        if spec.msccs:
            parts.append(self._msi)
            for mscc in spec.msccs:
                parts.append(cached(mscc, _mscc_bytes, mscc))
        if spec.visited_plmn or spec.called or spec.sms_recipient:
            key = ("info", spec.visited_plmn, spec.called, spec.sms_recipient)
            parts.append(cached(key, _service_information_bytes, spec))
        body = b"".join(parts)
        return (
            _HEADER.pack((1 << 24) | (HEADER_BYTES + len(body)), _CCR_WORD, _CC, hop_by_hop,
                         end_to_end)
            + body
        )  # fmt: skip


def _context_bytes(spec: CcrSpec) -> bytes:
    return Avp.utf8(CcAvp.SERVICE_CONTEXT_ID, spec.context).encode()


def _mscc_bytes(mscc: MsccRequest) -> bytes:
    return _mscc_avp(mscc).encode()


def _subscription_ids(spec: CcrSpec) -> bytes:
    avps = [
        Avp.grouped(
            CcAvp.SUBSCRIPTION_ID,
            [
                _u32(CcAvp.SUBSCRIPTION_ID_TYPE, SubscriptionIdType.E164),
                Avp.utf8(CcAvp.SUBSCRIPTION_ID_DATA, spec.msisdn),
            ],
        )
    ]
    if spec.imsi is not None:
        avps.append(
            Avp.grouped(
                CcAvp.SUBSCRIPTION_ID,
                [
                    _u32(CcAvp.SUBSCRIPTION_ID_TYPE, SubscriptionIdType.IMSI),
                    Avp.utf8(CcAvp.SUBSCRIPTION_ID_DATA, spec.imsi),
                ],
            )
        )
    return b"".join(a.encode() for a in avps)


def _service_information_bytes(spec: CcrSpec) -> bytes:
    info = _service_information(spec)
    return b"" if info is None else info.encode()


def ccr(
    spec: CcrSpec,
    peer: PeerIdentity,
    destination_realm: str,
    *,
    hop_by_hop: int,
    end_to_end: int,
    omit_request_type: bool = False,
) -> bytes:
    """An encoded CCR (one-off; see :class:`CcrEncoder` for many). ``omit_request_type`` leaves
    out CC-Request-Type: a malformed request the server must answer 5005 DIAMETER_MISSING_AVP."""
    return CcrEncoder(peer, destination_realm).encode(
        spec, hop_by_hop=hop_by_hop, end_to_end=end_to_end, omit_request_type=omit_request_type
    )


def with_hop_by_hop(encoded: bytes, hop_by_hop: int, *, retransmit: bool) -> bytes:
    """The same request under another Hop-by-Hop id, with the T flag when ``retransmit``
    (RFC 6733 §3: a retransmission after failover keeps the End-to-End id)."""
    flags = encoded[4] | FLAG_RETRANSMIT if retransmit else encoded[4]
    return (
        encoded[:4] + bytes((flags,)) + encoded[5:12] + hop_by_hop.to_bytes(4, "big") + encoded[16:]
    )


_VENDOR_BIT = 0x80 << 24  # in an AVP's flags-and-length word
_FLAG_ERROR = 0x20
_RESULT_CODE = int(AvpCode.RESULT_CODE)
_MSCC = int(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL)
_RATING_GROUP = int(CcAvp.RATING_GROUP)
_GSU = int(CcAvp.GRANTED_SERVICE_UNIT)
_FUI = int(CcAvp.FINAL_UNIT_INDICATION)
AVPS_PER_MESSAGE_MAX = 1024  # an answer with more top-level AVPs is rejected


# One generator walks every AVP list of an answer (top level, MSCC, GSU): resuming a generator
# costs far less than a Python call per AVP, and the length checks live in one place.


def _bad_avp(code: int, length: int, pos: int) -> InvalidAvpLength:
    return InvalidAvpLength(f"AVP {code} claims {length} bytes at offset {pos}")


def _short_header(pos: int, end: int) -> InvalidAvpLength:
    return InvalidAvpLength(f"{end - pos} bytes left at offset {pos} cannot hold an AVP header")


def _unsigned(data: bytes, start: int, end: int, code: int) -> int:
    if end - start not in (4, 8):
        raise InvalidAvpLength(f"AVP {code} holds {end - start} bytes, not an Unsigned32/64")
    return int.from_bytes(data[start:end], "big")


_UNIT_CODES = frozenset((Unit.BYTES, Unit.EVENTS, Unit.SECONDS))


def _walk(data: bytes, pos: int, end: int) -> Iterator[tuple[int, bool, int, int]]:
    """(code, vendor bit set, payload start, payload end) of each AVP in ``data[pos:end]``,
    lengths checked (InvalidAvpLength)."""
    unpack = _AVP_HEAD.unpack_from
    while pos < end:
        if end - pos < 8:
            raise _short_header(pos, end)
        code, word = unpack(data, pos)
        length = word & 0xFFFFFF
        stop = pos + length
        vendor = word >= _VENDOR_BIT
        if length < (12 if vendor else 8) or stop > end:
            raise _bad_avp(code, length, pos)
        yield code, vendor, pos + 8, stop
        pos = (stop + 3) & ~3


def _granted(data: bytes, pos: int, end: int) -> int | None:
    for code, vendor, begin, stop in _walk(data, pos, end):
        if code in _UNIT_CODES and not vendor:
            return _unsigned(data, begin, stop, code)
    return None


def _mscc_answer(data: bytes, pos: int, end: int) -> MsccAnswer:
    rating_group = result = granted = None
    final = False
    for code, vendor, begin, stop in _walk(data, pos, end):
        if vendor:
            continue
        if code == _RATING_GROUP:
            rating_group = _unsigned(data, begin, stop, code)
        elif code == _RESULT_CODE:
            result = _unsigned(data, begin, stop, code)
        elif code == _GSU:
            granted = _granted(data, begin, stop)
        elif code == _FUI:
            final = True
    return MsccAnswer(rating_group, result, granted, final)


MSCC_CACHE_ENTRIES_MAX = 10_000  # distinct MSCC answers remembered per reader


def summarize_answer(
    data: bytes, mscc_cache: dict[bytes, MsccAnswer] | None = None
) -> AnswerSummary:
    """Read an answer's Result-Code and grants with a scan of the few AVPs the simulator uses
    (lengths checked, nothing else decoded): the simulator must cost the server it measures as
    little CPU as possible, and the server's own tests own its answers' conformance. Raises
    :class:`DiameterError` subclasses on a truncated or mis-sized message.

    ``mscc_cache`` (the caller's, up to :data:`MSCC_CACHE_ENTRIES_MAX` entries) maps an MSCC's
    bytes to what was read from them: a run's answers repeat a handful of MSCCs (same rating
    group, grant and result), so most are read once."""
    size = len(data)
    if size < HEADER_BYTES:
        raise InvalidMessageLength(f"{size} bytes cannot hold a Diameter header")
    version_length, flags_command, _app, hop_by_hop, _e2e = _HEADER.unpack_from(data)
    if version_length & 0xFFFFFF != size:
        raise InvalidMessageLength(f"header says {version_length & 0xFFFFFF} bytes, got {size}")
    command = flags_command & 0xFFFFFF
    result_code: int | None = None
    msccs: list[MsccAnswer] = []
    avps = 0
    for code, vendor, begin, stop in _walk(data, HEADER_BYTES, size):
        avps += 1
        if vendor:
            continue
        if code == _RESULT_CODE:
            if result_code is None:
                result_code = _unsigned(data, begin, stop, code)
        elif code == _MSCC and command == _CCR:
            if mscc_cache is None:
                msccs.append(_mscc_answer(data, begin, stop))
                continue
            raw = data[begin:stop]
            known = mscc_cache.get(raw)
            if known is None:
                if len(mscc_cache) >= MSCC_CACHE_ENTRIES_MAX:
                    mscc_cache.clear()
                known = mscc_cache[raw] = _mscc_answer(data, begin, stop)
            msccs.append(known)
    if avps > AVPS_PER_MESSAGE_MAX:
        raise InvalidAvpLength(f"{avps} AVPs in one answer, more than {AVPS_PER_MESSAGE_MAX}")
    return AnswerSummary(
        command, hop_by_hop, result_code, bool((flags_command >> 24) & _FLAG_ERROR), tuple(msccs)
    )


SUCCESS = int(ResultCode.SUCCESS)
COMMITTING_CODES = frozenset(
    {
        int(ResultCode.SUCCESS),
        int(ResultCode.CREDIT_LIMIT_REACHED),
        int(ResultCode.END_USER_SERVICE_DENIED),
    }
)
"""Answers after which the server has committed the usage a request reported: the ledger commits
before it reserves, so running out of credit or a blocked account still records the usage."""


def header_fields(data: bytes) -> tuple[int, int, int]:
    """(flags, command code, hop-by-hop) from an encoded message's header, without decoding."""
    return data[4], int.from_bytes(data[5:8], "big"), int.from_bytes(data[12:16], "big")


def units_of(msccs: Sequence[MsccRequest]) -> int:
    return sum(m.used for m in msccs)
