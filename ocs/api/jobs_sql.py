"""Queries of the API's jobs (schema: ``usage/migrations/0202_api_jobs.sql``). Bound parameters
only. Every query but ``CLAIM_JOB`` runs as the tenant's own role (row-level security)."""

from __future__ import annotations

from typing import Final

INSERT_JOB: Final = """
INSERT INTO api_jobs (job_id, tenant, kind, actor, source, input, rows_total)
VALUES (%(job_id)s, %(tenant)s, %(kind)s, %(actor)s, %(source)s, %(input)s, %(rows_total)s)
RETURNING created_at
"""
OPEN_JOBS: Final = """
SELECT count(*) FROM api_jobs WHERE tenant = %s AND state IN ('queued', 'running')
"""
JOB_COLUMNS: Final = (
    "job_id, tenant, kind, actor, state, created_at, started_at, finished_at, rows_total, "
    "rows_done, created_count, rejected_count, error"
)
READ_JOB: Final = f"SELECT {JOB_COLUMNS} FROM api_jobs WHERE tenant = %s AND job_id = %s"
LIST_JOBS: Final = f"""
SELECT {JOB_COLUMNS} FROM api_jobs WHERE tenant = %s ORDER BY created_at DESC, job_id LIMIT %s
"""
READ_REJECTS: Final = """
SELECT line, reason FROM api_job_rejects WHERE tenant = %s AND job_id = %s ORDER BY line
"""

# The owner's scheduler: the oldest job that is queued, or running under a lease that ran out
# (its process died); taken under a fresh lease. SKIP LOCKED: two API processes never take the
# same job at once.
CLAIM_JOB: Final = """
UPDATE api_jobs SET state = 'running', lease_until = %(lease_until)s,
       started_at = coalesce(started_at, %(now)s)
WHERE job_id = (
    SELECT job_id FROM api_jobs
    WHERE state IN ('queued', 'running') AND lease_until < %(now)s
    ORDER BY created_at, job_id
    LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING job_id, tenant
"""
READ_WORK: Final = """
SELECT kind, actor, source, input, rows_done, created_count, rejected_count
FROM api_jobs WHERE tenant = %s AND job_id = %s
"""
INSERT_REJECT: Final = """
INSERT INTO api_job_rejects (job_id, tenant, line, reason) VALUES (%s, %s, %s, %s)
ON CONFLICT (job_id, line) DO NOTHING
"""
# One batch's progress, written in the transaction that records its rejects; the lease moves on.
PROGRESS: Final = """
UPDATE api_jobs SET rows_done = %(rows_done)s, created_count = %(created)s,
       rejected_count = %(rejected)s, lease_until = %(lease_until)s
WHERE tenant = %(tenant)s AND job_id = %(job_id)s AND state = 'running'
"""
# A finished job keeps its counts and rejects, not the uploaded file (up to import_bytes_max).
FINISH: Final = """
UPDATE api_jobs SET state = %(state)s, finished_at = %(now)s, error = %(error)s,
       lease_until = 'infinity', input = ''::bytea
WHERE tenant = %(tenant)s AND job_id = %(job_id)s
"""
