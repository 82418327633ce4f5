"""Checks of a decoded request against the dictionary (RFC 6733 §7, DESIGN B8/B9).

Raises the :mod:`diameter_apps.errors` class whose Result-Code RFC 6733 names for the fault,
with the offending AVP(s) as Failed-AVP. Under :attr:`Profile.LENIENT` the deviations real peers
make (Kamailio's duplicated Origin-Host / Origin-Realm, python-diameter's missing M bit, an M bit
where it must not be) are accepted and returned as descriptions for the adapter to log.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from diameter_apps.codec import (
    Avp,
    AvpRule,
    Message,
    decode_checked,
)
from diameter_apps.codes import AVP_FLAG_MANDATORY, FLAG_ERROR, AvpCode
from diameter_apps.dictionary import (
    CommandDef,
    Dictionary,
)
from diameter_apps.errors import AvpOccursTooManyTimes, InvalidHeaderBits, MissingAvp
from diameter_apps.limits import CodecLimits


class Profile(Enum):
    STRICT = "strict"
    LENIENT = "lenient"


_TOLERATED_DUPLICATES = frozenset({(int(AvpCode.ORIGIN_HOST), 0), (int(AvpCode.ORIGIN_REALM), 0)})


def avp_rules(dictionary: Dictionary) -> Mapping[int, AvpRule]:
    """The dictionary compiled to the compact per-AVP rules the checking decoder reads."""
    return dictionary.avp_rules()


class RequestChecker:
    """Decodes and checks requests (RFC 6733 §7, DESIGN B8/B9) for one dictionary and profile.

    Cheap to build (the dictionary compiles its rules once); checking a CCR costs tens of µs.
    """

    __slots__ = ("_dictionary", "_limits", "_rules", "_strict")

    def __init__(self, dictionary: Dictionary, profile: Profile, limits: CodecLimits) -> None:
        self._dictionary = dictionary
        self._limits = limits
        self._rules = avp_rules(dictionary)
        self._strict = profile is Profile.STRICT

    def decode(self, data: bytes) -> tuple[Message, list[str]]:
        """A request from one frame, checked; returns it with the tolerated deviations.

        Raises the DiameterError of the first fault, its ``request`` set for the answer.
        """
        message, deviations = decode_checked(data, self._limits, self._rules, strict=self._strict)
        check_header_bits(message)
        command = self._dictionary.command(message.command_code)
        if command is not None:
            _check_occurrences(message, command, self._strict, deviations)
        if (
            message.avps
            and message.avps[0].code != AvpCode.SESSION_ID
            and message.find(AvpCode.SESSION_ID)
        ):
            deviations.append("Session-Id is not the first AVP")
        return message, deviations

    def check(self, message: Message) -> list[str]:
        """The same checks for a message built in memory (encodes it first)."""
        return self.decode(message.encode())[1]


def check_header_bits(message: Message) -> None:
    """A request with the E bit set is 3008 (RFC 6733 §3: E is only for answers)."""
    if message.flags & FLAG_ERROR:
        raise InvalidHeaderBits("the E bit is set in a request", request=message)


def _check_occurrences(
    message: Message, command: CommandDef, strict: bool, deviations: list[str]
) -> None:
    index = message.index()
    for key in command.request_required:
        if key not in index:
            code, vendor = key
            missing = Avp(code, AVP_FLAG_MANDATORY | (0x80 if vendor else 0), vendor, b"")
            raise MissingAvp(
                f"{command.name}-Request lacks required AVP {code}",
                failed_avps=(missing,),
                request=message,
            )
    for key in command.at_most_once:
        occurrences = index.get(key)
        if occurrences is not None and len(occurrences) > 1:
            if not strict and key in _TOLERATED_DUPLICATES:
                deviations.append(
                    f"AVP {key[0]} occurs {len(occurrences)} times; the first is used"
                )
                continue
            repeats = occurrences[1:]
            raise AvpOccursTooManyTimes(
                f"AVP {key[0]} may occur once in {command.name}-Request",
                failed_avps=repeats[:1],
                request=message,
            )
