"""What the ledger sends to its scripts and reads back: msgpack payloads, the CCR body, the
content digests that tell a replay from a reused operation id, and the reply decoders.

Pure functions over bytes and structs (no Redis): ``balance.ledger`` builds each operation's
keys and payload with them, ``balance.script_calls`` carries them to Redis.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from balance.errors import InvalidRequest, LedgerError, LedgerUnavailable, error_from_reply
from balance.records import (
    Account,
    AccountSummary,
    CcrPayload,
    CcrResult,
    DebitManyPayload,
    DebitPayload,
    OfflineItem,
    OfflinePayload,
    OfflineResult,
    OnExhaust,
    PriceTuple,
    RatingGroupRequest,
    RecordContext,
    RefundResult,
    UsedLeg,
    price_tuple,
)
from balance.scripts import ScriptSet
from tariffs.price import Price

ENCODER = msgspec.msgpack.Encoder()
CCR_DECODER = msgspec.msgpack.Decoder(CcrPayload)
SUMMARY_DECODER = msgspec.msgpack.Decoder(AccountSummary)
DEBIT_DECODER = msgspec.msgpack.Decoder(DebitPayload)
DEBIT_MANY_DECODER = msgspec.msgpack.Decoder(DebitManyPayload)
REFUND_DECODER = msgspec.msgpack.Decoder(RefundResult)
ACCOUNT_DECODER = msgspec.msgpack.Decoder(Account)
OFFLINE_DECODER = msgspec.msgpack.Decoder(OfflinePayload)
EXPIRED_DECODER = msgspec.msgpack.Decoder(list[tuple[str, str, int, int, int]])

SCRIPTS = ScriptSet.load()
# Read per item from a module constant: an Enum member read through its class costs a
# Python-level __getattr__ slot on CPython 3.11.
_PAYG = OnExhaust.PAYG

Context = RecordContext | bytes | None
"""A record context for the records an operation writes: the struct, or its msgpack bytes
(encode once with ``encode_context`` and reuse, e.g. for every CCR of a session)."""


class ExpiredReservation(msgspec.Struct, frozen=True):
    vshard: int
    subscriber: str
    session_id: str
    rating_group: int
    units_released: int
    money_released: int


def encode_context(context: RecordContext) -> bytes:
    """The context's msgpack array, as the scripts copy it onto their records."""
    return ENCODER.encode(context)


def script_args(encoded: bytes, context: Context) -> list[bytes | str | int]:
    """ARGV of a record-writing script: the request, then the context if there is one. The
    context travels apart from the request and its digest, so it never makes a retransmission
    look different."""
    if context is None:
        return [encoded]
    if isinstance(context, RecordContext):
        context = ENCODER.encode(context)
    return [encoded, context]


def legs_wire(legs: Sequence[UsedLeg]) -> list[Any]:
    for leg in legs:
        if leg.units < 0:
            raise InvalidRequest(f"leg {leg.leg_key!r}: units must not be negative")
    return [[leg.leg_key, leg.units, price_tuple(leg.price)] for leg in legs]


def ccr_body(items: Sequence[RatingGroupRequest]) -> tuple[list[Any], list[float]]:
    """``{items, prices}`` as ccr.lua reads it: each distinct price once, referred to by its
    1-based position (a CCR's legs and re-reservations usually share one or two prices, and
    the script then decodes and checks each price once). Prices are told apart by value (a
    ``Price`` hashes its fields), and turned into the scripts' array once each. With it, from
    the same pass, the items' deadlines (sent apart from the digested body)."""
    prices: list[PriceTuple] = []
    index: dict[Price, int] = {}
    encoded = []
    deadlines = []
    for item in items:
        deadlines.append(float(item.valid_until_s))
        legs = []
        for leg in item.used:
            if leg.units < 0:
                raise InvalidRequest(f"leg {leg.leg_key!r}: units must not be negative")
            price = leg.price
            found = index.get(price)
            if found is None:
                prices.append(price_tuple(price))
                found = index[price] = len(prices)
            legs.append([leg.leg_key, leg.units, found])
        reserve = item.reserve_price
        if reserve is None:
            reserve_ref = 0
        else:
            found = index.get(reserve)
            if found is None:
                prices.append(price_tuple(reserve))
                found = index[reserve] = len(prices)
            reserve_ref = found
        # The kinds go as the tuples they are: msgpack has one array type, a tuple is encoded
        # byte for byte as the list it would be copied into.
        row = [
            item.rating_group,
            item.service,
            legs,
            item.requested_units,
            item.default_units,
            item.kinds,
            1 if item.on_exhaust is _PAYG else 0,
            1 if item.terminate else 0,
            item.reserve_leg_key,
            reserve_ref,
        ]
        if item.block_kinds:
            row.append(item.block_kinds)
        encoded.append(row)
    return [encoded, prices], deadlines


def content_digest(*parts: Any) -> str:
    """A digest of an operation's content, to tell a replay from a reused id."""
    return hashlib.blake2b(ENCODER.encode(parts), digest_size=16).hexdigest()


def new_op_id() -> str:
    return uuid.uuid4().hex


def ccr_result(reply: Any) -> CcrResult:
    replayed, raw = reply
    decoded = CCR_DECODER.decode(raw)
    return CcrResult(decoded.items, decoded.balance, decoded.held_money, bool(replayed), raw)


def offline_result(reply: Any) -> OfflineResult:
    replayed, raw = reply
    return OfflineResult(OFFLINE_DECODER.decode(raw), bool(replayed))


def offline_args(
    tenant: str, ttl_s: int, balance_below: Any, item: OfflineItem, now_s: float
) -> list[bytes | str | int]:
    """offline.lua's ARGV for one record: the request, then the context (ARGV[2], copied onto
    the record byte for byte). The digest leaves the context out: the same record found again
    in another file (another file:line) is a replay, not a conflict."""
    if not item.legs:
        raise InvalidRequest("offline usage needs at least one leg")
    fields = [
        item.service,
        item.rating_group,
        legs_wire(item.legs),
        list(item.kinds),
        1 if item.on_exhaust is _PAYG else 0,
        list(item.block_kinds),
    ]
    digest = content_digest("offline", item.subscriber, item.usage_at_s, *fields)
    payload = [
        item.op_id, digest, tenant, item.subscriber, now_s, ttl_s, *fields, item.usage_at_s,
        balance_below,  # configuration, outside the digest
    ]  # fmt: skip
    return [ENCODER.encode(payload), ENCODER.encode(item.context)]


def offline_many_result(reply: Any) -> list[OfflineResult | LedgerError]:
    """offline_many.lua's reply: each record's result, or the error that refused it alone."""
    out: list[OfflineResult | LedgerError] = []
    for status, raw in reply:
        if status == 2:
            message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            error = error_from_reply(message)
            out.append(error if error is not None else LedgerUnavailable(message))
        else:
            out.append(OfflineResult(OFFLINE_DECODER.decode(raw), bool(status)))
    return out
