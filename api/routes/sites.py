"""Sites as GeoJSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from aoi.portfolio import portfolio_to_feature_collection, site_to_feature
from api.deps import EngineDep
from store import repo

router = APIRouter()


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type (RFC 7946)."""

    media_type = "application/geo+json"


def _bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    if raw is None:
        return None
    try:
        parts = [float(v) for v in raw.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or not (parts[0] <= parts[2] and parts[1] <= parts[3]):
        raise HTTPException(422, f"bbox: {raw!r} must be four numbers west,south,east,north (degrees)")
    return (parts[0], parts[1], parts[2], parts[3])


@router.get("", summary="Sites as a GeoJSON FeatureCollection", response_class=GeoJSONResponse)
def list_sites(
    engine: EngineDep,
    bbox: Annotated[str | None, Query(description="west,south,east,north in degrees (WGS84)")] = None,
    region: Annotated[str | None, Query(max_length=32)] = None,
    q: Annotated[str | None, Query(max_length=100, description="Text in id, name or loan id")] = None,
) -> dict[str, Any]:
    """Every site matching the filters, with its plan, as RFC 7946 GeoJSON."""
    sites = repo.list_sites(engine, bbox_wgs84=_bbox(bbox), region=region, text=q)
    return portfolio_to_feature_collection(sites)


@router.get("/{site_id}", summary="One site with its plan", response_class=GeoJSONResponse)
def get_site(site_id: str, engine: EngineDep) -> dict[str, Any]:
    """One site as a GeoJSON Feature, with its planned-progress curve."""
    site = repo.get_site(engine, site_id)
    feature = site_to_feature(site)
    feature["properties"]["plan"]["start"] = site.plan.start.isoformat()
    feature["properties"]["plan"]["end"] = site.plan.end.isoformat()
    return feature
