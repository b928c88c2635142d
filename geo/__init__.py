"""Spatial primitives: CRS choice, grids, rasterising, areas. No domain words here."""

from geo.area import geodesic_area_m2
from geo.crs import WGS84, reproject_geometry, utm_crs_for, utm_epsg_for
from geo.grid import Grid, grid_for, rasterize_mask
from geo.types import BBox

__all__ = [
    "WGS84",
    "BBox",
    "Grid",
    "geodesic_area_m2",
    "grid_for",
    "rasterize_mask",
    "reproject_geometry",
    "utm_crs_for",
    "utm_epsg_for",
]
