-- depends: 0001_roles
-- One row per stored ledger record (usage/row.py UsageRow; the column names are its field names
-- except started_at_s / ended_at_s, stored as timestamptz started_at / ended_at).
-- Money is bigint micro-units of `currency`; units are bigint in the service's unit.
--
-- Partitioned by month of ended_at (UTC). A unique index on a partitioned table must hold the
-- partition key, so the identity (tenant, vshard, entry_id) is enforced as
-- (tenant, ended_at, vshard, entry_id): ended_at is a function of the stream entry (a re-delivered
-- entry carries the same time and lands in the same partition), so the extra column does not
-- weaken it; leading with (tenant, ended_at) lets the same index serve a tenant's time range in
-- order (exports, totals).
CREATE TABLE usage_records (
    tenant            text        NOT NULL,
    vshard            integer     NOT NULL,
    entry_id          text        NOT NULL,
    kind              text        NOT NULL,
    source            text        NOT NULL DEFAULT '',
    op_id             text        NOT NULL DEFAULT '',
    session_id        text        NOT NULL DEFAULT '',
    host_mno          text        NOT NULL DEFAULT '',
    subscriber        text        NOT NULL DEFAULT '',
    msisdn            text        NOT NULL DEFAULT '',
    imsi              text        NOT NULL DEFAULT '',
    service           text        NOT NULL DEFAULT '',
    rating_group      bigint      NOT NULL DEFAULT 0,
    started_at        timestamptz,            -- NULL: the record has no start
    ended_at          timestamptz NOT NULL,
    units             bigint      NOT NULL DEFAULT 0,
    unit              text        NOT NULL DEFAULT '',
    bucket_units      bigint      NOT NULL DEFAULT 0,
    retail            bigint      NOT NULL DEFAULT 0,
    wholesale         bigint      NOT NULL DEFAULT 0,
    currency          text        NOT NULL DEFAULT '',
    leakage_units     bigint      NOT NULL DEFAULT 0,
    leakage_money     bigint      NOT NULL DEFAULT 0,
    money_delta       bigint      NOT NULL DEFAULT 0,
    balance_after     bigint      NOT NULL DEFAULT 0,
    called            text        NOT NULL DEFAULT '',
    calling           text        NOT NULL DEFAULT '',
    visited_plmn      text        NOT NULL DEFAULT '',
    apn               text        NOT NULL DEFAULT '',
    charging_id       text        NOT NULL DEFAULT '',
    role_of_node      smallint    NOT NULL DEFAULT -1,
    rate_card_version text        NOT NULL DEFAULT '',
    rate_row          text        NOT NULL DEFAULT '',
    buckets           text        NOT NULL DEFAULT '',
    legs              text        NOT NULL DEFAULT '',
    reason            text        NOT NULL DEFAULT '',
    source_ref        text        NOT NULL DEFAULT '',
    stored_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_records_identity UNIQUE (tenant, ended_at, vshard, entry_id)
) PARTITION BY RANGE (ended_at);

CREATE INDEX usage_records_msisdn ON usage_records (tenant, msisdn, ended_at);
CREATE INDEX usage_records_op ON usage_records (tenant, op_id);

-- The safety net: a row whose month has no partition yet (or was pruned) lands here instead of
-- failing the exporter's batch. usage_ensure_month moves such rows out when it creates a month.
CREATE TABLE usage_records_default PARTITION OF usage_records DEFAULT;

-- Creates the month partition holding `month_start` (any day of it) if missing; returns its name.
-- SECURITY DEFINER: the writer role may call it, DDL stays the owner's.
CREATE FUNCTION usage_ensure_month(month_start date) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
SET timezone = 'UTC'
AS $$
DECLARE
    first date := date_trunc('month', month_start)::date;
    lo timestamptz := first::timestamp;               -- UTC: the function's timezone
    hi timestamptz := (first + interval '1 month')::timestamp;
    part text := 'usage_records_' || to_char(first, 'YYYYMM');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    -- Serialise creators (several exporters may reach a new month at once).
    PERFORM pg_advisory_xact_lock(hashtext('usage_records partitions'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    IF EXISTS (SELECT 1 FROM usage_records_default WHERE ended_at >= lo AND ended_at < hi) THEN
        -- A partition cannot be created over rows the default holds: move them first.
        EXECUTE format('CREATE TABLE %I (LIKE usage_records INCLUDING DEFAULTS)', part);
        EXECUTE format(
            'INSERT INTO %I SELECT * FROM usage_records_default WHERE ended_at >= $1 AND ended_at < $2',
            part) USING lo, hi;
        DELETE FROM usage_records_default WHERE ended_at >= lo AND ended_at < hi;
        EXECUTE format('ALTER TABLE usage_records ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
            part, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF usage_records FOR VALUES FROM (%L) TO (%L)',
            part, lo, hi);
    END IF;
    RETURN part;
END
$$;

-- The month partitions and their bounds, oldest first (retention, status).
CREATE VIEW usage_partitions AS
SELECT c.relname::text AS name,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                     'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)'))[1]::timestamptz AS lo,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                     'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)'))[2]::timestamptz AS hi
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'usage_records'::regclass
  AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT';
