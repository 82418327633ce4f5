-- depends: 0202_api_jobs
-- A fourth key role, 'proxy': a SIP proxy's key, good only for the call-end / re-authorisation
-- endpoints of `ocs serve` for its own tenants (never for the API's resources). A proxy key is
-- always tenant-scoped. `ocs serve` does not read this table: it checks proxy keys against their
-- copy in Redis (docs/api.md, "Proxy keys").
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('read', 'operate', 'admin', 'proxy'));
ALTER TABLE api_keys ADD CONSTRAINT api_keys_proxy_tenant_check
    CHECK (role <> 'proxy' OR scope = 'tenant');
