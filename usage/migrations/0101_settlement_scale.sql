-- depends: 0100_settlement
-- Settlement at the scale of a month of millions of records.
-- settlement_records reads only parallel-safe expressions of usage_records; marked so, the
-- planner may scan a month's partitions with parallel workers (a function left at the default,
-- PARALLEL UNSAFE, keeps every query that inlines it to one process).
ALTER FUNCTION settlement_records(text, text, timestamptz, timestamptz, timestamptz,
    timestamptz, text, text, text[], text[], text[], text[]) PARALLEL SAFE;
ALTER FUNCTION settlement_period_records(bigint) PARALLEL SAFE;
ALTER FUNCTION settlement_within(bigint, bigint, bigint, bigint) PARALLEL SAFE;

-- The MNO's detail is millions of rows a period: the foreign key's check ran once per row (40%
-- of the import). One check per statement over the inserted rows instead; a period is never
-- deleted while it has detail (the ON DELETE CASCADE it replaces, kept by a trigger).
ALTER TABLE settlement_detail_records DROP CONSTRAINT settlement_detail_records_period_id_fkey;
CREATE FUNCTION settlement_detail_period_check() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT period_id FROM added) a
               WHERE NOT EXISTS (SELECT 1 FROM settlement_periods p WHERE p.id = a.period_id))
    THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'settlement_detail_records: period_id names no settlement period';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER settlement_detail_period_insert AFTER INSERT ON settlement_detail_records
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION settlement_detail_period_check();
CREATE TRIGGER settlement_detail_period_update AFTER UPDATE ON settlement_detail_records
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION settlement_detail_period_check();
CREATE FUNCTION settlement_period_drop_detail() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM settlement_detail_records WHERE period_id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER settlement_period_drop_detail BEFORE DELETE ON settlement_periods
    FOR EACH ROW EXECUTE FUNCTION settlement_period_drop_detail();
