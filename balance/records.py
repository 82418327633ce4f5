"""The shapes exchanged with the Lua scripts (msgpack arrays, positions fixed by the scripts'
headers) and the typed results the ledger API returns."""

from __future__ import annotations

from enum import Enum

import msgspec

from balance.errors import Outcome
from tariffs.price import Price

PriceTuple = tuple[int, int, int, int, int, int, int, int]


def price_tuple(price: Price) -> PriceTuple:
    """A Price as the 8-number array the scripts read."""
    return (
        price.price_num,
        price.price_den,
        price.cost_num,
        price.cost_den,
        price.first_units,
        price.step_units,
        price.connect_fee,
        price.min_charge,
    )


class OnExhaust(Enum):
    """What happens when the eligible buckets are empty: pay from money, or stop granting."""

    PAYG = "payg"
    BLOCK = "block"


class AccountState(Enum):
    """``state_code`` 0-3 in that order. PROVISIONING: held (no grants) until the host MNO
    confirms a new or changed subscriber; DELETED: kept for its records only."""

    ACTIVE = "active"
    BLOCKED = "blocked"
    PROVISIONING = "provisioning"
    DELETED = "deleted"


def account_state(code: int) -> AccountState:
    """The state a stored ``state_code`` stands for (an unknown code reads as blocked: it
    grants nothing, as the scripts treat every state but 0)."""
    states = (
        AccountState.ACTIVE,
        AccountState.BLOCKED,
        AccountState.PROVISIONING,
        AccountState.DELETED,
    )
    return states[code] if 0 <= code < len(states) else AccountState.BLOCKED


class BucketUnit(Enum):
    BYTES = "bytes"
    SECONDS = "seconds"
    EVENTS = "events"
    MONEY = "money"


REQUEST_DEFAULT_UNITS = -1  # requested_units value meaning "grant the caller's default_units"


class UsedLeg(msgspec.Struct, frozen=True):
    """Units used under one price leg (several when a tariff boundary was crossed)."""

    leg_key: str
    units: int
    price: Price


class RatingGroupRequest(msgspec.Struct, frozen=True):
    """One MSCC of a credit-control request, as rating prepared it.

    ``kinds`` are the bucket kinds that may pay, in order (rating has applied scope);
    ``reserve_price`` prices the re-reservation under ``reserve_leg_key`` (None: buckets only).
    ``requested_units`` 0 = commit/release only, -1 = ``default_units``.
    """

    rating_group: int
    service: str
    kinds: tuple[str, ...] = ()
    used: tuple[UsedLeg, ...] = ()
    requested_units: int = 0
    default_units: int = 0
    on_exhaust: OnExhaust = OnExhaust.PAYG
    reserve_leg_key: str = ""
    reserve_price: Price | None = None
    valid_until_s: float = 0.0
    terminate: bool = False
    block_kinds: tuple[str, ...] = ()
    """With ``on_exhaust`` BLOCK: only a live bucket of one of these kinds stops money (empty:
    BLOCK always stops money)."""


class RatingGroupResult(msgspec.Struct, frozen=True, array_like=True):
    rating_group: int
    outcome: Outcome
    granted_units: int
    final: bool
    used_units: int
    bucket_units: int
    retail: int
    wholesale: int
    leakage_units: int
    leakage_money: int
    valid_until_s: float


class CcrPayload(msgspec.Struct, frozen=True, array_like=True):
    items: tuple[RatingGroupResult, ...]
    balance: int
    held_money: int


class CcrResult(msgspec.Struct, frozen=True):
    """What one credit-control call did; ``replayed`` when the op id had been applied before."""

    items: tuple[RatingGroupResult, ...]
    balance: int
    held_money: int
    replayed: bool
    raw: bytes  # the stored result, byte-identical on replay


class AccountSummary(msgspec.Struct, frozen=True, array_like=True):
    balance: int
    held_money: int
    state_code: int
    credit_limit: int

    @property
    def state(self) -> AccountState:
        return account_state(self.state_code)


class OpResult(msgspec.Struct, frozen=True):
    summary: AccountSummary
    replayed: bool


class DebitPayload(msgspec.Struct, frozen=True, array_like=True):
    units: int
    bucket_units: int
    retail: int
    wholesale: int
    balance: int
    held_money: int


class DebitResult(msgspec.Struct, frozen=True):
    debit: DebitPayload
    replayed: bool


class DebitItem(msgspec.Struct, frozen=True):
    """One service of an event debited with others in one call (``Ledger.debit_many``)."""

    service: str
    rating_group: int
    legs: tuple[UsedLeg, ...]
    kinds: tuple[str, ...] = ()
    on_exhaust: OnExhaust = OnExhaust.PAYG
    block_kinds: tuple[str, ...] = ()


class DebitItemResult(msgspec.Struct, frozen=True, array_like=True):
    """``status`` 0 debited, 1 not enough credit (nothing was taken for this item)."""

    status: int
    units: int
    bucket_units: int
    retail: int
    wholesale: int

    @property
    def debited(self) -> bool:
        return self.status == 0


class DebitManyPayload(msgspec.Struct, frozen=True, array_like=True):
    items: tuple[DebitItemResult, ...]
    balance: int
    held_money: int


class DebitManyResult(msgspec.Struct, frozen=True):
    debit: DebitManyPayload
    replayed: bool


class OfflinePayload(msgspec.Struct, frozen=True, array_like=True):
    """What offline.lua did with one consumed usage record (``units`` = bundles + money +
    leakage units; ``retail`` is what money paid, ``leakage_money`` what it could not)."""

    units: int
    bucket_units: int
    retail: int
    wholesale: int
    leakage_units: int
    leakage_money: int
    balance: int


class OfflineResult(msgspec.Struct, frozen=True):
    charge: OfflinePayload
    replayed: bool


class OfflineItem(msgspec.Struct, frozen=True):
    """One offline record for ``Ledger.offline_usage_many`` (the arguments of
    ``offline_usage``)."""

    subscriber: str
    op_id: str
    service: str
    rating_group: int
    legs: tuple[UsedLeg, ...]
    kinds: tuple[str, ...]
    on_exhaust: OnExhaust
    block_kinds: tuple[str, ...]
    context: RecordContext
    usage_at_s: float


class RefundResult(msgspec.Struct, frozen=True, array_like=True):
    """What a REFUND_ACCOUNT gave back of its debit (refund_debit.lua)."""

    units: int
    money: int
    balance: int
    held_money: int
    replayed: bool = False


class Bucket(msgspec.Struct, frozen=True, array_like=True):
    id: str
    kind: str
    unit: str
    remaining: int
    priority: int
    expires_at_s: float
    held: int
    # As granted (0: granted before buckets kept their size; no percent notification).
    size: int = 0

    def live(self, now_s: float) -> bool:
        return self.expires_at_s == 0 or now_s < self.expires_at_s


class Hold(msgspec.Struct, frozen=True, array_like=True):
    bucket_id: str  # "" = the monetary balance
    amount: int
    is_money: int


class LegState(msgspec.Struct, frozen=True, array_like=True):
    leg_key: str
    money_units: int
    all_units: int


class RatingGroupState(msgspec.Struct, frozen=True, array_like=True):
    rating_group: int
    holds: tuple[Hold, ...]
    legs: tuple[LegState, ...]
    valid_until_s: float
    granted_units: int


class SessionState(msgspec.Struct, frozen=True, array_like=True):
    session_id: str
    last_seen_s: float
    rating_groups: tuple[RatingGroupState, ...]
    last_request_number: int = -1


class Account(msgspec.Struct, frozen=True, array_like=True):
    """The stored account, decoded (read-only view for queries and tests)."""

    version: int
    state_code: int
    balance: int
    credit_limit: int
    held_money: int
    buckets: tuple[Bucket, ...]
    sessions: tuple[SessionState, ...]
    next_deadline_s: float

    @property
    def state(self) -> AccountState:
        return account_state(self.state_code)


class DrawnBucket(msgspec.Struct, frozen=True, array_like=True):
    bucket_id: str
    units: int


class LegCharge(msgspec.Struct, frozen=True, array_like=True):
    leg_key: str
    units: int
    retail: int
    wholesale: int
    money_units: int


class RecordContext(msgspec.Struct, frozen=True, array_like=True):
    """What the caller knew of a charge beyond the ledger's own figures (who, where, which
    rate card), passed through the script untouched and written on the records it makes, so
    the usage store needs no join back to Redis. Lua never reads it: position 19 of a record.

    ``source``: gy, ro, sms, sip, offline, admin, sweep. Times are epoch seconds; numbers are
    E.164 digits; ``role_of_node`` -1 unknown, 0 originating, 1 terminating."""

    source: str = ""
    host_mno: str = ""
    msisdn: str = ""
    imsi: str = ""
    started_at_s: float = 0.0
    called: str = ""
    calling: str = ""
    visited_plmn: str = ""
    apn: str = ""
    charging_id: str = ""
    role_of_node: int = -1
    rate_card_version: str = ""
    currency: str = ""
    source_ref: str = ""
    # The subscriber's plan when the usage was rated ("" = none); appended last so records
    # written before plans existed decode with the default.
    plan: str = ""


class LedgerRecord(msgspec.Struct, frozen=True, array_like=True):
    """One entry of a shard's record stream. ``kind``: usage, debit, refund, expiry, topup,
    adjust, provision, bucket, expired, block, unblock, sim_swap, delete, activate.
    ``money_delta`` is the change of the monetary balance this record stands for (negative for
    charges)."""

    kind: str
    tenant: str
    subscriber: str
    session_id: str
    op_id: str
    service: str
    rating_group: int
    units: int
    retail: int
    wholesale: int
    buckets: tuple[DrawnBucket, ...]
    leakage_units: int
    leakage_money: int
    legs: tuple[LegCharge, ...]
    at_s: float
    balance_after: int
    reason: str
    money_delta: int
    context: RecordContext | None = None


class StreamRecord(msgspec.Struct, frozen=True):
    """A record as read from a stream, with what ``ack`` needs."""

    stream: str
    entry_id: str
    record: LedgerRecord
