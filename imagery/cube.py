"""Assemble a site datacube (time, y, x) from any provider, with cloud masks and per-scene records.

One call, :func:`load_datacube`: search, screen every scene on its SCL (cloud fraction over the
site), read the bands of the scenes kept onto the site grid, mask clouds (keeping bright new
roofs that SCL calls cloud) and record what happened to every scene. One bad scene never fails
the call: it is recorded as skipped with the reason.

Small cubes are read eagerly into numpy; cubes larger than ``memory_budget_mb`` are built as
dask arrays chunked per scene, band and spatial block, so memory stays bounded whatever the
site size or period: screening reads one SCL layer at a time and keeps none of them, and the
persistent-roof mask is computed in one streaming pass. ``python bench/imagery.py --large``
measures a 20 km x 20 km site over two years.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import dask.array as da
import numpy as np
import numpy.typing as npt
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from dask.delayed import delayed
from rasterio.errors import RasterioError
from rasterio.windows import Window

from aoi.records import SceneRecord
from geo import BBox, Grid
from imagery.cache import SceneCache
from imagery.cloudmask import (
    cloud_fraction,
    cloud_skip_reason,
    persistent_bright_mask,
    unmask_persistent,
    valid_fraction,
    valid_mask,
)
from imagery.errors import (
    ImageryError,
    MissingBandError,
    NoOverlapError,
    ProviderAuthError,
    SceneCorruptError,
)
from imagery.providers.base import SceneProvider, SceneRef, read_bands_into
from imagery.providers.local import bbox_intersects
from imagery.providers.reading import scene_array
from imagery.sentinel2 import DEFAULT_EXCLUDED_SCL, S2_BANDS

logger = logging.getLogger(__name__)

#: Reasons recorded for skipped scenes (prefixes; details follow a colon).
REASON_TOO_CLOUDY = "too cloudy"
REASON_NO_OVERLAP = "no overlap"
REASON_MISSING_BAND = "missing band"
REASON_CORRUPT = "corrupt file"
REASON_READ_ERROR = "read error"


@dataclass(slots=True)
class _Candidate:
    scene: SceneRef
    record: SceneRecord
    scl: npt.NDArray[np.float32] | None
    cached: xr.DataArray | None
    index: int = -1  # position of the scene's record in the records list


def skip_reason_for(exc: BaseException) -> str:
    """The SceneRecord reason for an error raised while reading a scene."""
    if isinstance(exc, MissingBandError):
        return f"{REASON_MISSING_BAND}: {exc}"
    if isinstance(exc, NoOverlapError):
        return f"{REASON_NO_OVERLAP}: {exc}"
    if isinstance(exc, SceneCorruptError):
        return f"{REASON_CORRUPT}: {exc}"
    return f"{REASON_READ_ERROR}: {exc}"


def load_datacube(
    provider: SceneProvider,
    grid: Grid,
    start: date | datetime,
    end: date | datetime,
    *,
    bands: Sequence[str] = S2_BANDS,
    site_id: str,
    cache: SceneCache | None = None,
    max_cloud_pct: float = 60.0,
    excluded_scl: Iterable[int] = DEFAULT_EXCLUDED_SCL,
    region: npt.NDArray[np.bool_] | None = None,
    fix_bright_objects: bool = True,
    clear_scene_pct: float = 20.0,
    chunked: bool | None = None,
    memory_budget_mb: float = 256.0,
    block_px: int = 1024,
) -> tuple[xr.Dataset, list[SceneRecord]]:
    """Load every usable scene of a period onto a grid as a datacube.

    Args:
        provider: Where scenes come from.
        grid: The site grid (UTM, 10 m); every variable is on it.
        start: First day (or instant, UTC) of the period, inclusive.
        end: Last day (or instant, UTC), inclusive.
        bands: Spectral bands to load (reflectance).
        site_id: Recorded in every SceneRecord.
        cache: Scene cache; scenes read are stored there and reused on later calls.
        max_cloud_pct: Scenes with more cloud and shadow over the region (0-100) are skipped.
        excluded_scl: SCL classes masked out of ``valid``.
        region: (y, x) pixels the cloud and valid fractions are computed over; default the whole grid.
        fix_bright_objects: Un-mask persistent bright objects SCL calls cloud (needs B11 in ``bands``).
        clear_scene_pct: Scenes with at most this cloud share count as clear for that check.
        chunked: Force dask (True) or numpy (False); default dask when the cube exceeds the budget.
        memory_budget_mb: Size above which the cube is built lazily.
        block_px: Spatial block size (pixels) of lazy chunks.

    Returns:
        ``(cube, records)``. ``cube`` has dims (time, y, x), coordinates ``time`` (UTC, naive
        datetime64), ``scene_id`` (per time), ``y``/``x`` (pixel centres, grid CRS), one float32
        reflectance variable per band (NaN = no data) and ``valid`` (bool), with the CRS and
        transform written by rioxarray. ``records`` has one SceneRecord per scene found, in time
        order, used or skipped with the reason.

    Raises:
        ImageryError: the search itself failed (a single scene never raises).
    """
    bands = list(bands)
    need = [*bands, "SCL"] if "SCL" not in bands else bands
    excluded = frozenset(int(c) for c in excluded_scl)
    grid_bbox_wgs84 = grid.bbox_wgs84  # a reprojection each time it is asked for: once per cube
    scenes = provider.search(grid_bbox_wgs84, start, end)
    logger.info("found %d scenes", len(scenes), extra={"site_id": site_id})

    # Stage 1: screen each scene on its SCL, one at a time. The screening SCL is kept for the
    # eager read only while every scene's SCL fits in the budget: a 20 km site's is 16 MB a scene.
    n_px = grid.width * grid.height
    keep_scl = chunked is False or len(scenes) * n_px * 4 / 2**20 <= memory_budget_mb
    records: list[SceneRecord] = []
    candidates: list[_Candidate] = []
    for scene in scenes:
        cand = _screen(provider, scene, grid, grid_bbox_wgs84, need, site_id, cache, max_cloud_pct, excluded, region)
        if not keep_scl:
            cand.scl = None
        cand.index = len(records)
        records.append(cand.record)
        if cand.record.used:
            candidates.append(cand)

    estimate_mb = len(candidates) * len(need) * n_px * 4 / 2**20
    lazy = chunked if chunked is not None else estimate_mb > memory_budget_mb

    # Stage 2: read the bands of the scenes kept.
    if lazy:
        used, arrays = _read_lazy(provider, candidates, grid, need, cache, block_px, records)
    else:
        used, arrays = _read_eager(provider, candidates, grid, need, cache, records)

    # Stage 3: masks. valid = not an excluded class, plus persistent bright objects on clear days.
    scl = arrays.pop("SCL")
    valid = valid_mask(scl, excluded)
    clear = np.array(
        [c.record.cloud_pct is not None and c.record.cloud_pct <= clear_scene_pct for c in used], dtype=bool
    )
    if fix_bright_objects and "B11" in arrays and len(used) > 0:
        persistent = persistent_bright_mask(scl, arrays["B11"], clear)
        if lazy:
            # A (y, x) mask from a streaming pass over SCL and B11, computed now: left in the
            # graph, it would make dask hold every scene's chunks until all dates were read.
            persistent = persistent.compute()
        n_fixed = int(persistent.sum())
        if n_fixed:  # most cubes have none: skip a pass over the whole cube
            logger.info("un-masked %d persistent bright pixels", n_fixed, extra={"site_id": site_id})
            valid = unmask_persistent(valid, scl, persistent, clear)
        if not lazy:
            _refresh_valid_fractions(records, used, valid, region, n_fixed)

    # Stage 4: the Dataset, georeferenced.
    xs, ys = grid.xy_coords()
    times = np.array([c.scene.acquired_at_utc.replace(tzinfo=None) for c in used], dtype="datetime64[ns]")
    coords = {
        "time": times,
        "scene_id": ("time", [c.scene.scene_id for c in used]),
        "y": ys,
        "x": xs,
    }
    data_vars: dict[str, Any] = {b: (("time", "y", "x"), arrays[b]) for b in bands if b != "SCL"}
    data_vars["valid"] = (("time", "y", "x"), valid)
    if "SCL" in bands:
        data_vars["SCL"] = (("time", "y", "x"), scl)
    ds = xr.Dataset(
        data_vars,
        coords=coords,
        attrs={"site_id": site_id, "provider": provider.name, "grid_key": grid.key(), "max_cloud_pct": max_cloud_pct},
    )
    ds.rio.write_crs(grid.crs, inplace=True)
    ds.rio.write_transform(grid.transform, inplace=True)
    n_used = sum(r.used for r in records)
    logger.info("datacube: %d of %d scenes used", n_used, len(records), extra={"site_id": site_id})
    return ds, records


def _meta(scene: SceneRef, grid: Grid, band: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "processing_baseline": scene.processing_baseline,
        "gsd_m": scene.gsd_m,
        "provider_cloud_pct": scene.cloud_pct,
        "grid_key": grid.key(),
    }
    try:
        a = scene.asset(band)
        meta["scale"], meta["offset"] = a.scale, a.offset
    except MissingBandError:
        pass
    return meta


def _screen(
    provider: SceneProvider,
    scene: SceneRef,
    grid: Grid,
    grid_bbox_wgs84: BBox,
    need: list[str],
    site_id: str,
    cache: SceneCache | None,
    max_cloud_pct: float,
    excluded: frozenset[int],
    region: npt.NDArray[np.bool_] | None,
) -> _Candidate:
    meta = _meta(scene, grid, need[0])

    def skipped(reason: str, cloud_pct: float | None = None, vf: float = 0.0) -> _Candidate:
        logger.info("skipping scene %s: %s", scene.scene_id, reason, extra={"site_id": site_id})
        rec = SceneRecord(
            site_id, provider.name, scene.scene_id, scene.acquired_at_utc, cloud_pct, vf, False, reason, meta
        )
        return _Candidate(scene, rec, None, None)

    if not bbox_intersects(scene.bbox_wgs84, grid_bbox_wgs84):
        return skipped(f"{REASON_NO_OVERLAP}: scene bbox misses the grid")
    missing = scene.missing_bands(need)
    if missing:
        return skipped(f"{REASON_MISSING_BAND}: {', '.join(missing)}")
    cached = cache.get(scene, grid, need) if cache is not None else None
    meta["cache"] = None if cache is None else ("hit" if cached is not None else "miss")
    if cached is not None:
        scl = np.asarray(cached.sel(band="SCL").values, dtype=np.float32)
    else:
        try:
            scl = _read_bands(provider, scene, grid, ["SCL"])[0]
        except ProviderAuthError:
            raise
        except (ImageryError, OSError, RasterioError, ValueError) as exc:
            return skipped(skip_reason_for(exc))
    frac = cloud_fraction(scl, region)
    cloud_pct = None if frac is None else round(100.0 * frac, 3)
    vf = valid_fraction(scl, region, excluded)
    if frac is None:
        return skipped(f"{REASON_NO_OVERLAP}: no data over the grid")
    reason = cloud_skip_reason(cloud_pct, max_cloud_pct)
    if reason is not None:
        return skipped(f"{REASON_TOO_CLOUDY}: {reason}", cloud_pct, vf)
    rec = SceneRecord(site_id, provider.name, scene.scene_id, scene.acquired_at_utc, cloud_pct, vf, True, "", meta)
    return _Candidate(scene, rec, scl, cached)


def _read_bands(
    provider: SceneProvider,
    scene: SceneRef,
    grid: Grid,
    bands: list[str],
    out: list[npt.NDArray[np.float32]] | None = None,
) -> list[npt.NDArray[np.float32]]:
    """Bands of a scene as (y, x) float32 arrays, decoded into ``out`` when the provider can."""
    if out is None:
        out = list(np.empty((len(bands), *grid.shape), dtype=np.float32))
    read_bands_into(provider, scene, grid, bands, out)
    return out


def _fetch_into(
    provider: SceneProvider,
    cand: _Candidate,
    grid: Grid,
    need: list[str],
    cache: SceneCache | None,
    out: list[npt.NDArray[np.float32]],
) -> None:
    """All needed bands of one screened scene into ``out`` ((y, x) buffers in ``need`` order).

    From the cache, or read from the provider (reusing the screening SCL) and cached.
    """
    if cand.cached is not None:
        cached = cand.cached.values
        for k, buf in enumerate(out):
            buf[...] = cached[k]
        return
    spectral = [b for b in need if b != "SCL"]
    _read_bands(provider, cand.scene, grid, spectral, [out[k] for k, b in enumerate(need) if b != "SCL"])
    k_scl = need.index("SCL")
    if cand.scl is not None:
        out[k_scl][...] = cand.scl
    else:
        _read_bands(provider, cand.scene, grid, ["SCL"], [out[k_scl]])
    if cache is not None:
        try:
            cache.put(cand.scene, grid, scene_array(np.stack(out), grid, need, cand.scene))
        except (OSError, RasterioError) as exc:  # a full disk must not lose the scene
            logger.warning("could not cache scene %s: %s", cand.scene.scene_id, exc)


def _fetch(
    provider: SceneProvider, cand: _Candidate, grid: Grid, need: list[str], cache: SceneCache | None
) -> npt.NDArray[np.float32]:
    """:func:`_fetch_into` a new (band, y, x) array."""
    full = np.empty((len(need), *grid.shape), dtype=np.float32)
    _fetch_into(provider, cand, grid, need, cache, list(full))
    return full


def _mark_failed(cand: _Candidate, exc: BaseException, records: list[SceneRecord]) -> None:
    reason = skip_reason_for(exc)
    logger.warning("scene %s failed: %s", cand.scene.scene_id, reason, extra={"site_id": cand.record.site_id})
    records[cand.index] = replace(cand.record, used=False, reason=reason)


def _read_eager(
    provider: SceneProvider,
    candidates: list[_Candidate],
    grid: Grid,
    need: list[str],
    cache: SceneCache | None,
    records: list[SceneRecord],
) -> tuple[list[_Candidate], dict[str, Any]]:
    used: list[_Candidate] = []
    # One contiguous (time, y, x) array per band, filled in place: no stacking copies.
    out = {b: np.empty((len(candidates), *grid.shape), dtype=np.float32) for b in need}
    for cand in candidates:
        t = len(used)  # a scene that fails half-way is overwritten by the next one
        try:
            _fetch_into(provider, cand, grid, need, cache, [out[band][t] for band in need])
        except ProviderAuthError:
            raise
        except (ImageryError, OSError, RasterioError, ValueError) as exc:
            _mark_failed(cand, exc, records)
            continue
        used.append(cand)
        cand.scl = None
    return used, {b: arr[: len(used)] for b, arr in out.items()}


def _subgrid(grid: Grid, row: int, col: int, height: int, width: int) -> Grid:
    return Grid(grid.crs, grid.transform @ Affine.translation(col, row), width, height)


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(size, n - s)) for s in range(0, n, size)]


def _read_lazy(
    provider: SceneProvider,
    candidates: list[_Candidate],
    grid: Grid,
    need: list[str],
    cache: SceneCache | None,
    block_px: int,
    records: list[SceneRecord],
) -> tuple[list[_Candidate], dict[str, Any]]:
    used: list[_Candidate] = []
    readers: list[Callable[[str, int, int, int, int], npt.NDArray[np.float32]]] = []
    for cand in candidates:
        if cache is not None:
            # Materialise into the cache one scene at a time (bounded memory, errors recorded);
            # dask then reads blocks of the cached COG.
            try:
                _fetch(provider, cand, grid, need, cache)
            except ProviderAuthError:
                raise
            except (ImageryError, OSError, RasterioError, ValueError) as exc:
                _mark_failed(cand, exc, records)
                continue
            readers.append(_cached_block_reader(cache.path_for(cand.scene.provider, cand.scene.scene_id, grid)))
        else:
            readers.append(_provider_block_reader(provider, cand.scene, grid))
        used.append(cand)
        cand.scl = None  # drop the screening copy: the lazy graph reads it again per block

    rows, cols = _blocks(grid.height, block_px), _blocks(grid.width, block_px)
    arrays: dict[str, Any] = {}
    for band in need:
        per_time = []
        for reader in readers:
            grid_blocks = [
                [
                    da.from_delayed(delayed(reader)(band, r0, c0, h, w), shape=(h, w), dtype=np.float32)  # type: ignore[no-untyped-call]
                    for c0, w in cols
                ]
                for r0, h in rows
            ]
            per_time.append(da.block(grid_blocks))  # type: ignore[no-untyped-call]
        if per_time:
            arrays[band] = da.stack(per_time)  # type: ignore[no-untyped-call]
        else:
            arrays[band] = da.empty((0, *grid.shape), dtype=np.float32, chunks=(1, *grid.shape))
    return used, arrays


def _cached_block_reader(path: Any) -> Callable[[str, int, int, int, int], npt.NDArray[np.float32]]:
    def read(band: str, row: int, col: int, height: int, width: int) -> npt.NDArray[np.float32]:
        try:
            with rasterio.open(path) as src:
                idx = list(src.descriptions).index(band) + 1
                block: npt.NDArray[np.float32] = src.read(
                    idx, window=Window(col, row, width, height), out_dtype="float32"
                )
                return block
        except (RasterioError, ValueError) as exc:
            logger.error("cached scene %s unreadable (%s); block left empty", path, exc)
            return _empty_block(band, height, width)

    return read


def _provider_block_reader(
    provider: SceneProvider, scene: SceneRef, grid: Grid
) -> Callable[[str, int, int, int, int], npt.NDArray[np.float32]]:
    def read(band: str, row: int, col: int, height: int, width: int) -> npt.NDArray[np.float32]:
        try:
            out = provider.read(scene, _subgrid(grid, row, col, height, width), [band]).values[0]
            return np.asarray(out, dtype=np.float32)
        except (ImageryError, OSError, RasterioError, ValueError) as exc:
            # Screening already read this scene's SCL; a late failure leaves the block invalid.
            logger.error("scene %s block read failed (%s); block left empty", scene.scene_id, exc)
            return _empty_block(band, height, width)

    return read


def _empty_block(band: str, height: int, width: int) -> npt.NDArray[np.float32]:
    fill = 0.0 if band == "SCL" else np.nan  # SCL 0 = no data, so the block is invalid
    return np.full((height, width), fill, dtype=np.float32)


def _refresh_valid_fractions(
    records: list[SceneRecord],
    used: list[_Candidate],
    valid: npt.NDArray[np.bool_],
    region: npt.NDArray[np.bool_] | None,
    n_fixed: int,
) -> None:
    for t, cand in enumerate(used):
        v = valid[t] if region is None else valid[t][region]
        i = cand.index
        meta = dict(records[i].meta, bright_objects_unmasked_px=n_fixed)
        records[i] = replace(records[i], valid_fraction=float(v.mean()) if v.size else 0.0, meta=meta)
