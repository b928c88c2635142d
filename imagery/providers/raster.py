"""Read one band of a raster file (path or URL) onto a grid: the I/O shared by providers."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from geo import Grid
from imagery.errors import NoOverlapError, SceneCorruptError, SceneUnavailableError

logger = logging.getLogger(__name__)

#: GDAL settings for reading COGs, local or over HTTP range requests (GDAL "Configuration options").
GDAL_READ_OPTIONS: dict[str, object] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF",
    "GDAL_HTTP_MAX_RETRY": 3,
    "GDAL_HTTP_RETRY_DELAY": 0.5,
    "VSI_CACHE": True,
}


def _gdal_path(href: str) -> str:
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("file://"):
        return href[len("file://") :]
    return href


def read_band(
    href: str,
    grid: Grid,
    *,
    index: int = 1,
    categorical: bool = False,
    nodata: float | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Read one band of a raster onto a grid, reprojecting only when the file is not on it.

    A file on the grid's CRS and pixel lattice is read with a window (no resampling);
    anything else goes through a WarpedVRT: nearest (categorical) or bilinear, and average
    (mode for categorical) when the file is more than 1.5 times finer than the grid (VHR).

    Args:
        href: Local path or http(s) URL.
        grid: Target grid.
        index: 1-based band index in the file.
        categorical: The band holds classes (no interpolation).
        nodata: Value meaning no data; default the file's own nodata.

    Returns:
        ``(values, has_data)``, both (y, x) on ``grid``: raw stored values as float32, and
        True where the file has data.

    Raises:
        SceneUnavailableError: the file cannot be opened (missing, HTTP error).
        SceneCorruptError: it opens but cannot be decoded, or has no CRS.
        NoOverlapError: it covers no pixel of the grid.
    """
    with rasterio.Env(**GDAL_READ_OPTIONS):
        return read_band_in_env(href, grid, index=index, categorical=categorical, nodata=nodata)


def read_band_in_env(
    href: str,
    grid: Grid,
    *,
    index: int = 1,
    categorical: bool = False,
    nodata: float | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """:func:`read_band` for callers that already opened a ``rasterio.Env`` (one per scene, not per band)."""
    out = np.empty(grid.shape, dtype=np.float32)
    missing = read_band_into(href, grid, out, index=index, categorical=categorical, nodata=nodata)
    return out, ~missing


def read_band_into(
    href: str,
    grid: Grid,
    out: npt.NDArray[np.float32],
    *,
    index: int = 1,
    categorical: bool = False,
    nodata: float | None = None,
) -> npt.NDArray[np.bool_]:
    """Read one band onto a grid into a caller's buffer (inside a ``rasterio.Env``), without copies.

    The hot path of datacube loading: a file on the grid's lattice is decoded straight into
    ``out`` (GDAL converts to float32 on the way), and the no-data mask costs one pass.

    Args:
        href: Local path or http(s) URL.
        grid: Target grid.
        out: (y, x) float32 buffer on ``grid``, C-contiguous (a slice of a cube is fine); overwritten.
        index: 1-based band index in the file.
        categorical: The band holds classes (no interpolation).
        nodata: Value meaning no data; default the file's own nodata.

    Returns:
        (y, x) bool, True where the file has no data (``out`` holds the raw stored values, 0 there
        when outside the file).

    Raises:
        SceneUnavailableError, SceneCorruptError, NoOverlapError: as :func:`read_band`.
    """
    if out.shape != grid.shape or out.dtype != np.float32:
        raise ValueError(f"out: expected float32 {grid.shape}, got {out.dtype} {out.shape}")
    path = _gdal_path(href)
    try:
        with rasterio.open(path) as src:
            return _read_open(src, grid, out, index=index, categorical=categorical, nodata=nodata, href=href)
    except (NoOverlapError, SceneCorruptError):
        raise
    except RasterioIOError as exc:
        if not href.startswith(("http://", "https://")) and not Path(path).exists():
            raise SceneUnavailableError(f"{href}: file not found") from exc
        if "not recognized as" in str(exc) or "TIFF" in str(exc) or "Read" in str(exc):
            raise SceneCorruptError(f"{href}: {exc}") from exc
        raise SceneUnavailableError(f"{href}: {exc}") from exc
    except RasterioError as exc:
        raise SceneCorruptError(f"{href}: {exc}") from exc


def _is_value(nodata: float | None) -> bool:
    return nodata is not None and not math.isnan(nodata)


def _read_open(
    src: rasterio.io.DatasetReader,
    grid: Grid,
    out: npt.NDArray[np.float32],
    *,
    index: int,
    categorical: bool,
    nodata: float | None,
    href: str,
) -> npt.NDArray[np.bool_]:
    if src.crs is None:
        raise SceneCorruptError(f"{href}: no CRS")
    if not 1 <= index <= src.count:
        raise SceneCorruptError(f"{href}: band index {index} out of range 1..{src.count}")
    nodata = src.nodatavals[index - 1] if nodata is None else nodata
    window = _aligned_window(src, grid)
    if window is not None:
        # Fast path: the file is on the grid's lattice; a plain windowed read, no resampling.
        outside = _read_window(src, window, grid, index, href, out)
        missing: npt.NDArray[np.bool_] = out == nodata if _is_value(nodata) else np.isnan(out)
        if outside is not None:
            missing |= outside
        return missing
    left, bottom, right, top = transform_bounds(src.crs, grid.crs, *src.bounds, densify_pts=21)
    g_left, g_bottom, g_right, g_top = grid.bounds
    if left >= g_right or right <= g_left or bottom >= g_top or top <= g_bottom:
        raise NoOverlapError(f"{href} does not overlap the grid {grid.key()}")
    src_res = min(abs(src.res[0]), abs(src.res[1]))
    finer = _in_grid_units(src, src_res, grid) * 1.5 < grid.resolution_m
    if categorical:
        resampling = Resampling.mode if finer else Resampling.nearest
    else:
        resampling = Resampling.average if finer else Resampling.bilinear
    fill = nodata if nodata is not None and _is_value(nodata) else 0
    with WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        resampling=resampling,
        src_nodata=nodata,
        nodata=fill,
        add_alpha=False,
    ) as vrt:
        values = vrt.read(index, out_dtype="float32", masked=True)
    missing = np.ma.getmaskarray(values).copy()
    out[...] = np.ma.getdata(values)
    if _is_value(nodata):
        missing |= out == nodata
    missing |= np.isnan(out)
    return missing


def _in_grid_units(src: rasterio.io.DatasetReader, res: float, grid: Grid) -> float:
    if src.crs.is_geographic:
        return res * 111_320.0  # degrees to metres near the grid; only used to pick a resampling
    return res


@functools.lru_cache(maxsize=64)
def _crs(user_input: str) -> rasterio.crs.CRS:
    return rasterio.crs.CRS.from_user_input(user_input)


def _aligned_window(src: rasterio.io.DatasetReader, grid: Grid) -> Window | None:
    """The window of ``src`` that is exactly ``grid`` (same CRS, resolution and pixel lattice), else None."""
    if src.crs != _crs(grid.crs):  # CRS equality is ~4 us; to_string() is ~25 us, per band read
        return None
    st, gt = src.transform, grid.transform
    if not (math.isclose(st.a, gt.a) and math.isclose(st.e, gt.e) and st.b == 0 and st.d == 0 and gt.b == 0):
        return None
    col = (gt.c - st.c) / st.a
    row = (gt.f - st.f) / st.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return Window(round(col), round(row), grid.width, grid.height)


def _read_window(
    src: rasterio.io.DatasetReader,
    window: Window,
    grid: Grid,
    index: int,
    href: str,
    out: npt.NDArray[np.float32],
) -> npt.NDArray[np.bool_] | None:
    """Read a window that may stick out of the file into ``out``.

    Returns:
        None when the window is inside the file, else (y, x) bool, True outside the file (0 in ``out``).
    """
    c0, r0 = int(window.col_off), int(window.row_off)
    rs, re_ = max(r0, 0), min(r0 + grid.height, src.height)
    cs, ce = max(c0, 0), min(c0 + grid.width, src.width)
    if rs >= re_ or cs >= ce:
        raise NoOverlapError(f"{href} does not overlap the grid {grid.key()}")
    if (rs, re_, cs, ce) == (r0, r0 + grid.height, c0, c0 + grid.width):
        src.read(index, window=Window(cs, rs, ce - cs, re_ - rs), out=out)
        return None
    out[...] = 0.0
    out[rs - r0 : re_ - r0, cs - c0 : ce - c0] = src.read(
        index, window=Window(cs, rs, ce - cs, re_ - rs), out_dtype="float32"
    )
    outside = np.ones(grid.shape, dtype=bool)
    outside[rs - r0 : re_ - r0, cs - c0 : ce - c0] = False
    return outside
