"""Offline import harness: the demo catalog installed on a real redis-server, the example
mapping, files written by the test, and the real importer with a clock the test sets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from balance import keys
from balance.ledger import Ledger
from balance.records import Account, LedgerRecord
from tests.charging.conftest import charging  # noqa: F401  (the online harness, for comparisons)
from tests.support.charging import DEMO_CATALOG, TUESDAY_10_BERLIN, Clock, demo_directory
from usage.xdr.importer import FileImport, ImportOptions, ImportResult
from usage.xdr.manifest import ManifestStore
from usage.xdr.mapping import Mapping, load_mapping, mapping_path
from usage.xdr.rate import XdrRater

HEADER = "cdr_id;imsi;a_number;record_type;start_time;amount;b_number;vplmn;apn\n"
ACME_1 = "4917099000001"
ACME_IMSI_2 = "262019900000002"
ACME_2 = "4917099000002"
GLOBEX_1 = "4917199000001"
OPENING = 10_000_000
MIB = 1_048_576


@dataclass
class Xdr:
    client: aioredis.Redis
    clock: Clock
    mapping: Mapping
    rater: XdrRater
    tmp: Path
    ledgers: dict[str, Ledger]

    async def ledger(self, tenant: str) -> Ledger:
        if tenant not in self.ledgers:
            self.ledgers[tenant] = Ledger(self.client, tenant, in_flight_max=256)
        return self.ledgers[tenant]

    def write(self, name: str, *lines: str, header: str = HEADER) -> Path:
        path = self.tmp / name
        path.write_text(header + "".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    async def run(self, path: Path, **options: object) -> ImportResult:
        importer = FileImport(
            path,
            self.mapping,
            self.rater,
            ImportOptions(mno=self.mapping.mno, **options),  # type: ignore[arg-type]
            ledger_for=self.ledger,
            manifests=ManifestStore(self.tmp / "state"),
            now=self.clock,
        )
        return await importer.run()

    async def account(self, tenant: str, subscriber: str) -> Account:
        return await (await self.ledger(tenant)).query(subscriber)

    async def usage(self, tenant: str) -> list[LedgerRecord]:
        """Every usage record of the tenant's shard streams (shard order, then stream order)."""
        out: list[LedgerRecord] = []
        for shard in range(keys.VSHARDS):
            stream = keys.stream_key(keys.shard_prefix(tenant, shard))
            entries: Any = await self.client.xrange(stream)
            out.extend(_DECODER.decode(fields[b"r"]) for _, fields in entries)
        return [r for r in out if r.kind == "usage"]


_DECODER = msgspec.msgpack.Decoder(LedgerRecord)


def line(
    cdr_id: str,
    kind: str,
    start: str,
    amount: str,
    *,
    imsi: str = "",
    msisdn: str = ACME_1,
    called: str = "",
    vplmn: str = "",
    apn: str = "",
) -> str:
    return ";".join([cdr_id, imsi, msisdn, kind, start, amount, called, vplmn, apn])


@pytest.fixture
async def xdr(redis_url: str, tmp_path: Path) -> AsyncIterator[Xdr]:
    client = aioredis.Redis.from_url(redis_url)
    clock = Clock(TUESDAY_10_BERLIN + 86_400)
    directory = await demo_directory(client, TUESDAY_10_BERLIN)
    mapping = load_mapping(mapping_path(DEMO_CATALOG, "telco_de"))
    harness = Xdr(client, clock, mapping, XdrRater(directory.snapshot.catalog), tmp_path, {})
    yield harness
    for ledger in harness.ledgers.values():
        ledger._scripts.close()
    await client.aclose()
    await asyncio.sleep(0)
