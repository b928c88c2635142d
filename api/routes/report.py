"""A site's report for the credit file (PDF) and the daily sensor activity it charts (JSON for the site view)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.auth import OfficerDep
from api.deps import EngineDep, SettingsDep
from api.routes.sites import visible_site
from jobs.report import ACTIVITY_DAYS, gather_site_report, report_as_of, report_pdf, site_activity

logger = logging.getLogger(__name__)

router = APIRouter()

PDF = "application/pdf"


@router.get(
    "/{site_id}/report.pdf",
    summary="The site's PDF report for the credit file",
    response_class=Response,
    responses={200: {"content": {PDF: {}}, "description": "A two-page A4 PDF"}, 404: {"description": "No such site"}},
)
def get_report(site_id: str, engine: EngineDep, settings: SettingsDep, principal: OfficerDep) -> Response:
    """A two-page PDF of the site for the credit file, rendered now from the stored figures.

    It holds the map snapshot (newest clear scene, change overlay, footprints per phase), the
    progress and activity charts, the key figures, the score with its drivers and history, the
    unresolved alerts, the watch-list case, the scenes used and skipped, the estimator and the
    generation time.
    """
    visible_site(engine, principal, site_id)
    pdf = report_pdf(gather_site_report(engine, settings, site_id))
    logger.info("site report rendered", extra={"site_id": site_id, "key_id": principal.key_id})
    return Response(
        pdf,
        media_type=PDF,
        headers={"Content-Disposition": f'attachment; filename="{site_id}-report.pdf"', "Cache-Control": "no-store"},
    )


@router.get("/{site_id}/activity", summary="Daily site activity from sensors")
def get_activity(
    site_id: str,
    engine: EngineDep,
    principal: OfficerDep,
    days: Annotated[int, Query(ge=1, le=366, description="Days ending on the as-of day")] = ACTIVITY_DAYS,
) -> dict[str, Any]:
    """One row per UTC day up to the site's progress as-of day (else its loan's score day, else today).

    ``activity_index`` is the day's activity against the site's trailing baseline (1 = usual, 0 =
    none, null when there is nothing to compare); the other figures are the day's sums, null for a gap.
    """
    site = visible_site(engine, principal, site_id)
    as_of = report_as_of(engine, site, today=datetime.now(UTC).date())
    rows = site_activity(engine, site_id, as_of, days=days)
    items = [
        {
            "day": f.day.isoformat(),
            "activity_index": f.activity_index,
            "equipment_hours": f.equipment_hours,
            "workforce": f.workforce,
            "deliveries": f.deliveries,
            "concrete_m3": f.concrete_m3,
            "power_kwh": f.power_kwh,
            "readings": f.readings,
            "sensors_reporting": f.sensors_reporting,
            "gaps": list(f.gaps),
            "site_silent": f.site_silent,
        }
        for f in rows
    ]
    return {"site_id": site_id, "as_of": as_of.isoformat(), "count": len(items), "items": items}
