"""Diameter errors that carry their wire code.

Every error a request can provoke is one of these classes: each names its Result-Code, and
carries the Failed-AVP content and an Error-Message. :func:`diameter_apps.answers.answer_for_error`
is the one place that turns any of them into the answer for a request. The E bit is implied by
the Result-Code (3xxx protocol errors set it, RFC 6733 §7.1.3).

``request`` is the request as far as it could be decoded (at least the header), so that an
answer can echo its identifiers even when decoding failed half-way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

from diameter_apps.codes import ResultCode

# The codec raises these errors, so this module names what it keeps of AVPs and messages by
# protocols rather than importing the codec's classes.


class FailedAvp(Protocol):
    """What an error keeps of an offending AVP (a :class:`diameter_apps.avp.Avp`): where it
    sits and its wire form, which the answer echoes in Failed-AVP."""

    @property
    def code(self) -> int: ...

    @property
    def depth(self) -> int: ...

    def encode(self) -> bytes: ...


class RequestHeader(Protocol):
    """What an error keeps of the request it answers (a :class:`diameter_apps.message.Message`
    decoded as far as it could be)."""

    @property
    def command_code(self) -> int: ...

    @property
    def is_request(self) -> bool: ...


class DiameterError(Exception):
    """Base of every error with a Result-Code."""

    result_code: ClassVar[ResultCode] = ResultCode.UNABLE_TO_COMPLY
    # True when the answer says "not now" rather than what became of the request (3002, 3004):
    # it is never replayed to a retransmission (see ``DuplicateCache.release``).
    transient: ClassVar[bool] = False

    def __init__(
        self,
        error_message: str,
        *,
        failed_avps: Sequence[FailedAvp] = (),
        request: RequestHeader | None = None,
    ) -> None:
        super().__init__(error_message)
        self.error_message = error_message
        self.failed_avps: tuple[FailedAvp, ...] = tuple(failed_avps)
        self.request: RequestHeader | None = request

    @property
    def e_bit(self) -> bool:
        """Protocol errors (3xxx) are answered with the E bit set."""
        return 3000 <= self.result_code < 4000

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self.result_code)}, {self.error_message!r})"


class FramingError(DiameterError):
    """The byte stream cannot be framed: the connection must be closed without an answer."""

    result_code = ResultCode.INVALID_MESSAGE_LENGTH


# --- 3xxx: protocol errors (E bit) -------------------------------------------------------


class CommandUnsupported(DiameterError):
    result_code = ResultCode.COMMAND_UNSUPPORTED


class UnableToDeliver(DiameterError):
    result_code = ResultCode.UNABLE_TO_DELIVER


class RealmNotServed(DiameterError):
    result_code = ResultCode.REALM_NOT_SERVED


class TooBusy(DiameterError):
    result_code = ResultCode.TOO_BUSY
    transient = True


class LoopDetected(DiameterError):
    result_code = ResultCode.LOOP_DETECTED


class ApplicationUnsupported(DiameterError):
    result_code = ResultCode.APPLICATION_UNSUPPORTED


class InvalidHeaderBits(DiameterError):
    result_code = ResultCode.INVALID_HDR_BITS


class InvalidAvpBits(DiameterError):
    result_code = ResultCode.INVALID_AVP_BITS


class UnknownPeer(DiameterError):
    result_code = ResultCode.UNKNOWN_PEER


# --- 5xxx: permanent failures (Failed-AVP) -----------------------------------------------


class AvpUnsupported(DiameterError):
    """An AVP with the M bit that we do not know (5001)."""

    result_code = ResultCode.AVP_UNSUPPORTED


class UnknownSessionId(DiameterError):
    result_code = ResultCode.UNKNOWN_SESSION_ID


class InvalidAvpValue(DiameterError):
    result_code = ResultCode.INVALID_AVP_VALUE


class MissingAvp(DiameterError):
    result_code = ResultCode.MISSING_AVP


class AvpOccursTooManyTimes(DiameterError):
    result_code = ResultCode.AVP_OCCURS_TOO_MANY_TIMES


class NoCommonApplication(DiameterError):
    result_code = ResultCode.NO_COMMON_APPLICATION


class UnsupportedVersion(DiameterError):
    result_code = ResultCode.UNSUPPORTED_VERSION


class UnableToComply(DiameterError):
    result_code = ResultCode.UNABLE_TO_COMPLY


class InvalidAvpLength(DiameterError):
    result_code = ResultCode.INVALID_AVP_LENGTH


class InvalidMessageLength(DiameterError):
    result_code = ResultCode.INVALID_MESSAGE_LENGTH


class PeerStateError(Exception):
    """An undefined (state, input) pair reached the peer transition table: a bug, not input."""
