"""Routes of the bulk subscriber import (``ocs.api.imports``): upload a CSV (202 and a job),
follow the job, download its rejects report. Scoped like every operator route."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from ocs.api import audit, imports
from ocs.api.auth import principal, scope_guard
from ocs.api.csv_import import rejects_csv
from ocs.api.errors import ERRORS, NotFound
from ocs.api.models import ErrorBody, ImportJob, ImportJobs
from ocs.api.operator import Tenant_, _source, _state, _tenant

JobId = Annotated[str, Parameter(description="import job id", pattern=r"^imp-[0-9a-f]{16}$")]
UPLOAD_ERRORS = {
    **ERRORS,
    413: ResponseSpec(data_container=ErrorBody, description="the file is over api.body_bytes_max"),
}


@post(
    "/imports",
    responses=UPLOAD_ERRORS,
    opt={"role": "operate", "csv_body": True},
    status_code=202,
    summary="Bulk subscriber import: upload a CSV (text/csv), answered 202 with the job",
    description=(
        "Columns (header line): subscriber (required), imsi, balance, credit_limit. "
        "The job runs in the background; follow it at its URL (Location)."
    ),
)
async def create_import(request: Request[Any, Any, Any], tenant: Tenant_) -> Response[ImportJob]:
    state = _state(request)
    key = await principal(request)
    data = await request.body()
    job = await imports.create_job(state, tenant, data, actor=key.key_id, source=_source(request))
    state.wake_imports()
    await audit.record(
        state, tenant=tenant, actor=key.key_id, source=_source(request),
        action="subscriber.import", target=job.job_id, status=202,
        after={"job": job.job_id, "rows": job.rows_total, "bytes": len(data)},
    )  # fmt: skip
    location = f"/api/v1/tenants/{tenant}/imports/{job.job_id}"
    return Response(job, status_code=202, headers={"Location": location})


@get(
    "/imports", responses=ERRORS, opt={"role": "read"}, summary="The tenant's imports, newest first"
)
async def list_imports(request: Request[Any, Any, Any], tenant: Tenant_) -> ImportJobs:
    state = _state(request)
    await _tenant(state, tenant)
    return ImportJobs(await imports.list_jobs(state, tenant))


@get(
    "/imports/{job:str}",
    responses=ERRORS,
    opt={"role": "read"},
    summary="An import's state, progress (rows done of total), counts and first rejects",
)
async def get_import(request: Request[Any, Any, Any], tenant: Tenant_, job: JobId) -> ImportJob:
    state = _state(request)
    await _tenant(state, tenant)
    found = await imports.read_job(state, tenant, job)
    if found is None:
        raise NotFound(f"unknown import job {job!r} in tenant {tenant!r}")
    return found


@get(
    "/imports/{job:str}/rejects",
    responses=ERRORS,
    opt={"role": "read"},
    media_type="text/csv",
    summary="An import's rejects report as CSV: line,reason",
)
async def import_rejects(
    request: Request[Any, Any, Any], tenant: Tenant_, job: JobId
) -> Response[str]:
    state = _state(request)
    await _tenant(state, tenant)
    rows = await imports.read_rejects(state, tenant, job)
    return Response(
        rejects_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{job}-rejects.csv"'},
    )


router = Router(
    path="/api/v1/tenants/{tenant:str}",
    route_handlers=[create_import, list_imports, get_import, import_rejects],
    guards=[scope_guard],
    tags=["operator"],
)
