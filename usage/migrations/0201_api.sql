-- depends: 0004_writer_partitions
-- The API's keys and its audit log (ocs api, ocs apikey). Numbered 02xx to stay clear of the
-- usage store's own 00xx sequence.
--
-- api_keys: one row per key. Only the SHA-256 of the key is kept: a key is 32 random bytes
-- (256 bits), so a fast hash is as good as a slow one against guessing (a slow hash protects
-- low-entropy passwords, not random keys) and keeps each request's check one index lookup.
-- Only the owner (the API process's login) reads or writes it; no product role gets a right.
CREATE TABLE api_keys (
    key_id      text        PRIMARY KEY,        -- the public part, shown in lists and audit
    key_hash    bytea       NOT NULL UNIQUE,    -- sha256 of the whole key
    scope       text        NOT NULL CHECK (scope IN ('portfolio', 'tenant')),
    tenants     text[]      NOT NULL DEFAULT '{}',
    role        text        NOT NULL CHECK (role IN ('read', 'operate', 'admin')),
    label       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    CHECK ((scope = 'portfolio') = (cardinality(tenants) = 0))
);
REVOKE ALL ON api_keys FROM PUBLIC;

-- api_audit: every write through the API (and the key administration), with before and after.
-- Read per tenant as the tenant's own role (row-level security below), across tenants as the
-- portfolio role; written by the owner only; never updated.
CREATE TABLE api_audit (
    audit_id    bigserial   PRIMARY KEY,
    tenant      text        NOT NULL,           -- '' for portfolio-level actions
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,           -- the key id (or 'cli:<user>')
    source      text        NOT NULL,           -- the client's address
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    status      integer     NOT NULL,
    before      jsonb,
    after       jsonb
);
CREATE INDEX api_audit_tenant_at ON api_audit (tenant, audit_id);
REVOKE ALL ON api_audit FROM PUBLIC;
ALTER TABLE api_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_audit FORCE ROW LEVEL SECURITY;
CREATE POLICY api_audit_owner ON api_audit FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY api_audit_tenant_read ON api_audit FOR SELECT TO ocs_tenant
    USING (tenant = (SELECT usage_role_tenant(current_user)));
CREATE POLICY api_audit_portfolio_read ON api_audit FOR SELECT TO ocs_portfolio USING (true);
GRANT SELECT ON api_audit TO ocs_tenant, ocs_portfolio;
