"""3GPP-User-Location-Info and 3GPP-SGSN-MCC-MNC: where the subscriber is, for the roaming zone.

3GPP-User-Location-Info (TS 29.061 §16.4.7.2) is one octet of Geographic Location Type followed
by the location in the GTP encoding (TS 29.060 §7.7.51 / TS 29.274 §8.21): every type starts with
the MCC and MNC as three octets of swapped BCD digits (MNC digit 3 = 0xF for a two-digit MNC).
Only the PLMN (MCC-MNC) is a rating key; the area and cell identities are kept for usage records.
"""

from __future__ import annotations

import msgspec

from diameter_apps.credit_control.codes import GeographicLocationType

_T = GeographicLocationType

_LAYOUT: dict[int, tuple[int, int, int, int, int, int]] = {
    # type: (payload bytes, area offset, area bytes, cell offset, cell bytes, cell bit mask)
    # offsets are from the start of the payload (after the type octet); 0 bytes = absent.
    _T.CGI: (7, 3, 2, 5, 2, 0xFFFF),
    _T.SAI: (7, 3, 2, 5, 2, 0xFFFF),
    _T.RAI: (6, 3, 2, 0, 0, 0),
    _T.TAI: (5, 3, 2, 0, 0, 0),
    _T.ECGI: (7, 0, 0, 3, 4, 0x0FFFFFFF),
    _T.TAI_ECGI: (12, 3, 2, 8, 4, 0x0FFFFFFF),
    _T.ENODEB_ID: (7, 0, 0, 3, 4, 0x000FFFFF),
    _T.TAI_ENODEB_ID: (12, 3, 2, 8, 4, 0x000FFFFF),
    _T.EXTENDED_ENODEB_ID: (7, 0, 0, 3, 4, 0x001FFFFF),
    _T.TAI_EXTENDED_ENODEB_ID: (12, 3, 2, 8, 4, 0x001FFFFF),
    _T.NCGI: (8, 0, 0, 3, 5, 0x0FFFFFFFFF),
    _T.TAI_5GS: (6, 3, 3, 0, 0, 0),
    _T.TAI_5GS_NCGI: (14, 3, 3, 9, 5, 0x0FFFFFFFFF),
}
"""Minimum payload size and where the area code (LAC/TAC) and cell identity sit, per type.

A RAI is 6 or 7 octets depending on the GTP version that filled it in (a spare octet after the
RAC), so every size here is a minimum and trailing octets are ignored.
"""


_KINDS = {int(kind): kind for kind in GeographicLocationType}


class LocationError(ValueError):
    """The octets are not a location: the parser turns it into 5004 on the AVP."""


class UserLocation(msgspec.Struct, frozen=True):
    """A decoded 3GPP-User-Location-Info.

    ``mcc_mnc`` is the PLMN of the (first) location part, e.g. ``"26201"`` or ``"310410"``;
    ``area_code`` is the LAC or TAC, ``cell_id`` the CI, SAC, ECI, eNodeB id or NR cell id.
    """

    kind: GeographicLocationType
    mcc_mnc: str
    area_code: int | None = None
    cell_id: int | None = None


def _swapped_digits(octet: int) -> str | None:
    low, high = octet & 0xF, octet >> 4
    return f"{low}{high}" if low <= 9 and high <= 9 else None


_SWAPPED_BCD: tuple[str | None, ...] = tuple(_swapped_digits(octet) for octet in range(256))
"""Octet → its two BCD digits, low nibble first (None when a nibble is not a digit)."""


def decode_plmn(octets: bytes) -> str:
    """MCC and MNC from three octets of swapped BCD (TS 24.008 §10.5.1.3): ``"MCCMNC"``."""
    if len(octets) < 3:
        raise LocationError("a PLMN needs three octets")
    mcc12 = _SWAPPED_BCD[octets[0]]
    middle = octets[1]
    mcc3, mnc3 = middle & 0xF, middle >> 4
    mnc12 = _SWAPPED_BCD[octets[2]]
    if mcc12 is None or mnc12 is None or mcc3 > 9 or (mnc3 > 9 and mnc3 != 0xF):
        raise LocationError(f"PLMN octets {octets[:3].hex()} are not BCD digits")
    if mnc3 == 0xF:
        return f"{mcc12}{mcc3}{mnc12}"
    return f"{mcc12}{mcc3}{mnc12}{mnc3}"


def encode_plmn(mcc_mnc: str) -> bytes:
    """The inverse of :func:`decode_plmn` (used by tests and the simulator)."""
    if not (mcc_mnc.isdigit() and len(mcc_mnc) in (5, 6)):
        raise ValueError(f"{mcc_mnc!r} is not a 5 or 6 digit MCC-MNC")
    d = [int(c) for c in mcc_mnc]
    mnc3 = d[5] if len(d) == 6 else 0xF
    return bytes([(d[1] << 4) | d[0], (mnc3 << 4) | d[2], (d[4] << 4) | d[3]])


def decode_user_location(octets: bytes) -> UserLocation:
    """Decode a 3GPP-User-Location-Info value; raises :class:`LocationError` when malformed."""
    if not octets:
        raise LocationError("empty User-Location-Info")
    kind = _KINDS.get(octets[0])
    if kind is None:
        raise LocationError(f"unknown geographic location type {octets[0]}")
    size, area_at, area_len, cell_at, cell_len, cell_mask = _LAYOUT[kind]
    payload = octets[1:]
    if len(payload) < size:
        raise LocationError(f"{kind.name} location needs {size} octets, got {len(payload)}")
    area = int.from_bytes(payload[area_at : area_at + area_len], "big") if area_len else None
    cell = (
        int.from_bytes(payload[cell_at : cell_at + cell_len], "big") & cell_mask
        if cell_len
        else None
    )
    return UserLocation(kind, decode_plmn(payload), area, cell)


def check_mcc_mnc(value: str) -> str:
    """A 3GPP-SGSN-MCC-MNC value ("MCCMNC", 5 or 6 digits) or :class:`LocationError`."""
    if len(value) in (5, 6) and value.isascii() and value.isdigit():
        return value
    raise LocationError(f"3GPP-SGSN-MCC-MNC {value!r} is not 5 or 6 digits")
