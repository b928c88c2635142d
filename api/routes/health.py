"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

import store
from api.deps import EngineDep
from api.metrics import Metrics

router = APIRouter()


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests (async: no worker thread needed to answer)."""
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


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    """Request counts and latency histograms per route template, refresh jobs and ingest counts (text format 0.0.4)."""
    registry: Metrics = request.app.state.metrics
    return PlainTextResponse(registry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
