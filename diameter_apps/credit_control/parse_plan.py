"""The MSCCs of a known request shape read straight from the frame, without AVP objects.

Every request of one shape (see :class:`diameter_apps.validation.RequestChecker`) has the same
AVP headers at the same offsets; only payloads differ. For the usual MSCC -- Rating-Group,
Service-Identifier, an RSU and USUs holding octet/time/unit counts, 3GPP Reporting-Reason --
what :func:`~diameter_apps.credit_control.parse_units.parse_mscc` returns then depends on a few
fixed-size payloads at fixed offsets, and cannot fail. :func:`services_plan` finds those
offsets once per shape and returns a reader that unpacks them all with one ``struct`` call and
builds the :class:`ServiceRequest` of each MSCC. Any MSCC it does not know how to read exactly
so (CC-Money, Tariff-Change-Usage, Trigger, a repeated AVP, an odd size...) gives no plan: the
general parse then reads that shape, and raises its faults.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from diameter_apps.codes import VENDOR_3GPP
from diameter_apps.credit_control.codes import CcAvp, GppAvp
from diameter_apps.credit_control.parse_units import NO_UNITS
from diameter_apps.credit_control.request import ServiceRequest, ServiceUnits, UsedUnits

_CC_INPUT_OCTETS = int(CcAvp.CC_INPUT_OCTETS)
_CC_OUTPUT_OCTETS = int(CcAvp.CC_OUTPUT_OCTETS)
_CC_SERVICE_SPECIFIC_UNITS = int(CcAvp.CC_SERVICE_SPECIFIC_UNITS)
_CC_TIME = int(CcAvp.CC_TIME)
_CC_TOTAL_OCTETS = int(CcAvp.CC_TOTAL_OCTETS)
_CC_MONEY = int(CcAvp.CC_MONEY)
_TARIFF_CHANGE_USAGE = int(CcAvp.TARIFF_CHANGE_USAGE)
_RATING_GROUP = int(CcAvp.RATING_GROUP)
_REQUESTED_SERVICE_UNIT = int(CcAvp.REQUESTED_SERVICE_UNIT)
_SERVICE_IDENTIFIER = int(CcAvp.SERVICE_IDENTIFIER)
_USED_SERVICE_UNIT = int(CcAvp.USED_SERVICE_UNIT)
_REPORTING_REASON = int(GppAvp.REPORTING_REASON)
_TRIGGER = int(GppAvp.TRIGGER)

_HEADER_BYTES = 20
_AVP_HEAD = struct.Struct(">II")
_U32 = struct.Struct(">I")

# Unit AVPs: their slot in ServiceUnits(time_s, total, input, output, specific) and format.
_UNIT_SLOTS = {
    _CC_TIME: (0, "I"),
    _CC_TOTAL_OCTETS: (1, "Q"),
    _CC_INPUT_OCTETS: (2, "Q"),
    _CC_OUTPUT_OCTETS: (3, "Q"),
    _CC_SERVICE_SPECIFIC_UNITS: (4, "Q"),
}
_SIZES = {"I": 4, "i": 4, "Q": 8}
ABSENT = -1
"""The index of a value not sent: the reader appends a None to the unpacked values."""

ServicesReader = Callable[[bytes], tuple[ServiceRequest, ...]]
_Units = tuple[int, int, int, int, int] | None  # value indices; None: no unit AVP at all
_Spec = tuple[int, int, bool, _Units, tuple[tuple[_Units, int], ...], int]
"""(Rating-Group, Service-Identifier, whether an RSU was sent, its units, the USUs with their
Reporting-Reason, the MSCC Reporting-Reason): value indices, ABSENT where not sent."""


class _NoPlan(Exception):
    """The shape holds something only the general parse reads exactly."""


class _Values:
    """The fixed-size payloads a plan reads: offset and struct format of each."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []

    def add(self, begin: int, stop: int, fmt: str) -> int:
        if stop - begin != _SIZES[fmt]:
            raise _NoPlan
        self.items.append((begin, fmt))
        return len(self.items) - 1


def _avps(frame: bytes, pos: int, end: int) -> list[tuple[int, int, int, int, int]]:
    """(code, flags, vendor, payload begin, payload stop) of each AVP of ``frame[pos:end]``."""
    found = []
    while pos < end:
        if end - pos < 8:
            raise _NoPlan
        code, word = _AVP_HEAD.unpack_from(frame, pos)
        flags = word >> 24
        stop = pos + (word & 0xFFFFFF)
        header = 12 if flags & 0x80 else 8
        if stop > end or stop < pos + header:
            raise _NoPlan
        vendor = _U32.unpack_from(frame, pos + 8)[0] if flags & 0x80 else 0
        found.append((code, flags, vendor, pos + header, stop))
        pos = (stop + 3) & ~3
    return found


def _units(frame: bytes, begin: int, stop: int, values: _Values) -> tuple[_Units, int]:
    """An RSU/USU payload: its unit value indices and its Reporting-Reason index."""
    slots = [ABSENT] * 5
    reason = ABSENT
    seen = False
    for code, _flags, vendor, at, end in _avps(frame, begin, stop):
        if vendor:
            if code == _REPORTING_REASON and vendor == VENDOR_3GPP:
                if reason != ABSENT:
                    raise _NoPlan  # 5009 from the general parse
                reason = values.add(at, end, "i")
            continue
        unit = _UNIT_SLOTS.get(code)
        if unit is not None:
            slot, fmt = unit
            if slots[slot] != ABSENT:
                raise _NoPlan
            slots[slot] = values.add(at, end, fmt)
            seen = True
        elif code in (_CC_MONEY, _TARIFF_CHANGE_USAGE):
            raise _NoPlan  # nested or value-dependent: the general parse reads them
    # No unit AVP: the general parse gives NO_UNITS or a ServiceUnits() equal to it.
    units: _Units = (slots[0], slots[1], slots[2], slots[3], slots[4]) if seen else None
    return units, reason


def _mscc(frame: bytes, begin: int, stop: int, values: _Values) -> _Spec:
    rating_group = service_id = reason = ABSENT
    has_rsu = False
    requested: _Units = None
    used: list[tuple[_Units, int]] = []
    for code, _flags, vendor, at, end in _avps(frame, begin, stop):
        if vendor:
            if vendor != VENDOR_3GPP:
                continue
            if code == _REPORTING_REASON:
                if reason != ABSENT:
                    raise _NoPlan
                reason = values.add(at, end, "i")
            elif code == _TRIGGER:
                raise _NoPlan
            continue
        if code == _USED_SERVICE_UNIT:
            used.append(_units(frame, at, end, values))
        elif code == _RATING_GROUP:
            if rating_group != ABSENT:
                raise _NoPlan
            rating_group = values.add(at, end, "I")
        elif code == _REQUESTED_SERVICE_UNIT:
            if has_rsu:
                raise _NoPlan
            has_rsu = True
            requested = _units(frame, at, end, values)[0]
        elif code == _SERVICE_IDENTIFIER and service_id == ABSENT:
            service_id = values.add(at, end, "I")
    return rating_group, service_id, has_rsu, requested, tuple(used), reason


def services_plan(frame: bytes, mscc_at: list[int]) -> ServicesReader | None:
    """The reader of the MSCCs (the top-level AVPs at ``mscc_at``) of any request of
    ``frame``'s shape, or None when one of them needs the general parse."""
    try:
        top = _avps(frame, _HEADER_BYTES, len(frame))
        values = _Values()
        specs = tuple([_mscc(frame, top[at][3], top[at][4], values) for at in mscc_at])
    except (_NoPlan, IndexError, struct.error):
        return None
    order = sorted(range(len(values.items)), key=lambda i: values.items[i][0])
    fmt = [">"]
    pos = 0
    for i in order:
        begin, code = values.items[i]
        fmt.append(f"{begin - pos}x{code}")
        pos = begin + _SIZES[code]
    unpack_from = struct.Struct("".join(fmt)).unpack_from
    # Value i of the plan sits at place[i] among the unpacked ones (sorted by offset).
    place = [0] * len(order)
    for unpacked, i in enumerate(order):
        place[i] = unpacked
    specs = tuple([_placed(spec, place) for spec in specs])
    absent = (None,)

    new_units = ServiceUnits

    def read(frame: bytes) -> tuple[ServiceRequest, ...]:
        v = unpack_from(frame) + absent  # v[ABSENT] is None
        # Inline rather than a call per MSCC and per RSU/USU: this runs per request.
        return tuple(
            [
                ServiceRequest(
                    v[rating_group],
                    v[service_id],
                    None
                    if not has_rsu
                    else NO_UNITS
                    if rsu is None
                    else new_units(v[rsu[0]], v[rsu[1]], v[rsu[2]], v[rsu[3]], v[rsu[4]], None),
                    tuple(
                        [
                            UsedUnits(
                                NO_UNITS
                                if u is None
                                else new_units(v[u[0]], v[u[1]], v[u[2]], v[u[3]], v[u[4]], None),
                                None,
                                v[r],
                            )
                            for u, r in used
                        ]
                    )
                    if used
                    else (),
                    v[reason],
                    (),
                    True,
                )
                for rating_group, service_id, has_rsu, rsu, used, reason in specs
            ]
        )

    return read


def _placed(spec: _Spec, place: list[int]) -> _Spec:
    def at(i: int) -> int:
        return ABSENT if i == ABSENT else place[i]

    def units(u: _Units) -> _Units:
        return None if u is None else (at(u[0]), at(u[1]), at(u[2]), at(u[3]), at(u[4]))

    rating_group, service_id, has_rsu, requested, used, reason = spec
    return (
        at(rating_group),
        at(service_id),
        has_rsu,
        units(requested),
        tuple([(units(u), at(r)) for u, r in used]),
        at(reason),
    )
