"""Jobs started over HTTP: a site refresh (202 with a job id) and the job's state."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field

from api.auth import OfficerDep, Principal
from api.deps import EngineDep
from api.refresh_jobs import RefreshRunner
from api.routes.sites import visible_site
from store import api_repo

router = APIRouter()


class RefreshCreate(BaseModel):
    """Options of a refresh."""

    as_of: date | None = Field(None, description="Day to compute progress for (default: today, UTC)")


def _job_json(job: api_repo.JobRecord) -> dict[str, Any]:
    def iso(v: Any) -> Any:
        return v.isoformat() if v is not None else None

    return {
        "id": job.id,
        "kind": job.kind,
        "site_id": job.site_id,
        "status": job.status,
        "reason": job.reason,
        "created_at": iso(job.created_at),
        "created_by": job.created_by,
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "detail": job.detail,
        "href": f"/v1/jobs/{job.id}",
    }


@router.post("/sites/{site_id}/refresh", summary="Refresh a site's progress (officer)", status_code=202)
def refresh(
    site_id: str,
    request: Request,
    response: Response,
    engine: EngineDep,
    principal: OfficerDep,
    body: Annotated[RefreshCreate | None, Body()] = None,
) -> dict[str, Any]:
    """Start a refresh in the background; poll ``GET /v1/jobs/{id}`` (the Location header) for its outcome."""
    site = visible_site(engine, principal, site_id)
    runner: RefreshRunner = request.app.state.refresh_runner
    as_of = (body.as_of if body is not None else None) or date.today()
    job = runner.submit(site, actor=principal.actor, as_of=as_of)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return _job_json(job)


def _visible_job(engine: Any, principal: Principal, job_id: str) -> api_repo.JobRecord:
    job = api_repo.get_job(engine, job_id)
    if not principal.sees_site(job.site_id):
        raise api_repo.JobNotFoundError(f"job {job_id!r} not found")
    return job


@router.get("/jobs/{job_id}", summary="A job's state and outcome")
def get_job(job_id: str, engine: EngineDep, principal: OfficerDep) -> dict[str, Any]:
    """Queued -> running -> ok, skipped or failed (with the reason)."""
    return _job_json(_visible_job(engine, principal, job_id))
