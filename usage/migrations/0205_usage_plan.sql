-- depends: 0204_settlement_statement_views
-- The subscriber's plan on every stored record (usage/row.py UsageRow.plan): resolved at
-- ingestion like the tenant and carried on the record's context, so a billing system sees which
-- plan priced the usage without replaying plan changes. '' when the subscriber is on no plan (or
-- the record predates plans). Added to the partitioned table, so every month's partition and the
-- default partition get it; the table-level grants cover it.
ALTER TABLE usage_records ADD COLUMN plan text NOT NULL DEFAULT '';
