"""The store's queries, in one place (the schema itself is in ``usage/migrations``).

Identifiers that vary (a tenant's role) are composed with ``psycopg.sql`` at the call site; every
value is a bound parameter.
"""

from __future__ import annotations

from typing import Final

# A batch row as COPYed: UsageRow's fields in order (tests check that), except the two epoch
# times, converted once in Python to timestamptz (started_at None when the row has no start).
# Both write paths COPY these same values, so a row stored by one and re-delivered through the
# other has the same ended_at, hence the same identity. Binary COPY needs the column's exact
# type; psycopg's binary int4/int2 dumpers wrap silently on overflow (2**31 -> -2**31), so the
# store checks vshard and role_of_node against these ranges before it COPYs (int8 raises).
BATCH_COLUMNS: Final = (
    ("tenant", "text"),
    ("vshard", "int4"),
    ("entry_id", "text"),
    ("kind", "text"),
    ("source", "text"),
    ("op_id", "text"),
    ("session_id", "text"),
    ("host_mno", "text"),
    ("subscriber", "text"),
    ("msisdn", "text"),
    ("imsi", "text"),
    ("service", "text"),
    ("rating_group", "int8"),
    ("started_at", "timestamptz"),  # UsageRow.started_at_s
    ("ended_at", "timestamptz"),  # UsageRow.ended_at_s
    ("units", "int8"),
    ("unit", "text"),
    ("bucket_units", "int8"),
    ("retail", "int8"),
    ("wholesale", "int8"),
    ("currency", "text"),
    ("leakage_units", "int8"),
    ("leakage_money", "int8"),
    ("money_delta", "int8"),
    ("balance_after", "int8"),
    ("called", "text"),
    ("calling", "text"),
    ("visited_plmn", "text"),
    ("apn", "text"),
    ("charging_id", "text"),
    ("role_of_node", "int2"),
    ("rate_card_version", "text"),
    ("rate_row", "text"),
    ("buckets", "text"),
    ("legs", "text"),
    ("reason", "text"),
    ("source_ref", "text"),
    ("plan", "text"),  # added by 0205_usage_plan: last in the table too
)
BATCH_TYPES: Final = tuple(t for _, t in BATCH_COLUMNS)
INT4_RANGE: Final = range(-(2**31), 2**31)
INT2_RANGE: Final = range(-(2**15), 2**15)
# The columns of usage_records that come from a UsageRow (all but stored_at), in table order.
RECORD_COLUMNS: Final = tuple(name for name, _ in BATCH_COLUMNS)
_RECORD_LIST = ", ".join(RECORD_COLUMNS)

# Fast path: straight into the month's partition (partitions carry no row-level security; the
# writer may INSERT into them, never read them). A unique violation rolls it back to the
# idempotent path below.
COPY_PARTITION: Final = "COPY {} (" + _RECORD_LIST + ") FROM STDIN (FORMAT BINARY)"

# Idempotent path: a staging table created once per connection by the writer (ON COMMIT DELETE
# ROWS empties it after each batch), then one INSERT that skips rows already stored; its
# rowcount is the number of rows new.
CREATE_STAGE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS usage_stage ("
    + ", ".join(f"{name} {kind}" for name, kind in BATCH_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
COPY_STAGE: Final = "COPY usage_stage FROM STDIN (FORMAT BINARY)"
INSERT_FROM_STAGE: Final = (
    f"INSERT INTO usage_records ({_RECORD_LIST}) "
    f"SELECT {_RECORD_LIST} FROM usage_stage ON CONFLICT DO NOTHING"
)

NO_STATEMENT_TIMEOUT: Final = "SET LOCAL statement_timeout = 0"
READ_ONLY_SNAPSHOT: Final = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

ENSURE_MONTH: Final = "SELECT usage_ensure_month(%s)"

TENANT_ROLE_OF: Final = "SELECT role_name FROM usage_tenants WHERE tenant = %s"

ROLE_FACTS: Final = "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s"

UPSERT_TENANT: Final = (
    "INSERT INTO usage_tenants (tenant, role_name) VALUES (%s, %s) "
    "ON CONFLICT (tenant) DO UPDATE SET role_name = EXCLUDED.role_name"
)

LIST_TENANTS: Final = "SELECT tenant, role_name, retention_months FROM usage_tenants ORDER BY 1"

SET_RETENTION: Final = "UPDATE usage_tenants SET retention_months = %s WHERE tenant = %s"

EXISTS_OP: Final = "SELECT EXISTS (SELECT 1 FROM usage_records WHERE tenant = %s AND op_id = %s)"

# sum(bigint) is numeric: no overflow however many records.
TOTALS: Final = (
    "SELECT count(*), coalesce(sum(retail), 0), coalesce(sum(wholesale), 0),"
    " coalesce(sum(leakage_money), 0), coalesce(sum(money_delta), 0), coalesce(sum(units), 0)"
    " FROM usage_records WHERE tenant = %(tenant)s"
    " AND ended_at >= %(start)s AND ended_at < %(end)s"
)
TOTALS_KINDS: Final = TOTALS + " AND kind = ANY(%(kinds)s)"

# What an export holds: every stored column, in table order, oldest first. The order matches
# the identity index (tenant, ended_at, vshard, entry_id), so no sort is needed.
EXPORT_COLUMNS: Final = (*RECORD_COLUMNS, "stored_at")
_PERIOD = " WHERE tenant = %(tenant)s AND ended_at >= %(start)s AND ended_at < %(end)s"
_ORDER = " ORDER BY tenant, ended_at, vshard, entry_id"
EXPORT_QUERY: Final = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM usage_records" + _PERIOD + _ORDER

# Export files are formatted by the server (COPY is C, Python per-cell formatting is not):
# times as ISO 8601 UTC with microseconds, the same text in CSV, JSONL and (parsed) Parquet.
EXPORT_TIME_FORMAT: Final = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
_EXPORT_TEXT_COLUMNS = ", ".join(
    f"to_char({name} AT TIME ZONE 'UTC', '{EXPORT_TIME_FORMAT}') AS {name}"
    if name in ("started_at", "ended_at", "stored_at")
    else name
    for name in EXPORT_COLUMNS
)
_EXPORT_TEXT_SELECT = f"SELECT {_EXPORT_TEXT_COLUMNS} FROM usage_records" + _PERIOD + _ORDER
# psycopg binds COPY's parameters client-side (the server takes none in COPY).
EXPORT_CSV_COPY: Final = f"COPY ({_EXPORT_TEXT_SELECT}) TO STDOUT (FORMAT csv, HEADER)"
EXPORT_JSON_LINES: Final = f"SELECT row_to_json(r)::text FROM ({_EXPORT_TEXT_SELECT}) r"

# The manifest's figures, read in the same snapshot as the file.
EXPORT_TOTALS: Final = (
    "SELECT currency, count(*), coalesce(sum(retail), 0), coalesce(sum(wholesale), 0),"
    " coalesce(sum(leakage_money), 0), coalesce(sum(money_delta), 0)"
    " FROM usage_records" + _PERIOD + " GROUP BY currency ORDER BY currency"
)
EXPORT_FIRST: Final = (
    f"SELECT to_char(ended_at AT TIME ZONE 'UTC', '{EXPORT_TIME_FORMAT}'), vshard, entry_id"
    " FROM usage_records" + _PERIOD + _ORDER + " LIMIT 1"
)
EXPORT_LAST: Final = (
    f"SELECT to_char(ended_at AT TIME ZONE 'UTC', '{EXPORT_TIME_FORMAT}'), vshard, entry_id"
    " FROM usage_records"
    + _PERIOD
    + " ORDER BY tenant DESC, ended_at DESC, vshard DESC, entry_id DESC LIMIT 1"
)

# Retention (usage/retention.py): partitions with their bounds, and per-partition tenant counts.
LIST_PARTITIONS: Final = "SELECT name, lo, hi FROM usage_partitions ORDER BY lo"
DEFAULT_PARTITION_ROWS: Final = "SELECT count(*) FROM usage_records_default"
LIST_PRUNING: Final = (
    "SELECT relname::text FROM pg_class WHERE relname LIKE %s AND relkind = 'r'"
    " AND relnamespace = current_schema()::regnamespace ORDER BY 1"
)
