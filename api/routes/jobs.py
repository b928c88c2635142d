"""Jobs started over HTTP: a site refresh (202 with a job id) and the job's state.

Refreshes go through ``jobs.pipeline`` like the CLI and the scheduler do, so they take the same
per-site lock, use the configured imagery provider and are listed by ``sitewatch jobs``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field

from api.auth import OfficerDep
from api.deps import EngineDep, SettingsDep
from api.routes.sites import visible_site
from jobs import pipeline
from store.jobs_repo import JobNotFoundError, JobRecord

router = APIRouter()


class RefreshCreate(BaseModel):
    """Options of a refresh."""

    as_of: date | None = Field(None, description="Day to compute progress for (default: today, UTC)")


def _job_json(job: JobRecord) -> dict[str, Any]:
    return {**job.to_json(), "href": f"/v1/jobs/{job.id}"}


@router.post("/sites/{site_id}/refresh", summary="Refresh a site's progress (officer)", status_code=202)
def refresh(
    site_id: str,
    request: Request,
    response: Response,
    engine: EngineDep,
    settings: SettingsDep,
    principal: OfficerDep,
    body: Annotated[RefreshCreate | None, Body()] = None,
) -> dict[str, Any]:
    """Start a refresh in the background; poll ``GET /v1/jobs/{id}`` (the Location header) for its outcome."""
    site = visible_site(engine, principal, site_id)
    job_id = pipeline.submit_refresh(engine, settings, site.id, "api", as_of=body.as_of if body is not None else None)
    request.app.state.metrics.inc("sitewatch_refresh_jobs_total", {"trigger": "api"})
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return _job_json(pipeline.get_job(engine, job_id))


@router.get("/jobs/{job_id}", summary="A job's state and outcome")
def get_job(job_id: str, engine: EngineDep, principal: OfficerDep) -> dict[str, Any]:
    """Queued -> running -> ok, skipped or failed (with the reason)."""
    job = pipeline.get_job(engine, job_id)
    if job.site_id is not None and not principal.sees_site(job.site_id):
        raise JobNotFoundError(job_id)  # indistinguishable from a missing job
    return _job_json(job)
