-- depends: 0003_isolation
-- The writer may INSERT (only) into the month partitions, so a batch with nothing already
-- stored is one COPY into its month instead of COPY + INSERT ... ON CONFLICT. Partitions have
-- no row-level security of their own: the writer gets no SELECT, UPDATE or DELETE on them, and
-- nobody else any right at all.
CREATE OR REPLACE FUNCTION usage_ensure_month(month_start date) RETURNS text
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
    -- The writer COPYs a batch straight into its month (usage/store.py fast path): INSERT only.
    EXECUTE format('GRANT INSERT ON %I TO ocs_writer', part);
    RETURN part;
END
$$;


DO $$
DECLARE
    part text;
BEGIN
    FOR part IN SELECT name FROM usage_partitions LOOP
        EXECUTE format('GRANT INSERT ON %I TO ocs_writer', part);
    END LOOP;
END
$$;
