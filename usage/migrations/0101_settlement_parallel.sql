-- depends: 0100_settlement
-- settlement_records reads only parallel-safe expressions of usage_records; marked so, the
-- planner may scan a month's partitions with parallel workers (a function left at the default,
-- PARALLEL UNSAFE, keeps every query that inlines it to one process).
ALTER FUNCTION settlement_records(text, text, timestamptz, timestamptz, timestamptz,
    timestamptz, text, text, text[], text[], text[], text[]) PARALLEL SAFE;
ALTER FUNCTION settlement_period_records(bigint) PARALLEL SAFE;
ALTER FUNCTION settlement_within(bigint, bigint, bigint, bigint) PARALLEL SAFE;
