DROP FUNCTION settlement_within(bigint, bigint, bigint, bigint);
DROP FUNCTION settlement_period_records(bigint);
DROP FUNCTION settlement_records(text, text, timestamptz, timestamptz, timestamptz, timestamptz,
    text, text, text[], text[], text[], text[]);
DROP VIEW settlement_period_states;
DROP TABLE settlement_statements, settlement_discrepancies, settlement_dispute_events,
    settlement_disputes, settlement_allocations, settlement_detail_records,
    settlement_invoice_lines, settlement_transitions, settlement_periods;
DROP POLICY usage_settlement_read ON usage_records;
REVOKE SELECT ON usage_records FROM ocs_settlement;
-- The role is cluster-wide and may serve other databases: only our membership goes.
REVOKE ocs_settlement FROM CURRENT_USER;
