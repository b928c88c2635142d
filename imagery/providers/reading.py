"""Read a scene's bands onto a grid as harmonised reflectance (I/O shared by providers)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import rasterio
import xarray as xr

from geo import Grid
from imagery.providers.base import SceneRef
from imagery.providers.raster import GDAL_READ_OPTIONS, read_band_into

logger = logging.getLogger(__name__)


def read_scene(
    scene: SceneRef, grid: Grid, bands: Sequence[str], *, gdal_options: Mapping[str, object] | None = None
) -> xr.DataArray:
    """Read bands of a scene whose assets are GeoTIFF paths or URLs onto a grid.

    Args:
        scene: The scene; its assets name the files (``/vsicurl/`` range requests for URLs).
        grid: Target grid.
        bands: Band names, in output order.
        gdal_options: GDAL configuration options applied over :data:`GDAL_READ_OPTIONS`
            (HTTP timeout and retries of a remote provider, for example).

    Returns:
        (band, y, x) float32 on ``grid``: ``stored * scale + offset`` with NaN where there is
        no data; the band named ``"SCL"`` keeps its class values with 0 where there is no data.

    Raises:
        MissingBandError, SceneUnavailableError, SceneCorruptError, NoOverlapError.
    """
    return scene_array(read_scene_array(scene, grid, bands, gdal_options=gdal_options), grid, bands, scene)


def read_scene_array(
    scene: SceneRef, grid: Grid, bands: Sequence[str], *, gdal_options: Mapping[str, object] | None = None
) -> npt.NDArray[np.float32]:
    """:func:`read_scene` as a bare (band, y, x) float32 array (no labels)."""
    out = np.empty((len(bands), *grid.shape), dtype=np.float32)
    read_scene_into(scene, grid, bands, list(out), gdal_options=gdal_options)
    return out


def read_scene_into(
    scene: SceneRef,
    grid: Grid,
    bands: Sequence[str],
    out: Sequence[npt.NDArray[np.float32]],
    *,
    gdal_options: Mapping[str, object] | None = None,
) -> None:
    """:func:`read_scene` into caller-owned (y, x) float32 buffers, one per band (slices of a cube).

    Each band is decoded straight into its buffer and harmonised in place, so assembling a
    datacube costs no intermediate arrays or copies.

    Raises:
        MissingBandError: before any I/O, when the scene lacks a band.
        SceneUnavailableError, SceneCorruptError, NoOverlapError: as :func:`read_scene`.
        ValueError: ``out`` does not hold one float32 buffer on ``grid`` per band.
    """
    assets = [scene.asset(band) for band in bands]  # MissingBandError before any I/O
    if len(out) != len(assets):
        raise ValueError(f"out: {len(out)} buffers for {len(assets)} bands")
    options = {**GDAL_READ_OPTIONS, **gdal_options} if gdal_options else GDAL_READ_OPTIONS
    with rasterio.Env(**options):
        for band, asset, values in zip(bands, assets, out, strict=True):
            categorical = band.upper() == "SCL"
            missing = read_band_into(
                asset.href, grid, values, index=asset.index, categorical=categorical, nodata=asset.nodata
            )
            if categorical:
                np.copyto(values, np.float32(0.0), where=missing)
                continue
            if asset.scale != 1.0:
                values *= np.float32(asset.scale)
            if asset.offset != 0.0:
                values += np.float32(asset.offset)
            np.copyto(values, np.float32(np.nan), where=missing)


@lru_cache(maxsize=64)
def _scene_coords(grid: Grid, bands: tuple[str, ...]) -> xr.Coordinates:
    # Built once per grid and band list: creating (and merging) the pandas indexes costs
    # milliseconds, more than reading a small scene. The indexes are immutable, so sharing is safe.
    xs, ys = grid.xy_coords()
    return xr.Coordinates({"band": list(bands), "y": ys, "x": xs})


def scene_array(data: np.ndarray, grid: Grid, bands: Sequence[str], scene: SceneRef) -> xr.DataArray:
    """Wrap a (band, y, x) array on a grid as a labelled DataArray with the scene's provenance."""
    coords = _scene_coords(grid, tuple(bands))
    return xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords=coords,
        attrs={
            "scene_id": scene.scene_id,
            "provider": scene.provider,
            "acquired_at_utc": scene.acquired_at_utc.isoformat(),
            "crs": grid.crs,
            "transform": list(grid.transform)[:6],
        },
    )
