"""One stored usage row: the contract between the exporter (which builds rows from the ledger's
stream records) and the store (which writes and reads them).

Money is integer micro-units of ``currency``; units are integers in the service's unit (bytes,
seconds, events). Times are epoch seconds (float, as the ledger writes them); the store turns
them into ``timestamptz``.
"""

from __future__ import annotations

import msgspec


class UsageRow(msgspec.Struct, frozen=True, kw_only=True):
    # Identity: a stream entry is stored once. (tenant, vshard, entry_id) is unique, so an
    # exporter that re-delivers after a crash between COMMIT and XACK inserts nothing new.
    tenant: str
    vshard: int
    entry_id: str
    # What the ledger did: usage, debit, refund, expiry, topup, adjust, provision, bucket,
    # expired, block, unblock (balance/records.py LedgerRecord.kind).
    kind: str
    # Where it came from: gy, ro, sms, sip, offline, admin, sweep ("" when unknown).
    source: str = ""
    op_id: str = ""
    session_id: str = ""
    host_mno: str = ""
    subscriber: str = ""  # the ledger's account id
    msisdn: str = ""  # E.164 digits
    imsi: str = ""
    service: str = ""
    rating_group: int = 0
    started_at_s: float = 0.0
    ended_at_s: float = 0.0  # when the ledger recorded it
    units: int = 0
    unit: str = ""  # bytes | seconds | events | money | ""
    bucket_units: int = 0  # of ``units``, how many bundles paid
    retail: int = 0
    wholesale: int = 0
    currency: str = ""
    leakage_units: int = 0
    leakage_money: int = 0
    money_delta: int = 0  # change of the monetary balance (negative for charges)
    balance_after: int = 0
    called: str = ""  # E.164 digits
    calling: str = ""
    visited_plmn: str = ""  # MCC-MNC
    apn: str = ""
    charging_id: str = ""  # 3GPP charging id / IMS-Charging-Identifier
    role_of_node: int = -1  # -1 unknown, 0 originating, 1 terminating
    rate_card_version: str = ""
    rate_row: str = ""  # the rate row (leg key) that priced the first leg
    buckets: str = ""  # JSON: [{"bucket": id, "units": n}, ...]
    legs: str = ""  # JSON: [{"leg": key, "units": n, "retail": m, "wholesale": w}, ...]
    reason: str = ""
    source_ref: str = ""  # offline import: "<file>:<line>"
    plan: str = ""  # the subscriber's catalog plan when the record was made ("" none)
