-- depends: 0101_settlement_scale 0203_api_proxy_keys
-- An issued statement keeps its whole view (settlement.statement.StatementView as JSON): the
-- sections per host MNO, the disputes, the contract terms and the figures, exactly as issued.
-- The operator API renders HTML, CSV and PDF from it on the tenant's own role; the rows it was
-- built from (periods, invoice lines) stay readable by the settlement role only, and a later
-- dispute answer does not change a statement already sent. Existing rows (issued before this)
-- have none: `ocs settle statement` issues them again.
--
-- settlement_statements' row-level security (0100: a tenant reads its own rows, the portfolio
-- all of them) covers the new column as it covers the others.
ALTER TABLE settlement_statements ADD COLUMN view jsonb;
-- The portfolio lists statements per month (settlement status per operator).
CREATE INDEX settlement_statements_month ON settlement_statements (month, tenant);
