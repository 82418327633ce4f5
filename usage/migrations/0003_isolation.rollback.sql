DROP POLICY usage_writer_insert ON usage_records;
DROP POLICY usage_writer_read ON usage_records;
DROP POLICY usage_portfolio_read ON usage_records;
DROP POLICY usage_tenant_read ON usage_records;
ALTER TABLE usage_records NO FORCE ROW LEVEL SECURITY;
ALTER TABLE usage_records DISABLE ROW LEVEL SECURITY;
DROP FUNCTION usage_role_tenant(name);
DROP TABLE usage_tenants;
