"""Progress against plan: one site's (JSON or CSV) and its scenes, and the whole portfolio's in pages."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from aoi.records import ProgressSummary
from api.auth import ScoreReaderDep
from api.cache import strong_etag
from api.deps import EngineDep
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor, page_response
from api.routes.sites import visible_site
from store import progress_repo, repo

#: Routes under /v1/sites/{site_id}.
router = APIRouter()
#: Portfolio-wide routes under /v1.
portfolio_router = APIRouter()

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


class ProgressSummaryPublic(BaseModel):
    """One site's newest progress figures, as the portfolio table shows them."""

    site_id: str
    as_of: date = Field(description="The day the figures are for")
    planned_pct: float = Field(description="Percent complete the plan expects by as_of")
    observed_pct: float | None = Field(description="Fitted percent complete at as_of (null before any observation)")
    lower_pct: float | None = Field(description="Lower edge of the confidence band at as_of")
    upper_pct: float | None = Field(description="Upper edge of the confidence band at as_of")
    deviation_pp: float | None = Field(description="observed_pct - planned_pct, percentage points")
    slip_days: int | None = Field(description="Days behind plan (earned schedule); negative when ahead")
    stalled: bool = Field(description="The plan expects progress and none was seen for the stall window")
    stall_check: str | None = Field(
        default=None,
        description='"stalled", "not_stalled", "not_expected" (no visible progress due), "insufficient" '
        '(too few clear scenes in the window to tell) or "disputed" (imagery saw a stop, the site\'s '
        "sensors saw it at work)",
    )
    stall_witnesses: list[str] = Field(
        default_factory=list,
        description='What saw the stop when stalled: "imagery" (no progress in the scenes), "sensors" '
        "(the site's machines and crews idle while the plan expects work), or both",
    )
    last_observation: date | None = Field(description="Sensing day of the newest usable scene")
    method: str = Field(description='"baseline:<name>" or "model:<checkpoint>@<sha12>"')

    @classmethod
    def of(cls, s: ProgressSummary) -> ProgressSummaryPublic:
        """The public fields of a stored summary."""
        return cls(
            site_id=s.site_id,
            as_of=s.as_of,
            planned_pct=s.planned_pct,
            observed_pct=s.observed_pct,
            lower_pct=s.lower_pct,
            upper_pct=s.upper_pct,
            deviation_pp=s.deviation_pp,
            slip_days=s.slip_days,
            stalled=s.stalled,
            stall_check=s.stall_check,
            stall_witnesses=list(s.stall_witnesses),
            last_observation=s.last_observation,
            method=s.method,
        )


class ProgressPage(BaseModel):
    """A page of the portfolio's progress, one item per site in site id order."""

    count: int
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")
    items: list[ProgressSummaryPublic]


@portfolio_router.get(
    "/progress",
    summary="Every site's newest progress against plan, paginated (one request for a portfolio table)",
    response_model=ProgressPage,
    responses={
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        400: {"description": "Bad cursor"},
    },
)
def list_progress(
    request: Request,
    engine: EngineDep,
    principal: ScoreReaderDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Sites per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The newest summary of each site the key may see, in site id order.

    Each item has planned vs observed percent, deviation, slip days, the stall flag and the
    as-of day: what a portfolio table needs without one request per site. Sites with no
    progress computed yet are absent. Follow ``next_cursor`` (also in the ``Link`` header)
    until it is null; every site appears exactly once. Strong ETag and ``If-None-Match``.
    """
    after = decode_cursor(cursor) if cursor else None
    rows = progress_repo.latest_summary_page(engine, after_site_id=after, limit=limit + 1, site_ids=principal.sites)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].site_id) if more and rows else None
    page = ProgressPage(count=len(rows), next_cursor=next_cursor, items=[ProgressSummaryPublic.of(s) for s in rows])
    body = page.model_dump_json().encode()
    return page_response(request, body, strong_etag(body), next_cursor, if_none_match)
