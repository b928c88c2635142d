"""Pixel grids: one fixed, north-up grid per area so every scene aligns pixel for pixel."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from affine import Affine
from pyproj import CRS
from rasterio import features
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from geo.crs import WGS84, reproject_geometry, utm_crs_for
from geo.types import BBox


@dataclass(frozen=True, slots=True)
class Grid:
    """A north-up raster grid.

    Attributes:
        crs: Projected CRS (usually UTM) as an EPSG string such as ``"EPSG:32633"``.
        transform: Affine from pixel (col, row) to CRS coordinates of the upper-left corner.
        width: Number of columns.
        height: Number of rows.
    """

    crs: str
    transform: Affine
    width: int
    height: int

    @property
    def resolution_m(self) -> float:
        """Pixel size in CRS units (metres for UTM)."""
        return float(self.transform.a)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), the (y, x) shape of a band on this grid."""
        return (self.height, self.width)

    @property
    def bounds(self) -> BBox:
        """(minx, miny, maxx, maxy) in the grid's CRS."""
        left, top = self.transform.c, self.transform.f
        return (left, top - self.height * self.resolution_m, left + self.width * self.resolution_m, top)

    @property
    def bbox_wgs84(self) -> BBox:
        """(west, south, east, north) in degrees."""
        g = reproject_geometry(box(*self.bounds), self.crs, WGS84)
        minx, miny, maxx, maxy = g.bounds
        return (minx, miny, maxx, maxy)

    def xy_coords(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Pixel-centre x (columns) and y (rows) coordinates in the grid's CRS."""
        res = self.resolution_m
        xs = self.transform.c + (np.arange(self.width, dtype=np.float64) + 0.5) * res
        ys = self.transform.f - (np.arange(self.height, dtype=np.float64) + 0.5) * res
        return xs, ys

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable description (for manifests and cache keys)."""
        return {"crs": self.crs, "transform": list(self.transform)[:6], "width": self.width, "height": self.height}

    def key(self) -> str:
        """A short stable string identifying this grid (used in cache keys)."""
        left, _, _, top = self.bounds
        return f"{self.crs.replace(':', '')}_{self.resolution_m:g}m_{left:.0f}_{top:.0f}_{self.width}x{self.height}"


def grid_for(
    geometry_wgs84: BaseGeometry,
    *,
    resolution_m: float = 10.0,
    buffer_m: float = 100.0,
    crs: CRS | str | None = None,
) -> Grid:
    """The grid that covers a WGS84 geometry plus a buffer, snapped to whole pixels.

    The origin is snapped to a multiple of the resolution so grids of neighbouring
    areas share pixel edges and a site's grid never moves between refreshes.

    Args:
        geometry_wgs84: Area of interest in EPSG:4326 (lon, lat).
        resolution_m: Pixel size in metres.
        buffer_m: Margin added around the geometry, in metres.
        crs: Target CRS; default the UTM zone of the geometry's centroid.
    """
    if resolution_m <= 0:
        raise ValueError(f"resolution_m must be positive, got {resolution_m}")
    target = CRS.from_user_input(crs) if crs is not None else utm_crs_for(geometry_wgs84)
    projected = reproject_geometry(geometry_wgs84, WGS84, target)
    minx, miny, maxx, maxy = projected.buffer(buffer_m).bounds
    left = math.floor(minx / resolution_m) * resolution_m
    bottom = math.floor(miny / resolution_m) * resolution_m
    right = math.ceil(maxx / resolution_m) * resolution_m
    top = math.ceil(maxy / resolution_m) * resolution_m
    width = round((right - left) / resolution_m)
    height = round((top - bottom) / resolution_m)
    epsg = target.to_epsg()
    crs_str = f"EPSG:{epsg}" if epsg else target.to_string()
    return Grid(crs_str, Affine(resolution_m, 0.0, left, 0.0, -resolution_m, top), width, height)


def rasterize_mask(geometry_wgs84: BaseGeometry, grid: Grid, *, all_touched: bool = False) -> npt.NDArray[np.bool_]:
    """Burn a WGS84 geometry onto a grid.

    Returns:
        A (y, x) boolean mask, True for pixels whose centre lies inside the geometry
        (or that it touches at all, with ``all_touched``).
    """
    if geometry_wgs84.is_empty:
        return np.zeros(grid.shape, dtype=bool)
    projected = reproject_geometry(geometry_wgs84, WGS84, grid.crs)
    burned = features.rasterize(
        [(mapping(projected), 1)],
        out_shape=grid.shape,
        transform=grid.transform,
        fill=0,
        dtype="uint8",
        all_touched=all_touched,
    )
    mask: npt.NDArray[np.bool_] = burned.astype(bool)
    return mask
