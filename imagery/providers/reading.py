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
from imagery.errors import NoOverlapError
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
    if scene.parts:
        _mosaic_into(scene, grid, bands, out, gdal_options)
        return
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


def _missing(band: str, values: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    return values == 0 if band.upper() == "SCL" else np.isnan(values)


def _mosaic_into(
    scene: SceneRef,
    grid: Grid,
    bands: Sequence[str],
    out: Sequence[npt.NDArray[np.float32]],
    gdal_options: Mapping[str, object] | None,
) -> None:
    """Read a merged scene: each pixel from the first tile (in ``scene.parts`` order) with data there.

    Tiles that miss the grid are skipped; later tiles are not read once every pixel is filled.

    Raises:
        NoOverlapError: no tile covers any pixel of the grid.
    """
    for part in scene.parts:
        for band in bands:
            part.asset(band)  # MissingBandError before any I/O
    holes: list[npt.NDArray[np.bool_]] | None = None
    scratch: list[npt.NDArray[np.float32]] | None = None
    for part in scene.parts:
        try:
            if holes is None:
                read_scene_into(part, grid, bands, out, gdal_options=gdal_options)
            else:
                if scratch is None:
                    scratch = list(np.empty((len(bands), *grid.shape), dtype=np.float32))
                read_scene_into(part, grid, bands, scratch, gdal_options=gdal_options)
                for hole, values, dst in zip(holes, scratch, out, strict=True):
                    np.copyto(dst, values, where=hole)
        except NoOverlapError:
            logger.debug("tile %s of %s misses the grid", part.scene_id, scene.scene_id)
            continue
        holes = [_missing(band, values) for band, values in zip(bands, out, strict=True)]
        if not any(hole.any() for hole in holes):
            return
    if holes is None:
        raise NoOverlapError(f"no tile of {scene.scene_id} overlaps the grid {grid.key()}")


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
