-- depends: 0002_usage_records
-- Tenant isolation enforced by the database: row-level security on the one usage table.
-- (Why RLS and not a schema per tenant: one table keeps the exporter's batch one COPY + one
-- INSERT for any mix of tenants, the portfolio's views one query, and migrations one DDL; the
-- policy is a single index-friendly equality. docs/usage-store.md has the full argument.)

-- Which tenant each per-tenant role stands for, and the tenant's retention (NULL: the default).
CREATE TABLE usage_tenants (
    tenant           text        PRIMARY KEY,
    role_name        name        NOT NULL UNIQUE,
    retention_months integer     CHECK (retention_months IS NULL OR retention_months >= 1),
    created_at       timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON usage_tenants FROM PUBLIC;

-- The tenant a role stands for (NULL for any other role). SECURITY DEFINER: tenant roles may not
-- read usage_tenants itself.
CREATE FUNCTION usage_role_tenant(role name) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$ SELECT tenant FROM usage_tenants WHERE role_name = role $$;
REVOKE ALL ON FUNCTION usage_role_tenant(name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION usage_role_tenant(name) TO ocs_tenant;

ALTER TABLE usage_records ENABLE ROW LEVEL SECURITY;
-- FORCE: the owner too is subject to the policies when it reads through usage_records.
ALTER TABLE usage_records FORCE ROW LEVEL SECURITY;

-- The scalar subquery makes the tenant an InitPlan: computed once per query, and the comparison
-- stays an index condition on (tenant, ...).
CREATE POLICY usage_tenant_read ON usage_records FOR SELECT TO ocs_tenant
    USING (tenant = (SELECT usage_role_tenant(current_user)));
CREATE POLICY usage_portfolio_read ON usage_records FOR SELECT TO ocs_portfolio
    USING (true);
CREATE POLICY usage_writer_read ON usage_records FOR SELECT TO ocs_writer
    USING (true);
CREATE POLICY usage_writer_insert ON usage_records FOR INSERT TO ocs_writer
    WITH CHECK (true);

-- Rights: nobody but the owner may UPDATE or DELETE; the partitions themselves (usage_records_*)
-- are granted to nobody, so the policies cannot be walked around by naming a partition.
REVOKE ALL ON usage_records FROM PUBLIC;
GRANT SELECT ON usage_records TO ocs_tenant, ocs_portfolio;
GRANT SELECT, INSERT ON usage_records TO ocs_writer;
GRANT SELECT ON usage_partitions TO ocs_portfolio;
REVOKE ALL ON FUNCTION usage_ensure_month(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION usage_ensure_month(date) TO ocs_writer;

-- The writer stages each batch in a temporary table.
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO ocs_writer',
                   current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO ocs_portfolio, ocs_tenant',
                   current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO ocs_writer, ocs_portfolio, ocs_tenant',
                   current_schema());
END
$$;
