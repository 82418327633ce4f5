ALTER FUNCTION settlement_records(text, text, timestamptz, timestamptz, timestamptz,
    timestamptz, text, text, text[], text[], text[], text[]) PARALLEL UNSAFE;
ALTER FUNCTION settlement_period_records(bigint) PARALLEL UNSAFE;
ALTER FUNCTION settlement_within(bigint, bigint, bigint, bigint) PARALLEL UNSAFE;
