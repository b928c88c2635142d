"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

import store
from api.deps import EngineDep

router = APIRouter()


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and migrated", responses={503: {"description": "Not ready"}})
def readyz(engine: EngineDep) -> JSONResponse:
    """200 when the database answers and its schema is at the code's head revision."""
    body: dict[str, Any] = {"head": store.head_revision()}
    try:
        body["revision"] = store.current_revision(engine)
    except store.DatabaseUnavailableError as exc:
        return JSONResponse({**body, "status": "database unavailable", "detail": str(exc)}, status_code=503)
    ok = body["revision"] == body["head"]
    body["status"] = "ready" if ok else "migrations pending: run `sitewatch db upgrade`"
    return JSONResponse(body, status_code=200 if ok else 503)
