-- depends:
-- The product's group roles (NOLOGIN). The store's login (the schema owner) switches to one of
-- them per transaction with SET LOCAL ROLE, so each query runs with only that role's rights:
--   ocs_writer     the exporter: INSERT and SELECT of every tenant's rows, never UPDATE/DELETE
--   ocs_portfolio  the aggregator's views: SELECT of every tenant's rows
--   ocs_tenant     the group of the per-tenant roles ocs_t_<tenant> (UsageStore.ensure_tenant):
--                  SELECT of the rows of its own tenant only (row-level security, 0003)
-- Roles are cluster-wide: a second database of the same cluster reuses them.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['ocs_writer', 'ocs_portfolio', 'ocs_tenant'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

-- The owner must be a member to SET ROLE to them.
GRANT ocs_writer, ocs_portfolio TO CURRENT_USER;
