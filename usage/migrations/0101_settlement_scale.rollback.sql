ALTER FUNCTION settlement_records(text, text, timestamptz, timestamptz, timestamptz,
    timestamptz, text, text, text[], text[], text[], text[]) PARALLEL UNSAFE;
ALTER FUNCTION settlement_period_records(bigint) PARALLEL UNSAFE;
ALTER FUNCTION settlement_within(bigint, bigint, bigint, bigint) PARALLEL UNSAFE;
DROP TRIGGER settlement_period_drop_detail ON settlement_periods;
DROP FUNCTION settlement_period_drop_detail();
DROP TRIGGER settlement_detail_period_update ON settlement_detail_records;
DROP TRIGGER settlement_detail_period_insert ON settlement_detail_records;
DROP FUNCTION settlement_detail_period_check();
ALTER TABLE settlement_detail_records ADD CONSTRAINT settlement_detail_records_period_id_fkey
    FOREIGN KEY (period_id) REFERENCES settlement_periods ON DELETE CASCADE;
