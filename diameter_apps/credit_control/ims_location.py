"""Where an IMS subscriber is, from IMS-Information (TS 32.299 §7.2.77), for the roaming zone.

Two sources, both filled in by the IMS network rather than the UE's own radio:

- Access-Network-Information (AVP 1263, OctetString): a P-Access-Network-Info header value
  (TS 24.229 §7.2A.4, RFC 7315) such as ``3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=2620112345ABCDEF0;
  network-provided``. The cell identity starts with MCC (3 digits) and MNC (2 or 3); the MNC
  length follows from the fixed size of the rest for the access type: LAC + CI (4 + 4 hex) for
  GERAN, LAC + UC-Id (4 + 7) for UTRAN, TAC + ECI (4 + 7) for E-UTRAN, TAC + NCI (6 + 9) for NR.
- IMS-Visited-Network-Identifier (AVP 2713, OctetString): the P-Visited-Network-ID the P-CSCF
  inserted, commonly its home domain ``ims.mnc001.mcc262.3gppnetwork.org`` (TS 23.003 §13.2:
  a two-digit MNC is written with a leading 0).

A UE may insert its own P-Access-Network-Info; only the P-CSCF's copy carries
``network-provided``. So the order of trust is: a network-provided header, then the visited
network identifier, then any other header. A value that cannot be read gives no PLMN (never an
error: these are informative headers and the session still has its other rating keys).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Hex digits after MCC+MNC in the cell identity, per access type (lower case, TS 24.229).
_CELL_SUFFIX_HEX = {
    "3gpp-geran": 8,
    "3gpp-utran-fdd": 11,
    "3gpp-utran-tdd": 11,
    "3gpp-e-utran-fdd": 11,
    "3gpp-e-utran-tdd": 11,
    "3gpp-nr-fdd": 15,
    "3gpp-nr-tdd": 15,
    "3gpp-nr-u-nr-tdd": 15,
}
_CELL_PARAMS = ("utran-cell-id-3gpp", "cgi-3gpp", "nr-cell-id-3gpp")
_VISITED = re.compile(r"mnc([0-9]{3})\.mcc([0-9]{3})", re.ASCII | re.IGNORECASE)
# Countries whose MNCs are three digits (North America and the Caribbean, ITU E.212): there a
# domain's ``mnc001`` is MNC 001; everywhere else it is the padded two-digit MNC 01.
_THREE_DIGIT_MNC_MCC_PREFIX = "3"
TEXT_BYTES_MAX = 512  # a header longer than this is not looked at


def _cell_plmn(access_type: str, cell: str) -> str | None:
    suffix = _CELL_SUFFIX_HEX.get(access_type)
    if suffix is None:
        return None
    mnc_digits = len(cell) - 3 - suffix
    if mnc_digits not in (2, 3):
        return None
    plmn = cell[: 3 + mnc_digits]
    if not (plmn.isascii() and plmn.isdigit()):
        return None
    try:
        int(cell[3 + mnc_digits :], 16)
    except ValueError:
        return None
    return plmn


def access_network_plmn(header: str) -> tuple[str | None, bool]:
    """(MCC+MNC of the cell, whether the network provided it) of a P-Access-Network-Info."""
    if len(header) > TEXT_BYTES_MAX:
        return None, False
    parts = [part.strip() for part in header.split(";")]
    access_type = parts[0].lower()
    plmn: str | None = None
    provided = False
    for part in parts[1:]:
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name == "network-provided":
            provided = True
        elif name in _CELL_PARAMS and plmn is None:
            plmn = _cell_plmn(access_type, value.strip().strip('"'))
    return plmn, provided


def visited_network_plmn(identifier: str) -> str | None:
    """MCC+MNC of an IMS-Visited-Network-Identifier written as a 3GPP domain, else None."""
    if len(identifier) > TEXT_BYTES_MAX:
        return None
    found = _VISITED.search(identifier)
    if found is None:
        return None
    mnc, mcc = found.group(1), found.group(2)
    if mnc[0] == "0" and not mcc.startswith(_THREE_DIGIT_MNC_MCC_PREFIX):
        mnc = mnc[1:]
    return mcc + mnc


def ims_visited_plmn(
    access_network_info: Sequence[str], visited_network_identifier: str | None
) -> str | None:
    """The PLMN an IMS subscriber is in, by the order of trust in the module docstring."""
    fallback: str | None = None
    for header in access_network_info:
        plmn, provided = access_network_plmn(header)
        if plmn is not None:
            if provided:
                return plmn
            fallback = fallback or plmn
    if visited_network_identifier:
        plmn = visited_network_plmn(visited_network_identifier)
        if plmn is not None:
            return plmn
    return fallback
