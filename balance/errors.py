"""Ledger outcomes and errors, each carrying the Diameter Result-Code the wire layer sends.

Per-rating-group outcomes of a credit-control request are values (``Outcome``); failures of a
whole operation are exceptions raised from the script's ``OCS_<CODE>`` error prefix through the
one table ``ERROR_BY_PREFIX``.
"""

from __future__ import annotations

from enum import IntEnum

# Diameter Result-Codes (RFC 6733 / RFC 4006).
DIAMETER_SUCCESS = 2001
DIAMETER_END_USER_SERVICE_DENIED = 4010
DIAMETER_CREDIT_LIMIT_REACHED = 4012
DIAMETER_UNKNOWN_SESSION_ID = 5002
DIAMETER_INVALID_AVP_VALUE = 5004
DIAMETER_RESOURCES_EXCEEDED = 5006
DIAMETER_UNABLE_TO_COMPLY = 5012
DIAMETER_USER_UNKNOWN = 5030


class Outcome(IntEnum):
    """Per rating group; ordered by severity so ``max()`` of several is the request's worst."""

    OK = 0
    CREDIT_LIMIT_REACHED = 1
    END_USER_SERVICE_DENIED = 2
    UNKNOWN_ACCOUNT = 3

    @property
    def result_code(self) -> int:
        return OUTCOME_RESULT_CODES[self]


OUTCOME_RESULT_CODES = (
    DIAMETER_SUCCESS,
    DIAMETER_CREDIT_LIMIT_REACHED,
    DIAMETER_END_USER_SERVICE_DENIED,
    DIAMETER_USER_UNKNOWN,
)
"""Each ``Outcome``'s Result-Code, indexed by the outcome (an int: a tuple index runs in C,
where a dict keyed by an enum member hashes it through Enum's Python-level ``__hash__``)."""


class LedgerError(Exception):
    """Base of ledger failures; ``result_code`` is what a Diameter answer should carry."""

    result_code = DIAMETER_UNABLE_TO_COMPLY


class InvalidRequest(LedgerError):
    """Arguments the ledger refuses (negative units, bad price, bad id)."""

    result_code = DIAMETER_INVALID_AVP_VALUE


class OperationConflict(LedgerError):
    """The operation id was already used with different content (``exists_with_different_*``)."""

    result_code = DIAMETER_UNABLE_TO_COMPLY


class LegacyDigestFound(OperationConflict):
    """The operation id is stored with a digest of an earlier release's format (BLAKE2b hex)
    and the request came with the current CCR digest ('x' + XXH3 hex): a retransmission across
    the upgrade or a conflict, which only the caller can tell, by calling once more with the
    earlier format's digest. A caller that does not is left with the conflict it subclasses."""


class UnknownAccount(LedgerError):
    result_code = DIAMETER_USER_UNKNOWN


class AccountExists(LedgerError):
    """Provisioning an account (or a bucket id) that already exists."""

    result_code = DIAMETER_UNABLE_TO_COMPLY


class InsufficientCredit(LedgerError):
    result_code = DIAMETER_CREDIT_LIMIT_REACHED


class AccountBlocked(LedgerError):
    result_code = DIAMETER_END_USER_SERVICE_DENIED


class LimitExceeded(LedgerError):
    """A per-account bound (sessions, buckets) would be exceeded."""

    result_code = DIAMETER_RESOURCES_EXCEEDED


class UnknownSession(LedgerError):
    """An UPDATE/TERMINATION for a session the ledger has no open record of."""

    result_code = DIAMETER_UNKNOWN_SESSION_ID


class SessionAlreadyOpen(LedgerError):
    """An INITIAL reusing the id of a session that is still open."""

    result_code = DIAMETER_INVALID_AVP_VALUE


class RequestOutOfOrder(LedgerError):
    """A request number that does not grow within its session (and is not a replay)."""

    result_code = DIAMETER_INVALID_AVP_VALUE


class NoRefundableDebit(LedgerError):
    """A refund names no debit of this subscriber within the idempotency window, or one that
    was refunded in full already."""

    result_code = DIAMETER_UNKNOWN_SESSION_ID


class LedgerUnavailable(LedgerError):
    """Redis could not be reached or answered with something other than a ledger error."""

    result_code = DIAMETER_UNABLE_TO_COMPLY


class LedgerOverloaded(LedgerUnavailable):
    """Refused before reaching Redis: too many calls were already waiting for it."""


# The one table from script error prefix to exception.
ERROR_BY_PREFIX: dict[str, type[LedgerError]] = {
    "OCS_BADARG": InvalidRequest,
    "OCS_CONFLICT": OperationConflict,
    "OCS_LEGACY_DIGEST": LegacyDigestFound,
    "OCS_UNKNOWN_ACCOUNT": UnknownAccount,
    "OCS_EXISTS": AccountExists,
    "OCS_INSUFFICIENT": InsufficientCredit,
    "OCS_BLOCKED": AccountBlocked,
    "OCS_LIMIT": LimitExceeded,
    "OCS_NO_SESSION": UnknownSession,
    "OCS_SESSION_OPEN": SessionAlreadyOpen,
    "OCS_OUT_OF_ORDER": RequestOutOfOrder,
    "OCS_NO_DEBIT": NoRefundableDebit,
}


def error_from_reply(message: str) -> LedgerError | None:
    """The typed exception for a script error reply, or None if it is not one of ours.

    Redis may put its own text before ours (``ERR user_script:1: ...``), so look for the prefix.
    """
    for prefix, error_class in ERROR_BY_PREFIX.items():
        index = message.find(prefix + " ")
        if index >= 0:
            text = message[index + len(prefix) + 1 :]
            return error_class(text.split(" script:")[0].strip())
    return None
