"""AVP and command dictionary: base (RFC 6733), credit control (RFC 4006/8506), 3GPP TS 32.299.

The AVP table is not retyped: names, codes, vendors, types and the "M bit set" rule come from
the installed ``python-diameter`` package (its ``AVP_DICTIONARY`` for vendor 0 and
``AVP_VENDOR_DICTIONARY[10415]`` for 3GPP). That package only knows the wire representation of a
type, so :data:`_TYPE_OVERRIDES` adds what it lacks: the derived types DiameterIdentity,
DiameterURI and Enumerated, Result-Code as Unsigned32 (RFC 6733 §7.1), and the AVPs whose M bit
MUST NOT be set. Commands, with the AVPs each requires and those that may occur at most once,
are ours (from the RFC ABNF).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from enum import Enum

import msgspec

from diameter_apps.codec import (
    KIND_ADDRESS,
    KIND_GROUPED,
    KIND_OTHER,
    KIND_TEXT,
    RULE_M_MAY,
    RULE_M_MUST,
    RULE_M_MUST_NOT,
    AvpRule,
    rule_key,
)
from diameter_apps.codes import VENDOR_3GPP, AvpCode, CommandCode


class AvpType(Enum):
    OCTET_STRING = "OctetString"
    INTEGER32 = "Integer32"
    INTEGER64 = "Integer64"
    UNSIGNED32 = "Unsigned32"
    UNSIGNED64 = "Unsigned64"
    FLOAT32 = "Float32"
    FLOAT64 = "Float64"
    GROUPED = "Grouped"
    ADDRESS = "Address"
    TIME = "Time"
    UTF8_STRING = "UTF8String"
    DIAMETER_IDENTITY = "DiameterIdentity"
    DIAMETER_URI = "DiameterURI"
    ENUMERATED = "Enumerated"


FIXED_SIZE_BYTES: Mapping[AvpType, int] = {
    AvpType.INTEGER32: 4,
    AvpType.UNSIGNED32: 4,
    AvpType.ENUMERATED: 4,
    AvpType.TIME: 4,
    AvpType.FLOAT32: 4,
    AvpType.INTEGER64: 8,
    AvpType.UNSIGNED64: 8,
    AvpType.FLOAT64: 8,
}
"""Payload size of the fixed-size types: any other size is 5014 INVALID_AVP_LENGTH."""


class MBitRule(Enum):
    MUST = "must"
    MAY = "may"
    MUST_NOT = "must_not"


_KIND_OF_TYPE = {
    AvpType.GROUPED: KIND_GROUPED,
    AvpType.UTF8_STRING: KIND_TEXT,
    AvpType.DIAMETER_IDENTITY: KIND_TEXT,
    AvpType.DIAMETER_URI: KIND_TEXT,
    AvpType.ADDRESS: KIND_ADDRESS,
}
_RULE_OF_M_BIT = {
    MBitRule.MAY: RULE_M_MAY,
    MBitRule.MUST: RULE_M_MUST,
    MBitRule.MUST_NOT: RULE_M_MUST_NOT,
}


class AvpDef(msgspec.Struct, frozen=True):
    name: str
    code: int
    vendor: int
    type: AvpType
    m_bit: MBitRule


class CommandDef(msgspec.Struct, frozen=True):
    """A command's name, the AVPs a request/answer must carry, and those allowed at most once."""

    code: int
    name: str
    request_required: tuple[tuple[int, int], ...]
    answer_required: tuple[tuple[int, int], ...]
    at_most_once: tuple[tuple[int, int], ...]


class Dictionary:
    """Lookup of AVP and command definitions by (code, vendor) / command code."""

    __slots__ = ("_avps", "_by_name", "_commands", "_rules")

    def __init__(self, avps: Mapping[tuple[int, int], AvpDef], commands: Mapping[int, CommandDef]):
        self._avps = dict(avps)
        self._by_name = {d.name: d for d in self._avps.values()}
        self._commands = dict(commands)
        self._rules: dict[int, AvpRule] | None = None

    def avp_rules(self) -> Mapping[int, AvpRule]:
        """The AVP table compiled to the compact rules of the checking decoder; compiled on
        first use (a few ms) and shared by every connection using this dictionary."""
        if self._rules is None:
            self._rules = {
                rule_key(d.code, d.vendor): (
                    _RULE_OF_M_BIT[d.m_bit],
                    FIXED_SIZE_BYTES.get(d.type, 0),
                    _KIND_OF_TYPE.get(d.type, KIND_OTHER),
                )
                for d in self._avps.values()
            }
        return self._rules

    def avp(self, code: int, vendor: int = 0) -> AvpDef | None:
        return self._avps.get((code, vendor))

    def avp_named(self, name: str) -> AvpDef:
        return self._by_name[name]

    def definitions(self) -> list[AvpDef]:
        return list(self._avps.values())

    def command(self, code: int) -> CommandDef | None:
        return self._commands.get(code)

    def __len__(self) -> int:
        return len(self._avps)

    def __contains__(self, key: object) -> bool:
        return key in self._avps


_PYTHON_DIAMETER_TYPES: Mapping[str, AvpType] = {
    "AvpOctetString": AvpType.OCTET_STRING,
    "AvpInteger32": AvpType.INTEGER32,
    "AvpInteger64": AvpType.INTEGER64,
    "AvpUnsigned32": AvpType.UNSIGNED32,
    "AvpUnsigned64": AvpType.UNSIGNED64,
    "AvpFloat32": AvpType.FLOAT32,
    "AvpFloat64": AvpType.FLOAT64,
    "AvpGrouped": AvpType.GROUPED,
    "AvpAddress": AvpType.ADDRESS,
    "AvpTime": AvpType.TIME,
    "AvpUtf8String": AvpType.UTF8_STRING,
}

_IDENTITY = AvpType.DIAMETER_IDENTITY
_ENUM = AvpType.ENUMERATED
_TYPE_OVERRIDES: Mapping[tuple[int, int], AvpType] = {
    # RFC 6733 derived types python-diameter stores as OctetString / Integer32.
    (264, 0): _IDENTITY,  # Origin-Host
    (296, 0): _IDENTITY,  # Origin-Realm
    (293, 0): _IDENTITY,  # Destination-Host
    (283, 0): _IDENTITY,  # Destination-Realm
    (280, 0): _IDENTITY,  # Proxy-Host
    (282, 0): _IDENTITY,  # Route-Record
    (294, 0): _IDENTITY,  # Error-Reporting-Host
    (292, 0): AvpType.DIAMETER_URI,  # Redirect-Host
    (268, 0): AvpType.UNSIGNED32,  # Result-Code
    (298, 0): AvpType.UNSIGNED32,  # Experimental-Result-Code
    (299, 0): AvpType.UNSIGNED32,  # Inband-Security-Id
    (270, 0): AvpType.UNSIGNED32,  # Session-Binding
    (273, 0): _ENUM,  # Disconnect-Cause
    (274, 0): _ENUM,  # Auth-Request-Type
    (277, 0): _ENUM,  # Auth-Session-State
    (285, 0): _ENUM,  # Re-Auth-Request-Type
    (295, 0): _ENUM,  # Termination-Cause
    (480, 0): _ENUM,  # Accounting-Record-Type
    (483, 0): _ENUM,  # Accounting-Realtime-Required
    # RFC 4006 / 8506 Enumerated AVPs.
    (416, 0): _ENUM,  # CC-Request-Type
    (418, 0): _ENUM,  # CC-Session-Failover
    (422, 0): _ENUM,  # Check-Balance-Result
    (426, 0): _ENUM,  # Credit-Control
    (427, 0): _ENUM,  # Credit-Control-Failure-Handling
    (428, 0): _ENUM,  # Direct-Debiting-Failure-Handling
    (433, 0): _ENUM,  # Redirect-Address-Type
    (436, 0): _ENUM,  # Requested-Action
    (449, 0): _ENUM,  # Final-Unit-Action
    (450, 0): _ENUM,  # Subscription-Id-Type
    (452, 0): _ENUM,  # Tariff-Change-Usage
    (454, 0): _ENUM,  # CC-Unit-Type
    (455, 0): _ENUM,  # Multiple-Services-Indicator
    (459, 0): _ENUM,  # User-Equipment-Info-Type
    # 3GPP TS 32.299 Enumerated AVPs of the checklist.
    (829, VENDOR_3GPP): _ENUM,  # Role-Of-Node
    (870, VENDOR_3GPP): _ENUM,  # Trigger-Type
    (872, VENDOR_3GPP): _ENUM,  # Reporting-Reason
}

_M_BIT_MUST_NOT: frozenset[tuple[int, int]] = frozenset(
    {
        (281, 0),  # Error-Message (RFC 6733 §4.5: M bit MUST NOT be set)
        (294, 0),  # Error-Reporting-Host
        (267, 0),  # Firmware-Revision
        (269, 0),  # Product-Name
    }
)

_NAME_OVERRIDES: Mapping[tuple[int, int], str] = {
    (872, VENDOR_3GPP): "Reporting-Reason",  # python-diameter: "3GPP-Reporting-Reason"
}


def _k(code: int) -> tuple[int, int]:
    return (int(code), 0)


_ORIGIN = (_k(AvpCode.ORIGIN_HOST), _k(AvpCode.ORIGIN_REALM))
_RESULT_ORIGIN = (_k(AvpCode.RESULT_CODE), *_ORIGIN)
_SESSION = _k(AvpCode.SESSION_ID)
_DEST_REALM = _k(AvpCode.DESTINATION_REALM)
_DEST_HOST = _k(AvpCode.DESTINATION_HOST)
_AUTH_APP = _k(AvpCode.AUTH_APPLICATION_ID)
_CC_REQUEST_TYPE = (416, 0)
_CC_REQUEST_NUMBER = (415, 0)
_SERVICE_CONTEXT_ID = (461, 0)
_RE_AUTH_REQUEST_TYPE = (285, 0)
_ORIGIN_STATE_ID = _k(AvpCode.ORIGIN_STATE_ID)

_COMMANDS = (
    CommandDef(
        CommandCode.CAPABILITIES_EXCHANGE,
        "Capabilities-Exchange",
        request_required=(
            *_ORIGIN,
            _k(AvpCode.HOST_IP_ADDRESS),
            _k(AvpCode.VENDOR_ID),
            _k(AvpCode.PRODUCT_NAME),
        ),
        answer_required=(
            *_RESULT_ORIGIN,
            _k(AvpCode.HOST_IP_ADDRESS),
            _k(AvpCode.VENDOR_ID),
            _k(AvpCode.PRODUCT_NAME),
        ),
        at_most_once=(
            *_RESULT_ORIGIN,
            _k(AvpCode.VENDOR_ID),
            _k(AvpCode.PRODUCT_NAME),
            _ORIGIN_STATE_ID,
            _k(AvpCode.FIRMWARE_REVISION),
        ),
    ),
    CommandDef(
        CommandCode.DEVICE_WATCHDOG,
        "Device-Watchdog",
        request_required=_ORIGIN,
        answer_required=_RESULT_ORIGIN,
        at_most_once=(*_RESULT_ORIGIN, _ORIGIN_STATE_ID),
    ),
    CommandDef(
        CommandCode.DISCONNECT_PEER,
        "Disconnect-Peer",
        request_required=(*_ORIGIN, _k(AvpCode.DISCONNECT_CAUSE)),
        answer_required=_RESULT_ORIGIN,
        at_most_once=(*_RESULT_ORIGIN, _k(AvpCode.DISCONNECT_CAUSE)),
    ),
    CommandDef(
        CommandCode.CREDIT_CONTROL,
        "Credit-Control",
        # The credit-control AVPs (Auth-Application-Id, Service-Context-Id, CC-Request-*) are
        # required by diameter_apps.credit_control.parse_ccr, which knows the lenient cases
        # (Kamailio puts Auth-Application-Id only inside Vendor-Specific-Application-Id) and
        # builds the same 5005 Failed-AVP whichever AVP is missing.
        request_required=(_SESSION, *_ORIGIN, _DEST_REALM),
        answer_required=(
            _SESSION,
            *_RESULT_ORIGIN,
            _AUTH_APP,
            _CC_REQUEST_TYPE,
            _CC_REQUEST_NUMBER,
        ),
        at_most_once=(
            _SESSION,
            *_RESULT_ORIGIN,
            _DEST_REALM,
            _DEST_HOST,
            _AUTH_APP,
            _SERVICE_CONTEXT_ID,
            _CC_REQUEST_TYPE,
            _CC_REQUEST_NUMBER,
            _ORIGIN_STATE_ID,
            (1, 0),  # User-Name
            (55, 0),  # Event-Timestamp
            (436, 0),  # Requested-Action
            (455, 0),  # Multiple-Services-Indicator
            (295, 0),  # Termination-Cause
        ),
    ),
    CommandDef(
        CommandCode.RE_AUTH,
        "Re-Auth",
        request_required=(
            _SESSION,
            *_ORIGIN,
            _DEST_REALM,
            _DEST_HOST,
            _AUTH_APP,
            _RE_AUTH_REQUEST_TYPE,
        ),
        answer_required=(_SESSION, *_RESULT_ORIGIN),
        at_most_once=(
            _SESSION,
            *_RESULT_ORIGIN,
            _DEST_REALM,
            _DEST_HOST,
            _AUTH_APP,
            _RE_AUTH_REQUEST_TYPE,
            _ORIGIN_STATE_ID,
        ),
    ),
    CommandDef(
        CommandCode.ABORT_SESSION,
        "Abort-Session",
        request_required=(_SESSION, *_ORIGIN, _DEST_REALM, _DEST_HOST, _AUTH_APP),
        answer_required=(_SESSION, *_RESULT_ORIGIN),
        at_most_once=(
            _SESSION,
            *_RESULT_ORIGIN,
            _DEST_REALM,
            _DEST_HOST,
            _AUTH_APP,
            _ORIGIN_STATE_ID,
        ),
    ),
)


def _from_python_diameter() -> dict[tuple[int, int], AvpDef]:
    from diameter.message.avp.dictionary import AVP_DICTIONARY, AVP_VENDOR_DICTIONARY

    table: dict[tuple[int, int], AvpDef] = {}
    sources = ((0, AVP_DICTIONARY), (VENDOR_3GPP, AVP_VENDOR_DICTIONARY[VENDOR_3GPP]))
    for vendor, entries in sources:
        for code, info in entries.items():
            key = (int(code), vendor)
            avp_type = _TYPE_OVERRIDES.get(key) or _PYTHON_DIAMETER_TYPES.get(
                info["type"].__name__, AvpType.OCTET_STRING
            )
            if key in _M_BIT_MUST_NOT:
                rule = MBitRule.MUST_NOT
            elif info.get("mandatory", False):
                rule = MBitRule.MUST
            else:
                rule = MBitRule.MAY
            name = _NAME_OVERRIDES.get(key, info["name"])
            table[key] = AvpDef(name, key[0], vendor, avp_type, rule)
    return table


@functools.cache
def default_dictionary() -> Dictionary:
    """The dictionary used by the OCS: built once (immutable), shared by every connection."""
    commands = {int(c.code): c for c in _COMMANDS}
    return Dictionary(_from_python_diameter(), commands)
