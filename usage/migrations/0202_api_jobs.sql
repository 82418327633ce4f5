-- depends: 0201_api
-- The API's asynchronous jobs (a bulk subscriber import from CSV) and their rejected rows.
--
-- A job row is written by the API process that accepts the upload and then worked by whichever
-- API process claims it (a lease, so a process that dies mid-job leaves it to another). The
-- uploaded CSV is kept in the row: the job survives a restart and resumes at rows_done.
-- Tenants read and advance only their own jobs (row-level security); claiming across tenants
-- is the owner's (the worker's scheduler), everything else runs as the tenant's own role.
CREATE TABLE api_jobs (
    job_id         text        PRIMARY KEY,
    tenant         text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('subscriber_import')),
    actor          text        NOT NULL,           -- the key id that created it
    source         text        NOT NULL,           -- the creator's address
    state          text        NOT NULL DEFAULT 'queued'
                               CHECK (state IN ('queued', 'running', 'done', 'failed')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    lease_until    timestamptz NOT NULL DEFAULT '-infinity',
    input          bytea       NOT NULL,           -- the uploaded CSV, as received
    rows_total     integer     NOT NULL CHECK (rows_total >= 0),
    rows_done      integer     NOT NULL DEFAULT 0 CHECK (rows_done >= 0),
    created_count  integer     NOT NULL DEFAULT 0,
    rejected_count integer     NOT NULL DEFAULT 0,
    error          text        NOT NULL DEFAULT '',
    CHECK (rows_done <= rows_total)
);
CREATE INDEX api_jobs_tenant ON api_jobs (tenant, created_at);
CREATE INDEX api_jobs_due ON api_jobs (lease_until) WHERE state IN ('queued', 'running');
REVOKE ALL ON api_jobs FROM PUBLIC;

CREATE TABLE api_job_rejects (
    job_id   text    NOT NULL REFERENCES api_jobs (job_id) ON DELETE CASCADE,
    tenant   text    NOT NULL,
    line     integer NOT NULL,                     -- the CSV line (1 is the header)
    reason   text    NOT NULL,
    PRIMARY KEY (job_id, line)
);
REVOKE ALL ON api_job_rejects FROM PUBLIC;

ALTER TABLE api_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_jobs FORCE ROW LEVEL SECURITY;
ALTER TABLE api_job_rejects ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_job_rejects FORCE ROW LEVEL SECURITY;
CREATE POLICY api_jobs_owner ON api_jobs FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY api_job_rejects_owner ON api_job_rejects FOR ALL TO CURRENT_USER
    USING (true) WITH CHECK (true);
-- A tenant's role sees, creates and advances its own jobs only (never a sibling's).
CREATE POLICY api_jobs_tenant ON api_jobs FOR ALL TO ocs_tenant
    USING (tenant = (SELECT usage_role_tenant(current_user)))
    WITH CHECK (tenant = (SELECT usage_role_tenant(current_user)));
CREATE POLICY api_job_rejects_tenant ON api_job_rejects FOR ALL TO ocs_tenant
    USING (tenant = (SELECT usage_role_tenant(current_user)))
    WITH CHECK (tenant = (SELECT usage_role_tenant(current_user)));
GRANT SELECT, INSERT, UPDATE ON api_jobs TO ocs_tenant;
GRANT SELECT, INSERT ON api_job_rejects TO ocs_tenant;
