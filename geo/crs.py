"""Coordinate reference systems: UTM zone choice and geometry reprojection."""

from __future__ import annotations

import logging
from functools import lru_cache

import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

logger = logging.getLogger(__name__)

WGS84 = CRS.from_epsg(4326)


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 / UTM zone containing a point.

    Sites that straddle a zone boundary get the zone of their centroid, so each site
    has one grid; the distortion a few kilometres into the neighbouring zone is well
    under a pixel at 10 m. Norway and Svalbard exceptions are deliberately ignored.

    Args:
        lon: Longitude in degrees, WGS84.
        lat: Latitude in degrees, WGS84.

    Returns:
        326NN north of the equator, 327NN south of it.
    """
    if not -180.0 <= lon <= 180.0 or not -90.0 <= lat <= 90.0:
        raise ValueError(f"coordinates out of range: lon={lon}, lat={lat}")
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def utm_crs_for(geometry_wgs84: BaseGeometry) -> CRS:
    """UTM CRS for a WGS84 geometry, chosen by its centroid."""
    c = geometry_wgs84.centroid
    return CRS.from_epsg(utm_epsg_for(c.x, c.y))


@lru_cache(maxsize=256)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


def reproject_geometry(geometry: BaseGeometry, src: CRS | str | int, dst: CRS | str | int) -> BaseGeometry:
    """Reproject a shapely geometry between two CRSs (axis order x, y / lon, lat)."""
    s, d = CRS.from_user_input(src), CRS.from_user_input(dst)
    if s == d:
        return geometry
    t = _transformer(s.to_string(), d.to_string())
    # Vectorised over all vertices at once (shapely.ops.transform is deprecated and per-vertex).
    return shapely.transform(geometry, lambda x, y: t.transform(x, y), interleaved=False)
