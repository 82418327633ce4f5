"""Checks of a decoded request against the dictionary (RFC 6733 §7, DESIGN B8/B9).

Raises the :mod:`diameter_apps.errors` class whose Result-Code RFC 6733 names for the fault,
with the offending AVP(s) as Failed-AVP. Under :attr:`Profile.LENIENT` the deviations real peers
make (Kamailio's duplicated Origin-Host / Origin-Realm, python-diameter's missing M bit, an M bit
where it must not be) are accepted and returned as descriptions for the adapter to log.
"""

from __future__ import annotations

from enum import Enum

from diameter_apps.codec import Avp, Message
from diameter_apps.codes import AVP_FLAG_MANDATORY, FLAG_ERROR, AvpCode
from diameter_apps.dictionary import (
    FIXED_SIZE_BYTES,
    AvpType,
    CommandDef,
    Dictionary,
    MBitRule,
)
from diameter_apps.errors import (
    AvpOccursTooManyTimes,
    AvpUnsupported,
    DiameterError,
    InvalidAvpBits,
    InvalidAvpLength,
    InvalidHeaderBits,
    MissingAvp,
)
from diameter_apps.limits import CodecLimits


class Profile(Enum):
    STRICT = "strict"
    LENIENT = "lenient"


_TOLERATED_DUPLICATES = frozenset({(int(AvpCode.ORIGIN_HOST), 0), (int(AvpCode.ORIGIN_REALM), 0)})
_TEXT_TYPES = frozenset({AvpType.UTF8_STRING, AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI})


def validate_request(
    message: Message,
    dictionary: Dictionary,
    profile: Profile,
    limits: CodecLimits,
) -> list[str]:
    """Check header bits, required / once-only AVPs, M bits and value sizes, Grouped included.

    Returns the deviations tolerated under the lenient profile (empty when clean). Unknown AVPs
    without the M bit are ignored (not descended into); unknown ones with it are 5001.
    """
    deviations: list[str] = []
    check_header_bits(message)
    command = dictionary.command(message.command_code)
    if command is not None:
        _check_occurrences(message, command, profile, deviations)
    _check_avps(message.avps, dictionary, profile, limits, deviations, message)
    if (
        message.avps
        and message.avps[0].code != AvpCode.SESSION_ID
        and message.find(AvpCode.SESSION_ID)
    ):
        deviations.append("Session-Id is not the first AVP")
    return deviations


def check_header_bits(message: Message) -> None:
    """A request with the E bit set is 3008 (RFC 6733 §3: E is only for answers)."""
    if message.flags & FLAG_ERROR:
        raise InvalidHeaderBits("the E bit is set in a request", request=message)


def _check_occurrences(
    message: Message, command: CommandDef, profile: Profile, deviations: list[str]
) -> None:
    counts: dict[tuple[int, int], int] = {}
    for avp in message.avps:
        key = (avp.code, avp.vendor)
        counts[key] = counts.get(key, 0) + 1
    for key in command.request_required:
        if key not in counts:
            code, vendor = key
            missing = Avp(code, AVP_FLAG_MANDATORY | (0x80 if vendor else 0), vendor, b"")
            raise MissingAvp(
                f"{command.name}-Request lacks required AVP {code}",
                failed_avps=(missing,),
                request=message,
            )
    for key in command.at_most_once:
        if counts.get(key, 0) > 1:
            if profile is Profile.LENIENT and key in _TOLERATED_DUPLICATES:
                deviations.append(f"AVP {key[0]} occurs {counts[key]} times; the first is used")
                continue
            repeats = [a for a in message.avps if (a.code, a.vendor) == key][1:]
            raise AvpOccursTooManyTimes(
                f"AVP {key[0]} may occur once in {command.name}-Request",
                failed_avps=repeats[:1],
                request=message,
            )


def _check_avps(
    avps: list[Avp],
    dictionary: Dictionary,
    profile: Profile,
    limits: CodecLimits,
    deviations: list[str],
    message: Message,
) -> None:
    lenient = profile is Profile.LENIENT
    for avp in avps:
        definition = dictionary.avp(avp.code, avp.vendor)
        mandatory = avp.flags & AVP_FLAG_MANDATORY
        if definition is None:
            if mandatory:
                raise AvpUnsupported(
                    f"AVP {avp.code} (vendor {avp.vendor}) is unknown and has the M bit",
                    failed_avps=(avp,),
                    request=message,
                )
            continue
        rule = definition.m_bit
        if (rule is MBitRule.MUST and not mandatory) or (rule is MBitRule.MUST_NOT and mandatory):
            fault = f"{definition.name} has the M bit {'set' if mandatory else 'clear'}"
            if not lenient:
                raise InvalidAvpBits(fault, failed_avps=(avp,), request=message)
            deviations.append(fault)
        try:
            _check_value(avp, definition.type, definition.name, limits)
        except DiameterError as error:
            error.request = message
            raise
        if definition.type is AvpType.GROUPED:
            _check_avps(avp.children(limits), dictionary, profile, limits, deviations, message)


def _check_value(avp: Avp, avp_type: AvpType, name: str, limits: CodecLimits) -> None:
    """Size of fixed types (5014), UTF-8 of text (5004), Address form, Grouped framing."""
    size = FIXED_SIZE_BYTES.get(avp_type)
    if size is not None:
        if len(avp.data) != size:
            raise InvalidAvpLength(
                f"{name} holds {len(avp.data)} bytes, needs {size}", failed_avps=(avp,)
            )
    elif avp_type is AvpType.GROUPED:
        avp.children(limits)
    elif avp_type in _TEXT_TYPES:
        avp.as_str()
    elif avp_type is AvpType.ADDRESS:
        avp.as_address()
