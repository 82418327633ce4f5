"""The balance ledger: Redis key layout, Lua scripts, async ledger API, CDR streams.

The names below are the API the charging service codes against.
"""

from balance.errors import (
    AccountBlocked,
    AccountExists,
    InsufficientCredit,
    InvalidRequest,
    LedgerError,
    LedgerUnavailable,
    LimitExceeded,
    OperationConflict,
    Outcome,
    UnknownAccount,
)
from balance.ledger import ExpiredReservation, Ledger, new_op_id
from balance.records import (
    Account,
    BucketUnit,
    CcrResult,
    DebitResult,
    LedgerRecord,
    OnExhaust,
    OpResult,
    RatingGroupRequest,
    RatingGroupResult,
    StreamRecord,
    UsedLeg,
)
from balance.streams import RecordReader
from balance.tenants import provision_tenant, tenant_password

__all__ = [
    "Account",
    "AccountBlocked",
    "AccountExists",
    "BucketUnit",
    "CcrResult",
    "DebitResult",
    "ExpiredReservation",
    "InsufficientCredit",
    "InvalidRequest",
    "Ledger",
    "LedgerError",
    "LedgerRecord",
    "LedgerUnavailable",
    "LimitExceeded",
    "OnExhaust",
    "OpResult",
    "OperationConflict",
    "Outcome",
    "RatingGroupRequest",
    "RatingGroupResult",
    "RecordReader",
    "StreamRecord",
    "UnknownAccount",
    "UsedLeg",
    "new_op_id",
    "provision_tenant",
    "tenant_password",
]
