"""The API's queries (schema: ``usage/migrations/0201_api.sql``). Values are bound parameters."""

from __future__ import annotations

from typing import Final

INSERT_KEY: Final = """
INSERT INTO api_keys (key_id, key_hash, scope, tenants, role, label, expires_at)
VALUES (%(key_id)s, %(key_hash)s, %(scope)s, %(tenants)s, %(role)s, %(label)s, %(expires_at)s)
"""
KEY_COLUMNS: Final = "key_id, scope, tenants, role, label, created_at, expires_at, revoked_at"
FIND_KEY: Final = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = %s"
LIST_KEYS: Final = f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id LIMIT %s"
REVOKE_KEY: Final = """
UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL
RETURNING key_id
"""
KEY_EXISTS: Final = "SELECT revoked_at FROM api_keys WHERE key_id = %s"

INSERT_AUDIT: Final = """
INSERT INTO api_audit (tenant, actor, source, action, target, status, before, after)
VALUES (%(tenant)s, %(actor)s, %(source)s, %(action)s, %(target)s, %(status)s,
        %(before)s, %(after)s)
RETURNING audit_id, at
"""
# An audit row's commit does not wait for its WAL flush (api.audit_sync_commit = false): the
# flush follows within a few wal_writer_delay, the same order as the ledger's own window
# (Redis appendfsync everysec). Waiting for it costs a disk flush per write request.
AUDIT_ASYNC_COMMIT: Final = "SET LOCAL synchronous_commit = off"
INSERT_AUDIT_ROW: Final = INSERT_AUDIT.replace("RETURNING audit_id, at", "")
AUDIT_COLUMNS: Final = "audit_id, tenant, at, actor, source, action, target, status, before, after"
# Newest first, keyset paging on the id (``before_id``: the last id of the previous page).
READ_AUDIT: Final = f"""
SELECT {AUDIT_COLUMNS} FROM api_audit
WHERE tenant = %(tenant)s AND audit_id < %(before_id)s
ORDER BY audit_id DESC LIMIT %(limit)s
"""

# Usage records, newest first, keyset on (ended_at, entry_id); filters are optional.
USAGE_COLUMNS: Final = (
    "entry_id, kind, subscriber, service, rating_group, started_at, ended_at, units, unit, "
    "retail, wholesale, currency, leakage_money, money_delta, balance_after, session_id, "
    "op_id, reason, source_ref"
)
READ_USAGE: Final = f"""
SELECT {USAGE_COLUMNS} FROM usage_records
WHERE tenant = %(tenant)s
  AND ended_at >= %(start)s AND ended_at < %(end)s
  AND (ended_at, entry_id) < (%(after_at)s, %(after_entry)s)
  AND (%(subscriber)s::text IS NULL OR subscriber = %(subscriber)s)
  AND (%(kind)s::text IS NULL OR kind = %(kind)s)
  AND (%(service)s::text IS NULL OR service = %(service)s)
ORDER BY ended_at DESC, entry_id DESC
LIMIT %(limit)s
"""

# Portfolio aggregates per tenant (and service) in [start, end), as ocs_portfolio.
AGGREGATES: Final = """
SELECT tenant, service, currency,
       count(*) AS records,
       count(DISTINCT subscriber) AS subscribers,
       coalesce(sum(units), 0) AS units,
       coalesce(sum(retail), 0) AS retail,
       coalesce(sum(wholesale), 0) AS wholesale,
       coalesce(sum(leakage_money), 0) AS leakage
FROM usage_records
WHERE ended_at >= %(start)s AND ended_at < %(end)s
GROUP BY tenant, service, currency
ORDER BY tenant, service, currency
"""
TENANT_SUBSCRIBERS: Final = """
SELECT tenant, count(DISTINCT subscriber) FROM usage_records
WHERE ended_at >= %(start)s AND ended_at < %(end)s GROUP BY tenant
"""
# Alert inputs: records priced below cost, leakage, and how far behind the export is.
NEGATIVE_MARGIN: Final = """
SELECT tenant, count(*), coalesce(sum(wholesale - retail), 0) FROM usage_records
WHERE ended_at >= %(start)s AND ended_at < %(end)s AND wholesale > retail
GROUP BY tenant ORDER BY tenant
"""
LEAKAGE: Final = """
SELECT tenant, count(*), coalesce(sum(leakage_money), 0) FROM usage_records
WHERE ended_at >= %(start)s AND ended_at < %(end)s AND leakage_money <> 0
GROUP BY tenant ORDER BY tenant
"""
LATEST_STORED: Final = "SELECT tenant, max(stored_at) FROM usage_records GROUP BY tenant"

# The operator dashboard, as the tenant's role (row-level security adds the tenant filter too).
TENANT_DAILY: Final = """
SELECT to_char(date_trunc('day', ended_at), 'YYYY-MM-DD') AS day, service,
       coalesce(sum(retail), 0), coalesce(sum(units), 0)
FROM usage_records
WHERE tenant = %(tenant)s AND ended_at >= %(start)s AND ended_at < %(end)s AND kind = 'usage'
GROUP BY day, service ORDER BY day, service
"""
TOP_SUBSCRIBERS: Final = """
SELECT subscriber, count(*), coalesce(sum(retail), 0)
FROM usage_records
WHERE tenant = %(tenant)s AND ended_at >= %(start)s AND ended_at < %(end)s AND subscriber <> ''
GROUP BY subscriber ORDER BY sum(retail) DESC, subscriber LIMIT %(limit)s
"""
PORTFOLIO_DAILY: Final = """
SELECT to_char(date_trunc('day', ended_at), 'YYYY-MM-DD') AS day, tenant,
       coalesce(sum(retail), 0), coalesce(sum(wholesale), 0)
FROM usage_records
WHERE ended_at >= %(start)s AND ended_at < %(end)s
GROUP BY day, tenant ORDER BY day, tenant
"""

# The proxy keys ocs serve may accept now (copied into Redis by ocs.api.keys.sync_proxy_keys).
USABLE_PROXY_KEYS: Final = """
SELECT key_hash, key_id, tenants, expires_at FROM api_keys
WHERE role = 'proxy' AND revoked_at IS NULL AND expires_at > now()
ORDER BY key_id
"""
