"""End-of-run verification against the ledger: what the simulator reported as used, what the
record streams say was charged, and how the balances moved must agree exactly, per tenant.

1. Before the run: each pool subscriber's money (balance + held + money buckets, held
   included, so a reservation is not a charge) and the tail id of each shard stream they use.
2. After the run: the records appended since those tails whose session belongs to the run
   (Session-Id prefix, plus the SIP calls' ledger sessions).
3. Per tenant and service: units the simulator counted as committed == units of the run's
   usage/debit records; per tenant: the records' retail == the money the run's subscribers
   lost (less what product and top-up records moved meanwhile: renewal fees, add-ons,
   top-ups); and no operation id is charged twice (injected duplicates and retransmissions must be
   answered from the stored outcome). Expiry records (abandoned sessions) release holds and
   charge nothing, so they are counted but not compared.

Requests left unanswered make a tenant's totals unverifiable: reported, and a FAIL.

With a usage store (``store_url``) step 2 reads the run's records from the store once the
exporter has stored and trimmed them (``sim/verify_store.py``); the streams must be empty up to
where the run left them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from balance import keys
from balance.errors import UnknownAccount
from balance.ledger import Ledger, RedisClient
from balance.records import Account, BucketUnit, LedgerRecord
from sim.population import SimSubscriber
from sim.stats import RunStats
from sim.verify_store import (
    EXPORT_WAIT_S_DEFAULT,
    StoreCheck,
    store_records,
    wait_until_exported,
)

CHARGE_KINDS = frozenset({"usage", "debit"})
OUTSIDE_KINDS = frozenset({"bucket", "topup"})  # money moved by products and top-ups
QUERY_CONCURRENCY = 64
XRANGE_COUNT = 5_000
_RECORD = msgspec.msgpack.Decoder(LedgerRecord)
# The simulator's session kinds as the ledger's services (a SIP call is charged as voice).
RECORD_SERVICE = {"data": "data", "voice": "voice", "sms": "sms", "sip": "voice"}


def account_money(account: Account) -> int:
    """Money the subscriber owns, wherever it sits (available, held, money buckets)."""
    total = account.balance + account.held_money
    for bucket in account.buckets:
        if bucket.unit == BucketUnit.MONEY.value:
            total += bucket.remaining + bucket.held
    return total


class LedgerSnapshot(msgspec.Struct):
    money: dict[str, int]  # "tenant/msisdn" -> micro-units
    tails: dict[str, str]  # stream key -> last entry id before the run
    taken_at_s: float = 0.0  # wall clock, the start of the run's window in the store


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _sub_key(tenant: str, msisdn: str) -> str:
    return f"{tenant}/{msisdn}"


async def _money_of(client: RedisClient, subscribers: Sequence[SimSubscriber]) -> dict[str, int]:
    ledgers: dict[str, Ledger] = {}
    out: dict[str, int] = {}
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def one(sub: SimSubscriber) -> None:
        ledger = ledgers.get(sub.tenant)
        if ledger is None:
            ledger = ledgers[sub.tenant] = Ledger(client, sub.tenant)
        async with gate:
            try:
                account = await ledger.query(sub.msisdn)
            except UnknownAccount:
                return
        out[_sub_key(sub.tenant, sub.msisdn)] = account_money(account)

    await asyncio.gather(*(one(s) for s in subscribers))
    return out


def _streams(subscribers: Iterable[SimSubscriber]) -> set[str]:
    return {keys.stream_key(keys.subscriber_prefix(s.tenant, s.msisdn)) for s in subscribers}


async def snapshot(client: RedisClient, subscribers: Sequence[SimSubscriber]) -> LedgerSnapshot:
    tails: dict[str, str] = {}
    for stream in _streams(subscribers):
        last: Any = await client.xrevrange(stream, count=1)
        tails[stream] = _text(last[0][0]) if last else "0-0"
    return LedgerSnapshot(await _money_of(client, subscribers), tails, time.time())


async def records_since(client: RedisClient, tails: dict[str, str]) -> list[LedgerRecord]:
    out: list[LedgerRecord] = []
    for stream, tail in tails.items():
        start = f"({tail}"
        while True:
            batch: Any = await client.xrange(stream, min=start, max="+", count=XRANGE_COUNT)
            for entry_id, fields in batch:
                payload = (fields or {}).get(b"r")
                if payload is not None:
                    out.append(_RECORD.decode(payload))
                start = f"({_text(entry_id)}"
            if len(batch) < XRANGE_COUNT:
                break
    return out


class TenantCheck(msgspec.Struct):
    tenant: str
    sim_used: dict[str, int]
    sim_uncertain: dict[str, int]
    record_units: dict[str, int]
    record_retail: int
    balance_decrease: int
    charge_records: int
    expiry_records: int
    duplicate_charges: int
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems


class Verification(msgspec.Struct):
    tenants: list[TenantCheck]
    problems: list[str]
    store: StoreCheck | None = None

    @property
    def passed(self) -> bool:
        store_ok = self.store is None or not self.store.problems
        return not self.problems and store_ok and all(t.passed for t in self.tenants)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "problems": self.problems,
            "tenants": [{**msgspec.to_builtins(t), "passed": t.passed} for t in self.tenants],
            "store": msgspec.to_builtins(self.store) if self.store is not None else None,
        }


def compare(
    stats: RunStats,
    before: LedgerSnapshot,
    after_money: dict[str, int],
    records: Sequence[LedgerRecord],
    session_prefix: str,
) -> Verification:
    """The pure comparison (the I/O is in :func:`verify_run`)."""
    extra = stats.extra_sessions
    ours = [r for r in records if r.session_id.startswith(session_prefix) or r.session_id in extra]
    tenants = sorted(set(stats.tenants) | {r.tenant for r in ours})
    checks: list[TenantCheck] = []
    for tenant in tenants:
        totals = stats.tenants.get(tenant)
        sim_used: dict[str, int] = {}
        sim_uncertain: dict[str, int] = {}
        if totals is not None:
            for service, units in totals.used.items():
                key = RECORD_SERVICE.get(service, service)
                sim_used[key] = sim_used.get(key, 0) + units
            for service, units in totals.uncertain.items():
                key = RECORD_SERVICE.get(service, service)
                sim_uncertain[key] = sim_uncertain.get(key, 0) + units
        charges = [r for r in ours if r.tenant == tenant and r.kind in CHARGE_KINDS]
        record_units: dict[str, int] = {}
        for record in charges:
            record_units[record.service] = record_units.get(record.service, 0) + record.units
        retail = sum(r.retail for r in charges)
        seen: set[str] = set()
        duplicates = 0
        for record in charges:
            identity = f"{record.op_id}/{record.rating_group}"
            if identity in seen:
                duplicates += 1
            seen.add(identity)
        decrease = 0
        for key, money in before.money.items():
            if key.startswith(f"{tenant}/"):
                decrease += money - after_money.get(key, money)
        problems: list[str] = []
        if sim_uncertain:
            problems.append(f"unverifiable: requests left unanswered reported {sim_uncertain}")
        for service in sorted(set(sim_used) | set(record_units)):
            reported, recorded = sim_used.get(service, 0), record_units.get(service, 0)
            if reported + sim_uncertain.get(service, 0) < recorded or (
                not sim_uncertain and reported != recorded
            ):
                problems.append(f"{service}: simulator reported {reported} units used, "
                                f"usage records say {recorded}")  # fmt: skip
        # Money a product or a top-up moved while the run was on (a plan renewal's or an
        # add-on's fee: ``bucket`` records; top-ups) is not usage: taken out of the decrease.
        # Adjustments are not excused: money taken any other way is a charging error.
        outside = sum(
            r.money_delta
            for r in records
            if r.tenant == tenant
            and r.kind in OUTSIDE_KINDS
            and not r.session_id
            and _sub_key(r.tenant, r.subscriber) in before.money
        )
        decrease += outside
        if retail != decrease:
            problems.append(
                f"usage records charge {retail} micro-units, balances fell by {decrease}"
            )
        if duplicates:
            problems.append(f"{duplicates} operations charged more than once")
        checks.append(
            TenantCheck(
                tenant, sim_used, sim_uncertain, record_units, retail, decrease, len(charges),
                sum(1 for r in ours if r.tenant == tenant and r.kind == "expiry"), duplicates,
                problems,
            )
        )  # fmt: skip
    run_problems: list[str] = []
    if not ours and stats.tenants:
        run_problems.append("no ledger records carry the run's session prefix")
    return Verification(checks, run_problems)


async def verify_run(
    client: RedisClient,
    stats: RunStats,
    before: LedgerSnapshot,
    subscribers: Sequence[SimSubscriber],
    session_prefix: str,
    *,
    store_url: str | None = None,
    export_wait_s: float = EXPORT_WAIT_S_DEFAULT,
) -> Verification:
    after_money = await _money_of(client, subscribers)
    if store_url is None:
        records = await records_since(client, before.tails)
        return compare(stats, before, after_money, records, session_prefix)
    trimmed, left, waited = await wait_until_exported(client, _streams(subscribers), export_wait_s)
    tenants = set(stats.tenants) | {s.tenant for s in subscribers}
    records = await store_records(store_url, tenants, before.taken_at_s, time.time())
    result = compare(stats, before, after_money, records, session_prefix)
    problems = []
    if not trimmed:
        problems.append(
            f"{left} streams still hold records of the run after {waited:.0f} s: is `ocs "
            "export` running against this store?"
        )
    ours = [r for r in records if r.session_id.startswith(session_prefix)]
    result.store = StoreCheck(round(waited, 3), trimmed, left, len(ours), problems)
    return result
