"""The store's queries, in one place (the schema itself is in ``usage/migrations``).

Identifiers that vary (a tenant's role) are composed with ``psycopg.sql`` at the call site; every
value is a bound parameter.
"""

from __future__ import annotations

from typing import Final

# The staging table has UsageRow's fields, in order and with its names (tests check that), so a
# batch is COPYed straight from ``msgspec.structs.astuple(row)``. Created once per connection by
# the writer; ON COMMIT DELETE ROWS empties it after each batch. Every integer is staged as int8:
# psycopg's binary int4/int2 dumpers wrap silently on overflow (2**31 -> -2**31), while int8
# raises and PostgreSQL's int8 -> integer/smallint assignment cast refuses out-of-range values.
STAGE_COLUMNS: Final = (
    ("tenant", "text"),
    ("vshard", "int8"),
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
    ("started_at_s", "float8"),
    ("ended_at_s", "float8"),
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
    ("role_of_node", "int8"),
    ("rate_card_version", "text"),
    ("rate_row", "text"),
    ("buckets", "text"),
    ("legs", "text"),
    ("reason", "text"),
    ("source_ref", "text"),
)
STAGE_TYPES: Final = tuple(t for _, t in STAGE_COLUMNS)

CREATE_STAGE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS usage_stage ("
    + ", ".join(f"{name} {kind}" for name, kind in STAGE_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)

COPY_STAGE: Final = "COPY usage_stage FROM STDIN (FORMAT BINARY)"

# The columns of usage_records that come from a UsageRow (all but stored_at), in table order.
RECORD_COLUMNS: Final = tuple(
    {"started_at_s": "started_at", "ended_at_s": "ended_at"}.get(name, name)
    for name, _ in STAGE_COLUMNS
)

# to_timestamp(float8) keeps microseconds; a start of 0 means "none" and is stored as NULL.
_SELECT_STAGED = ", ".join(
    "CASE WHEN started_at_s > 0 THEN to_timestamp(started_at_s) END"
    if name == "started_at_s"
    else "to_timestamp(ended_at_s)"
    if name == "ended_at_s"
    else name
    for name, _ in STAGE_COLUMNS
)

# Idempotent on the identity: a re-delivered entry conflicts and is skipped; rowcount is the
# number of rows newly stored.
INSERT_FROM_STAGE: Final = (
    f"INSERT INTO usage_records ({', '.join(RECORD_COLUMNS)}) "
    f"SELECT {_SELECT_STAGED} FROM usage_stage ON CONFLICT DO NOTHING"
)

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
EXPORT_QUERY: Final = (
    f"SELECT {', '.join(EXPORT_COLUMNS)} FROM usage_records"
    " WHERE tenant = %(tenant)s AND ended_at >= %(start)s AND ended_at < %(end)s"
    " ORDER BY tenant, ended_at, vshard, entry_id"
)

# Retention (usage/retention.py): partitions with their bounds, and per-partition tenant counts.
LIST_PARTITIONS: Final = "SELECT name, lo, hi FROM usage_partitions ORDER BY lo"
DEFAULT_PARTITION_ROWS: Final = "SELECT count(*) FROM usage_records_default"
