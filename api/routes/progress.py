"""A site's progress against plan (JSON or CSV) and its scenes, used or skipped with the reason."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from api.auth import ScoreReaderDep
from api.deps import EngineDep
from api.routes.sites import visible_site
from store import progress_repo, repo

router = APIRouter()

CSV_COLUMNS = ("on", "planned_pct", "observed_pct", "lower_pct", "upper_pct")


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept


@router.get(
    "/{site_id}/progress",
    summary="Progress against plan: summary and curve (JSON, or CSV for spreadsheets)",
    responses={
        200: {"content": {"application/json": {}, "text/csv": {"example": ",".join(CSV_COLUMNS) + "\n"}}},
        404: {"description": "No such site, or no progress computed yet"},
    },
)
def get_progress(
    site_id: str,
    request: Request,
    engine: EngineDep,
    principal: ScoreReaderDep,
    format: Annotated[Literal["json", "csv"] | None, Query(description="Overrides the Accept header")] = None,
) -> Response:
    """The newest summary (planned vs observed, deviation, slip, forecast, stall) and the fitted series.

    ``Accept: text/csv`` or ``?format=csv`` returns the series as CSV (one row per date).
    """
    visible_site(engine, principal, site_id)
    latest = progress_repo.latest_progress(engine, site_id)
    if latest is None:
        raise HTTPException(404, f"no progress computed yet for site {site_id!r}")
    summary, points, inputs = latest
    if _wants_csv(request, format):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for p in points:
            writer.writerow([p.on.isoformat(), p.planned_pct, p.observed_pct, p.lower_pct, p.upper_pct])
        return Response(
            buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{site_id}-progress.csv"', "Vary": "Accept"},
        )
    body: dict[str, Any] = {
        "site_id": site_id,
        "summary": progress_repo.summary_to_json(summary),
        "series": [{**asdict(p), "on": p.on.isoformat()} for p in points],
        "provenance": {
            "method": inputs.get("method"),
            "inputs_sha256": inputs.get("inputs_sha256"),
            "scenes_used": len(inputs.get("scenes_used", [])),
            "baseline_scenes": len(inputs.get("baseline_scenes", [])),
        },
    }
    return JSONResponse(body, headers={"Vary": "Accept"})


@router.get("/{site_id}/scenes", summary="A site's scenes: cloud fraction, used or skipped with the reason")
def get_scenes(site_id: str, engine: EngineDep, principal: ScoreReaderDep) -> dict[str, Any]:
    """Every scene recorded for the site in time order, with tile links for each used one."""
    visible_site(engine, principal, site_id)
    items = []
    for r in repo.list_scene_records(engine, site_id):
        base = f"/v1/sites/{site_id}/scenes/{r.scene_id}"
        items.append(
            {
                "scene_id": r.scene_id,
                "provider": r.provider,
                "acquired_at": r.acquired_at_utc.isoformat(),
                "cloud_pct": r.cloud_pct,
                "cloud_fraction": None if r.cloud_pct is None else round(r.cloud_pct / 100.0, 4),
                "valid_fraction": r.valid_fraction,
                "used": r.used,
                "reason": r.reason,
                "tilejson": f"{base}/tilejson.json",
                "change_tilejson": f"{base}/change/tilejson.json",
            }
        )
    return {"site_id": site_id, "count": len(items), "items": items}
