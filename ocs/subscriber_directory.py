"""Subscribers created at run time (``ocs api``), beside the catalog's ranges and entries.

The catalog YAML is the static directory; a subscriber created through the API whose number no
catalog range or entry covers is kept in one Redis hash, ``DIRECTORY_KEY`` (field: MSISDN,
value: ``{"tenant", "imsi"}``). Every server keeps the whole hash in memory
(``DynamicDirectory``): a ``directory`` notice on the account channel names the MSISDN that
changed (one HGET refreshes it), and a periodic HSCAN resync repairs a missed notice. So a CCR
for a dynamic subscriber costs a dict lookup after the catalog's own lookup missed, and no Redis
round trip.

A catalog range or entry wins over a dynamic entry for the same number: the API refuses to
create a dynamic entry inside any tenant's range.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from ocs.charging.notifications import publish_notice
from tariffs.subscribers import SubscriberRef, SubscriptionIdType, normalise_digits

DIRECTORY_KEY = "ocs:directory"
# IMSI -> MSISDN of the dynamic entries: an IMSI names one subscriber at most.
DIRECTORY_IMSI_KEY = "ocs:directory:imsi"
DIRECTORY_NOTICE = "directory"
# A subscriber's plan changed (ocs account change-plan): servers re-read it from its shard.
PLAN_NOTICE = "plan"
SCAN_COUNT = 1000
ENTRIES_MAX = 10_000_000


class DirectoryEntry(msgspec.Struct, frozen=True):
    tenant: str
    imsi: str | None = None


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(DirectoryEntry).decode


class DynamicDirectory:
    """The in-memory copy of ``DIRECTORY_KEY``. ``version`` changes with every change, so a
    memo of resolutions (``CatalogSnapshot``) knows when its answers may be stale."""

    def __init__(self) -> None:
        self.version = 0
        self._by_msisdn: dict[str, SubscriberRef] = {}
        self._by_imsi: dict[str, SubscriberRef] = {}
        # (tenant, MSISDN) -> plan, for subscribers moved off their catalog plan; kept in the
        # shards' plan hashes (balance.products.plan_key), refreshed by notice and resync.
        self._plans: dict[tuple[str, str], str] = {}

    def set_plan(self, tenant: str, msisdn: str, plan: str | None) -> None:
        if plan is None:
            self._plans.pop((tenant, msisdn), None)
        else:
            self._plans[(tenant, msisdn)] = plan
        self.version += 1

    def replace_plans(self, tenant: str, plans: dict[str, str]) -> None:
        kept = {key: plan for key, plan in self._plans.items() if key[0] != tenant}
        kept.update(((tenant, msisdn), plan) for msisdn, plan in plans.items())
        if kept == self._plans:
            return  # a resync that finds nothing changed keeps the memoised resolutions
        self._plans = kept
        self.version += 1

    def with_plan(self, ref: SubscriberRef | None) -> SubscriberRef | None:
        """``ref`` on its changed plan, if it has one (resolution is memoised per version, so
        this runs once per subscriber and change, not per request)."""
        if ref is None or not self._plans:
            return ref
        plan = self._plans.get((ref.tenant, ref.subscriber_id))
        return ref if plan is None else msgspec.structs.replace(ref, plan=plan)

    def __len__(self) -> int:
        return len(self._by_msisdn)

    def set(self, msisdn: str, entry: DirectoryEntry | None) -> None:
        old = self._by_msisdn.pop(msisdn, None)
        if old is not None and old.imsi is not None:
            self._by_imsi.pop(old.imsi, None)
        if entry is not None:
            ref = SubscriberRef(entry.tenant, msisdn, entry.imsi)
            self._by_msisdn[msisdn] = ref
            if entry.imsi is not None:
                self._by_imsi[entry.imsi] = ref
        self.version += 1

    def replace_all(self, entries: Iterable[tuple[str, DirectoryEntry]]) -> None:
        by_msisdn: dict[str, SubscriberRef] = {}
        by_imsi: dict[str, SubscriberRef] = {}
        for msisdn, entry in entries:
            ref = SubscriberRef(entry.tenant, msisdn, entry.imsi)
            by_msisdn[msisdn] = ref
            if entry.imsi is not None:
                by_imsi[entry.imsi] = ref
        if by_msisdn == self._by_msisdn and by_imsi == self._by_imsi:
            return  # a resync that finds nothing changed keeps the memoised resolutions
        self._by_msisdn, self._by_imsi = by_msisdn, by_imsi
        self.version += 1

    def by_msisdn(self, number: str) -> SubscriberRef | None:
        digits = normalise_digits(number)
        return None if digits is None else self._by_msisdn.get(digits)

    def by_imsi(self, number: str) -> SubscriberRef | None:
        digits = normalise_digits(number)
        return None if digits is None else self._by_imsi.get(digits)

    def resolve(self, id_type: int, data: str) -> SubscriberRef | None:
        if id_type == SubscriptionIdType.END_USER_E164:
            return self.by_msisdn(data)
        if id_type == SubscriptionIdType.END_USER_IMSI:
            return self.by_imsi(data)
        if id_type in (SubscriptionIdType.END_USER_SIP_URI, SubscriptionIdType.END_USER_NAI):
            text = data.strip()
            if text[:5].lower() == "sips:":
                text = text[5:]
            elif text[:4].lower() in ("sip:", "tel:"):
                text = text[4:]
            user = text.split("@", 1)[0].split(";", 1)[0]
            return self.by_msisdn(user) or self.by_imsi(user)
        return None

    def resolve_any(self, ids: Iterable[tuple[int, str]]) -> SubscriberRef | None:
        for id_type, data in ids:
            ref = self.resolve(id_type, data)
            if ref is not None:
                return ref
        return None


# -- Redis side (the API writes, every server reads) -----------------------------------------


async def read_entry(client: Any, msisdn: str) -> DirectoryEntry | None:
    raw = await client.hget(DIRECTORY_KEY, msisdn)
    return None if raw is None else _decode(raw)


async def read_all(client: Any) -> list[tuple[str, DirectoryEntry]]:
    """Every entry, by HSCAN (never one huge HGETALL reply); bounded by ``ENTRIES_MAX``."""
    out: list[tuple[str, DirectoryEntry]] = []
    cursor = 0
    while True:
        cursor, chunk = await client.hscan(DIRECTORY_KEY, cursor, count=SCAN_COUNT)
        for field, value in chunk.items():
            name = field.decode() if isinstance(field, bytes) else field
            try:
                out.append((name, _decode(value)))
            except msgspec.DecodeError:
                continue  # not ours to crash on; the API never writes such a value
        if cursor == 0 or len(out) >= ENTRIES_MAX:
            return out


class ImsiTaken(ValueError):
    """The IMSI already belongs to another dynamic subscriber."""


async def reserve_imsi(client: Any, imsi: str, msisdn: str) -> None:
    """Claim ``imsi`` for ``msisdn`` before the ledger records a SIM swap to it (routing is
    unchanged until ``put_entry``): ``ImsiTaken`` if another subscriber holds it."""
    if not await client.hsetnx(DIRECTORY_IMSI_KEY, imsi, msisdn):
        holder = await client.hget(DIRECTORY_IMSI_KEY, imsi)
        if holder not in (msisdn, msisdn.encode()):
            raise ImsiTaken(f"IMSI {imsi} already belongs to another subscriber")


async def put_entry(client: Any, msisdn: str, entry: DirectoryEntry) -> None:
    """Store (or replace: a SIM swap) the entry, then tell every server (one HGET each).
    ``ImsiTaken`` if another subscriber holds the IMSI; the old IMSI is released."""
    old = await read_entry(client, msisdn)
    new_imsi = entry.imsi is not None and (old is None or old.imsi != entry.imsi)
    if new_imsi and not await client.hsetnx(DIRECTORY_IMSI_KEY, entry.imsi, msisdn):
        holder = await client.hget(DIRECTORY_IMSI_KEY, entry.imsi)
        if holder not in (msisdn, msisdn.encode()):
            raise ImsiTaken(f"IMSI {entry.imsi} already belongs to another subscriber")
    await client.hset(DIRECTORY_KEY, msisdn, _encode(entry))
    if old is not None and old.imsi is not None and old.imsi != entry.imsi:
        await client.hdel(DIRECTORY_IMSI_KEY, old.imsi)
    await publish_notice(client, entry.tenant, msisdn, DIRECTORY_NOTICE)


async def remove_entry(client: Any, tenant: str, msisdn: str) -> None:
    old = await read_entry(client, msisdn)
    await client.hdel(DIRECTORY_KEY, msisdn)
    if old is not None and old.imsi is not None:
        await client.hdel(DIRECTORY_IMSI_KEY, old.imsi)
    await publish_notice(client, tenant, msisdn, DIRECTORY_NOTICE)
