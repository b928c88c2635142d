"""Map tiles of a site's scenes: true colour and the change overlay, with TileJSON documents.

Tiles outside the site's bounds are 404. Rendered tiles are kept in an in-memory LRU and sent
with a strong ETag and ``Cache-Control`` (a scene never changes once recorded).
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from aoi.model import Site
from aoi.records import SceneRecord
from api import tiles
from api.auth import OfficerDep
from api.cache import LRU, etag_matches, strong_etag
from api.deps import EngineDep, SettingsDep
from api.routes.sites import visible_site
from imagery.cache import SceneCache
from imagery.errors import ImageryError
from jobs.overlay import scene_change_probability, write_change_cog
from jobs.pipeline import estimator_for
from jobs.progress import site_grid
from jobs.settings import Settings
from store import repo

logger = logging.getLogger(__name__)

router = APIRouter()

PNG = "image/png"
Layer = Literal["true_colour", "change"]
_TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {PNG: {}}, "description": "A 256x256 PNG"},
    304: {"description": "Not modified"},
    404: {"description": "No such site or scene, or the tile is outside the site's bounds"},
}
_compute_lock = threading.Lock()

Z = Annotated[int, PathParam(ge=0, le=24)]
XY = Annotated[int, PathParam(ge=0)]


def _scene(engine: Any, site: Site, scene_id: str) -> SceneRecord:
    for rec in repo.list_scene_records(engine, site.id):
        if rec.scene_id == scene_id:
            return rec
    raise HTTPException(404, f"scene {scene_id!r} not found for site {site.id!r}")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _change_cog(settings: Settings, site: Site, rec: SceneRecord) -> Path:
    """The scene's change raster, computed once and kept next to the scene cache."""
    path = settings.cache_dir / "change" / _safe(rec.provider) / _safe(site.id) / f"{_safe(rec.scene_id)}.tif"
    if path.exists():
        return path
    with _compute_lock:
        if not path.exists():
            estimator = estimator_for(settings.checkpoint, settings.torch_threads)  # loaded once per process
            try:
                prob, grid = scene_change_probability(settings, site, rec, estimator)
            except ImageryError as exc:
                raise HTTPException(404, f"no change overlay for scene {rec.scene_id!r}: {exc}") from exc
            write_change_cog(path, prob, grid, method=estimator.method)
            logger.info("change overlay written", extra={"site_id": site.id, "scene_id": rec.scene_id})
    return path


def _render(settings: Settings, site: Site, rec: SceneRecord, layer: Layer, z: int, x: int, y: int) -> bytes:
    if layer == "change":
        return tiles.change_png(_change_cog(settings, site, rec), z, x, y)
    cache_cog = SceneCache(settings.cache_dir).path_for(rec.provider, rec.scene_id, site_grid(site))
    scene_dir = settings.resolved_archive_dir / site.id / rec.scene_id
    try:
        return tiles.true_colour_png(cache_cog, [scene_dir / f"{b}.tif" for b in tiles.TRUE_COLOUR], z, x, y)
    except FileNotFoundError as exc:
        raise HTTPException(404, f"scene {rec.scene_id!r}: {exc}") from exc


def _tile(
    request: Request,
    engine: Any,
    settings: Settings,
    principal: Any,
    site_id: str,
    scene_id: str,
    layer: Layer,
    z: int,
    x: int,
    y: int,
    if_none_match: str | None,
) -> Response:
    cache: LRU[tuple[bytes, str]] = request.app.state.tiles
    key = (layer, site_id, scene_id, z, x, y)
    if not principal.sees_site(site_id):
        visible_site(engine, principal, site_id)  # raises the same 404 as a missing site
    hit = cache.get(key)
    if hit is None:
        site = visible_site(engine, principal, site_id)
        if not tiles.tile_touches(site.boundary_wgs84.bounds, z, x, y):
            raise HTTPException(404, f"tile {z}/{x}/{y} is outside site {site_id!r}")
        rec = _scene(engine, site, scene_id)
        png = _render(settings, site, rec, layer, z, x, y)
        hit = (png, strong_etag(png))
        cache.put(key, hit)
    png, etag = hit
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(png, media_type=PNG, headers=headers)


@router.get(
    "/{site_id}/scenes/{scene_id}/tiles/{z}/{x}/{y}.png",
    summary="True-colour tile of a scene",
    response_class=Response,
    responses=_TILE_RESPONSES,
)
def true_colour_tile(
    site_id: str,
    scene_id: str,
    z: Z,
    x: XY,
    y: XY,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    principal: OfficerDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Red, green and blue (B04, B03, B02) stretched over reflectance 0-0.3; transparent where no data."""
    return _tile(request, engine, settings, principal, site_id, scene_id, "true_colour", z, x, y, if_none_match)


@router.get(
    "/{site_id}/scenes/{scene_id}/change/tiles/{z}/{x}/{y}.png",
    summary="Change-probability overlay tile of a scene against the baseline",
    response_class=Response,
    responses=_TILE_RESPONSES,
)
def change_tile(
    site_id: str,
    scene_id: str,
    z: Z,
    x: XY,
    y: XY,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    principal: OfficerDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Change probability vs the pre-construction baseline in red, opacity growing with probability.

    Computed on first request with the configured checkpoint and kept as a COG under the cache.
    """
    return _tile(request, engine, settings, principal, site_id, scene_id, "change", z, x, y, if_none_match)


def _tilejson(
    request: Request, engine: Any, principal: Any, site_id: str, scene_id: str, layer: Layer
) -> dict[str, Any]:
    site = visible_site(engine, principal, site_id)
    _scene(engine, site, scene_id)
    part = "change/tiles" if layer == "change" else "tiles"
    url = f"{str(request.base_url).rstrip('/')}/v1/sites/{site_id}/scenes/{scene_id}/{part}/{{z}}/{{x}}/{{y}}.png"
    what = "change probability vs baseline" if layer == "change" else "true colour"
    return tiles.tilejson(f"{site_id} {scene_id} {layer}", url, site.boundary_wgs84.bounds, description=what)


@router.get("/{site_id}/scenes/{scene_id}/tilejson.json", summary="TileJSON of a scene in true colour")
def true_colour_tilejson(
    site_id: str, scene_id: str, request: Request, engine: EngineDep, principal: OfficerDep
) -> dict[str, Any]:
    """TileJSON 3.0.0 for a map library; bounds are the site's."""
    return _tilejson(request, engine, principal, site_id, scene_id, "true_colour")


@router.get("/{site_id}/scenes/{scene_id}/change/tilejson.json", summary="TileJSON of a scene's change overlay")
def change_tilejson(
    site_id: str, scene_id: str, request: Request, engine: EngineDep, principal: OfficerDep
) -> dict[str, Any]:
    """TileJSON 3.0.0 of the change overlay; bounds are the site's."""
    return _tilejson(request, engine, principal, site_id, scene_id, "change")
