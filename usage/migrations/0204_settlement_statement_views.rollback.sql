DROP INDEX settlement_statements_month;
ALTER TABLE settlement_statements DROP COLUMN view;
