"""The API's request and response bodies (msgspec Structs: Litestar derives the OpenAPI schema
from them). Money is integer micro-units (``*_micro``) beside a decimal string; requests give
amounts as decimal strings (``"5.00"``) so no float ever touches money."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class SubscriberCreate(msgspec.Struct, forbid_unknown_fields=True):
    # MSISDN (E.164 digits, +49..., tel:), or an IMSI of the tenant's catalog ranges. A number
    # no catalog range covers becomes a dynamic directory entry (reachable within a second).
    subscriber: str
    imsi: str | None = None
    balance: str = "0"
    credit_limit: str = "0"


class SimSwap(msgspec.Struct, forbid_unknown_fields=True):
    imsi: str


class TopUp(msgspec.Struct, forbid_unknown_fields=True):
    amount: str  # positive decimal, at most the tenant's topup_max
    reason: str = "topup"


class Adjust(msgspec.Struct, forbid_unknown_fields=True):
    amount: str  # signed decimal
    reason: str
    credit_limit: str | None = None


class StateChange(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


class BucketView(msgspec.Struct):
    id: str
    kind: str
    unit: str
    remaining: int
    remaining_text: str
    held: int
    priority: int
    expires_at_s: float
    live: bool


class AccountView(msgspec.Struct):
    tenant: str
    subscriber: str
    imsi: str | None
    currency: str
    state: str
    balance_micro: int
    balance_text: str
    held_micro: int
    credit_limit_micro: int
    buckets: list[BucketView]
    open_reservations: int
    replayed: bool = False  # a retried operation (same Idempotency-Key) changed nothing


class UsageRecord(msgspec.Struct):
    entry_id: str
    kind: str
    subscriber: str
    service: str
    rating_group: int
    started_at: datetime | None
    ended_at: datetime
    units: int
    unit: str
    retail_micro: int
    wholesale_micro: int
    currency: str
    leakage_micro: int
    money_delta_micro: int
    balance_after_micro: int
    session_id: str
    op_id: str
    reason: str
    source_ref: str


class UsagePage(msgspec.Struct):
    records: list[UsageRecord]
    next_cursor: str | None  # pass as ?cursor= for the next (older) page


class AuditEntry(msgspec.Struct):
    audit_id: int
    tenant: str
    at: datetime
    actor: str
    source: str
    action: str
    target: str
    status: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(msgspec.Struct):
    entries: list[AuditEntry]
    next_before: int | None


class ServiceInfo(msgspec.Struct):
    name: str
    unit: str


class TenantView(msgspec.Struct):
    tenant: str
    name: str
    currency: str
    timezone: str
    topup_max_micro: int
    services: list[ServiceInfo]
    addons: list[str] = msgspec.field(default_factory=list)  # what .../addons may buy


class TenantStatus(msgspec.Struct):
    tenant: str
    currency: str
    in_catalog: bool
    usage_stored: bool


class ServiceAggregate(msgspec.Struct):
    service: str
    records: int
    subscribers: int
    units: int
    retail_micro: int
    wholesale_micro: int
    margin_micro: int
    leakage_micro: int


class TenantAggregate(msgspec.Struct):
    tenant: str
    currency: str
    records: int
    subscribers: int
    retail_micro: int
    wholesale_micro: int
    margin_micro: int
    leakage_micro: int
    services: list[ServiceAggregate]


class Aggregates(msgspec.Struct):
    start: datetime
    end: datetime
    tenants: list[TenantAggregate]


class Alert(msgspec.Struct):
    kind: str  # export_lag | leakage | negative_margin
    tenant: str
    severity: str  # warning | critical
    message: str
    value: int


class Alerts(msgspec.Struct):
    start: datetime
    end: datetime
    alerts: list[Alert]


class ErrorBody(msgspec.Struct):
    status_code: int
    detail: str
    field: str | None = None


class ImportReject(msgspec.Struct):
    line: int  # the CSV line (1 is the header)
    reason: str


class ImportJob(msgspec.Struct):
    """A bulk subscriber import: queued, running, done or failed, with its progress."""

    job_id: str
    tenant: str
    state: str  # queued | running | done | failed
    actor: str  # the key id that uploaded it
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rows_total: int
    rows_done: int
    created: int
    rejected: int
    error: str  # why a failed job stopped ('' otherwise)
    rejects: list[ImportReject]  # the first ones; every one: rejects_url
    rejects_url: str  # the whole rejects report as CSV (line,reason)


class ImportJobs(msgspec.Struct):
    jobs: list[ImportJob]


class AddonPurchase(msgspec.Struct, forbid_unknown_fields=True):
    addon: str  # an id of the tenant's ``addons`` list (GET the tenant: ``addons``)
