"""Hypothesis state machine over reserve / commit / release / expire / top-up / replay, checking
the ledger's accounting invariants after every step (DESIGN.md §4)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from balance import keys
from balance.ledger import Ledger
from balance.records import BucketUnit, CcrResult, LedgerRecord, RatingGroupRequest
from balance.streams import RecordReader
from tests.balance.scenarios import NOW, rg

SUB = "4917099000042"
INITIAL_MONEY = 2_000
BUCKET_UNITS = 500
BUCKET_EXPIRES_S = NOW + 400
KIND = "bundle.data"


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = aioredis.Redis.from_url(url)
        self.ledger = Ledger(self.client, "acme")
        self.reader = RecordReader(self.client, "acme", "audit", "m")
        self.now = NOW
        self.ops = 0
        self.topups = 0
        self.sent: list[tuple[str, str, list[RatingGroupRequest], CcrResult]] = []
        self.commits = 0
        self.retail_returned = 0
        self.records: list[LedgerRecord] = []
        self.open: set[tuple[str, int]] = set()
        self.expired_seen: Counter[tuple[str, int, float]] = Counter()
        self.run(self.client.flushall())
        self.run(self.ledger.provision_account(SUB, balance=INITIAL_MONEY, now_s=self.now))
        self.run(
            self.ledger.add_bucket(
                SUB, bucket_id="b", kind=KIND, unit=BucketUnit.BYTES, amount=BUCKET_UNITS,
                expires_at_s=BUCKET_EXPIRES_S, now_s=self.now,
            )
        )  # fmt: skip

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def run_ccr(
        self, session: str, op_id: str, items: list[RatingGroupRequest], now_s: float
    ) -> CcrResult:
        """``Ledger.credit_control`` starts its call at once: it must run inside the loop."""

        async def call() -> CcrResult:
            return await self.ledger.credit_control(SUB, session, op_id, items, now_s=now_s)

        result: CcrResult = self.run(call())
        return result

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.loop.close()

    def _ccr(self, session: str, items: list[RatingGroupRequest]) -> None:
        self.ops += 1
        op_id = f"{session}:{self.ops}"
        result = self.run_ccr(session, op_id, items, now_s=self.now)
        assert not result.replayed
        self.sent.append((session, op_id, items, result))
        for item, out in zip(items, result.items, strict=True):
            if item.used:
                self.commits += 1
                self.retail_returned += out.retail
            key = (session, item.rating_group)
            self.open.discard(key)
            if out.granted_units > 0 and not item.terminate:
                self.open.add(key)
        if any(item.terminate for item in items):
            self.open = {k for k in self.open if k[0] != session}

    @rule(
        session=st.sampled_from(["s1", "s2"]),
        group=st.sampled_from([1, 2]),
        used=st.none() | st.integers(0, 400),
        requested=st.integers(0, 300),
        bundle=st.booleans(),
        valid_s=st.integers(10, 120),
        terminate=st.booleans(),
    )
    def credit_control(
        self, session: str, group: int, used: int | None, requested: int, bundle: bool,
        valid_s: int, terminate: bool,
    ) -> None:  # fmt: skip
        kinds = (KIND,) if bundle else ()
        item = rg(
            group, used=used, requested=requested, kinds=kinds, valid_s=valid_s,
            terminate=terminate, now=self.now,
        )  # fmt: skip
        self._ccr(session, [item])

    @rule(session=st.sampled_from(["s1", "s2"]), used=st.integers(0, 200))
    def two_groups(self, session: str, used: int) -> None:
        items = [
            rg(1, used=used, requested=100, kinds=(KIND,), now=self.now),
            rg(2, used=used // 2, requested=50, now=self.now),
        ]
        self._ccr(session, items)

    @rule(seconds=st.integers(1, 200))
    def advance_and_expire(self, seconds: int) -> None:
        self.now += seconds
        expired = self.run(self.ledger.expire_due(self.now, vshards=[keys.vshard(SUB)]))
        for e in expired:
            key = (e.session_id, e.rating_group)
            assert key in self.open, f"expired a reservation that was not open: {key}"
            self.open.discard(key)

    @rule(amount=st.integers(1, 500))
    def topup(self, amount: int) -> None:
        self.run(self.ledger.topup(SUB, amount, now_s=self.now))
        self.topups += amount

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        if not self.sent:
            return
        session, op_id, items, first = data.draw(st.sampled_from(self.sent))
        before = self.run(self.ledger.query(SUB))
        again = self.run_ccr(session, op_id, items, now_s=self.now + 1)
        assert again.replayed and again.raw == first.raw
        assert self.run(self.ledger.query(SUB)) == before

    @invariant()
    def accounting_balances(self) -> None:
        account = self.run(self.ledger.query(SUB))
        self.records.extend(
            r.record for r in self.run(self.reader.read(keys.vshard(SUB), count=10_000))
        )
        usage = [r for r in self.records if r.kind == "usage"]
        # Exactly one usage record per commit, each op id applied at most once per group.
        assert len(usage) == self.commits
        per_op = Counter((r.op_id, r.rating_group) for r in usage)
        assert all(n == 1 for n in per_op.values())
        # Money: available + held + consumed = initial + top-ups, exactly.
        consumed_money = sum(r.retail for r in usage)
        assert consumed_money == self.retail_returned
        assert account.balance + account.held_money + consumed_money == (
            INITIAL_MONEY + self.topups
        )
        assert account.balance >= 0, "prepaid balance below zero"
        # Bundle units: available + held + consumed = initial - expired, where a bucket past its
        # expiry is no longer available: what it had left counts as expired.
        bucket = account.buckets[0]
        consumed_units = sum(d.units for r in usage for d in r.buckets if d.bucket_id == "b")
        live = bucket.live(self.now)
        available = bucket.remaining if live else 0
        expired = 0 if live else bucket.remaining
        assert available + bucket.held + consumed_units == BUCKET_UNITS - expired
        assert bucket.remaining >= 0 and bucket.held >= 0
        # Holds recorded per reservation add up to the account's held totals.
        holds = [h for s in account.sessions for group in s.rating_groups for h in group.holds]
        assert sum(h.amount for h in holds if h.bucket_id == "") == account.held_money
        assert sum(h.amount for h in holds if h.bucket_id == "b") == bucket.held
        # Each reservation resolved at most once: open ones are exactly those with holds.
        open_now = {
            (s.session_id, group.rating_group)
            for s in account.sessions
            for group in s.rating_groups
            if group.holds
        }
        # (A grant covered by increments already paid holds nothing, so it is not open.)
        assert open_now <= self.open
        self.open = open_now
        expiries = Counter(
            (r.session_id, r.rating_group, r.at_s) for r in self.records if r.kind == "expiry"
        )
        assert all(n == 1 for n in expiries.values())


def test_ledger_state_machine(redis_url: str) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(redis_url),
        settings=settings(max_examples=40, stateful_step_count=25, deadline=None),
    )
