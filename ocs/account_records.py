"""Read-only views of the ledger for ``ocs account list`` and ``ocs account history``.

Accounts are found with ``SCAN`` over the account key pattern (never ``KEYS``), an account's
history by walking its shard's record stream backwards (``XREVRANGE``) and keeping its records.
Both are bounded: a list stops at ``limit`` accounts, a history at ``limit`` records or after
``scan_max`` stream entries, and each says when it stopped early. The streams hold what the
exporter has not yet moved to the usage store; older history is there.
"""

from __future__ import annotations

from typing import Any

import msgspec

from balance import keys
from balance.ledger import Ledger
from balance.records import Account, LedgerRecord

LIST_LIMIT_MAX = 10_000
HISTORY_LIMIT_MAX = 10_000
HISTORY_SCAN_MAX = 200_000  # stream entries examined at most for one history
_PAGE = 1_000
_decode_record = msgspec.msgpack.Decoder(LedgerRecord).decode


class HistoryEntry(msgspec.Struct, frozen=True):
    entry_id: str
    record: LedgerRecord


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _account_of(key: str) -> tuple[str, str] | None:
    """``{t:acme:17}:a:4917099000042`` → ("acme", "4917099000042"); None for another key the
    glob happened to match (an idempotency key whose id contains ``}:a:``)."""
    prefix, sep, subscriber = key.partition("}:a:")
    if not sep or not prefix.startswith("{t:") or not subscriber:
        return None
    tenant = prefix[3:].rpartition(":")[0]
    if (
        not tenant
        or keys.account_key(keys.subscriber_prefix(tenant, subscriber), subscriber) != key
    ):
        return None
    return tenant, subscriber


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def list_accounts(
    client: Any, tenant: str | None, match: str, limit: int
) -> tuple[list[tuple[str, str, Account]], bool]:
    """Up to ``limit`` accounts (of ``tenant``, or of every tenant) whose subscriber id matches
    the glob ``match``, sorted; and whether more exist."""
    where = _glob_escape(keys.check_tenant(tenant)) + ":*" if tenant else "*"
    pattern = "{t:" + where + "}:a:" + (match or "*")
    found: list[tuple[str, str]] = []
    async for raw in client.scan_iter(match=pattern, count=_PAGE):
        account = _account_of(_text(raw))
        if account is None or (tenant is not None and account[0] != tenant):
            continue
        found.append(account)
        if len(found) > limit:
            break
    more = len(found) > limit
    out: list[tuple[str, str, Account]] = []
    ledgers: dict[str, Ledger] = {}
    for owner, subscriber in sorted(found)[:limit]:
        ledger = ledgers.setdefault(owner, Ledger(client, owner))
        out.append((owner, subscriber, await ledger.query(subscriber)))
    return out, more


async def account_history(
    client: Any,
    tenant: str,
    subscriber: str,
    limit: int,
    *,
    scan_max: int = HISTORY_SCAN_MAX,
) -> tuple[list[HistoryEntry], bool]:
    """The subscriber's latest ``limit`` records, newest first; and whether the walk stopped at
    ``scan_max`` entries before reaching the start of the stream."""
    stream = keys.stream_key(keys.subscriber_prefix(tenant, subscriber))
    out: list[HistoryEntry] = []
    scanned = 0
    upper = "+"
    while len(out) < limit and scanned < scan_max:
        page = min(_PAGE, scan_max - scanned)
        batch = await client.xrevrange(stream, max=upper, min="-", count=page)
        if not batch:
            return out, False
        for entry_id, fields in batch:
            scanned += 1
            payload = fields.get(b"r") if fields else None
            if payload is None:
                continue
            record = _decode_record(payload)
            if record.subscriber == subscriber and record.tenant == tenant:
                out.append(HistoryEntry(_text(entry_id), record))
                if len(out) == limit:
                    return out, False
        if len(batch) < page:
            return out, False  # reached the start of the stream
        upper = "(" + _text(batch[-1][0])
    return out, True  # stopped at scan_max; older entries may hold more of its records
