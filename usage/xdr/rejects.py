"""Why a line was not charged: one stable code per reason, with a human detail.

Codes are written to the rejects file and counted in the summary; an operator greps them.
"""

from __future__ import annotations

from enum import Enum


class Reason(Enum):
    UNPARSEABLE = "unparseable"  # the line or one of its fields cannot be read
    UNKNOWN_SUBSCRIBER = "unknown_subscriber"  # no tenant range or entry holds the IMSI/MSISDN
    UNKNOWN_ACCOUNT = "unknown_account"  # in the catalog, but the ledger has no account
    UNKNOWN_SERVICE = "unknown_service"  # the service value is not in the map / tenant
    NO_RATE = "no_rate"  # the start time is outside every rate card, or no row prices it
    NEGATIVE_QUANTITY = "negative_quantity"
    DUPLICATE_ID = "duplicate_id"  # the record id was seen earlier in the same file


class Rejected(Exception):
    """A line that cannot be charged; the import writes it to the rejects file and goes on."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
