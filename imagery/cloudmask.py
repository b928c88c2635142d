"""Cloud masking from the L2A scene classification (pure functions on arrays).

Works on numpy arrays and, unchanged, on dask arrays (only elementwise operations and sums
over the time axis), so the datacube can mask lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from imagery.sentinel2 import CLOUD_CLASSES, DEFAULT_EXCLUDED_SCL, Scl

logger = logging.getLogger(__name__)

#: Classes a bright roof gets mislabelled as (cloud, not shadow).
_CLOUD_ONLY = (int(Scl.CLOUD_MEDIUM_PROBABILITY), int(Scl.CLOUD_HIGH_PROBABILITY), int(Scl.THIN_CIRRUS))


def _in_classes(scl: Any, classes: Iterable[int]) -> Any:
    out = None
    for c in sorted({int(c) for c in classes}):
        hit = scl == c
        out = hit if out is None else out | hit
    return out if out is not None else scl != scl  # all False, same type and shape


def valid_mask(scl: Any, excluded: Iterable[int] = DEFAULT_EXCLUDED_SCL) -> Any:
    """True where a pixel is usable: its SCL class is not excluded.

    Args:
        scl: (..., y, x) ESA scene classes (any numeric dtype; 0 = no data).
        excluded: Classes to mask; default no data, defects, cloud shadow, clouds and cirrus.

    Returns:
        Boolean array of the same shape.
    """
    return ~_in_classes(scl, excluded)


def cloud_fraction(
    scl: npt.NDArray[Any], region: npt.NDArray[np.bool_] | None = None, classes: Iterable[int] = CLOUD_CLASSES
) -> float | None:
    """Share of the pixels with data that are cloud or cloud shadow, 0-1.

    Args:
        scl: (y, x) ESA scene classes of one scene.
        region: (y, x) pixels that count (the site); default all.
        classes: What counts as cloud.

    Returns:
        The fraction, or None when no pixel of the region has data.
    """
    has_data = scl != Scl.NO_DATA
    if region is not None:
        has_data &= region
    n = int(has_data.sum())
    if n == 0:
        return None
    return float((_in_classes(scl, classes) & has_data).sum()) / n


def valid_fraction(
    scl: npt.NDArray[Any], region: npt.NDArray[np.bool_] | None = None, excluded: Iterable[int] = DEFAULT_EXCLUDED_SCL
) -> float:
    """Share of the region's pixels (with or without data) that are usable, 0-1."""
    ok = valid_mask(scl, excluded)
    if region is not None:
        total = int(region.sum())
        return float((ok & region).sum()) / total if total else 0.0
    return float(ok.mean()) if ok.size else 0.0


def cloud_skip_reason(cloud_pct: float | None, max_cloud_pct: float) -> str | None:
    """Why a scene should be skipped for clouds, or None to keep it."""
    if cloud_pct is None:
        return "no data over the site"
    if cloud_pct >= 100.0 - 1e-9 and max_cloud_pct < 100.0:
        return "all cloud over the site (100%)"
    if cloud_pct > max_cloud_pct:
        return f"{cloud_pct:.1f}% > max_cloud_pct {max_cloud_pct:g}%"
    return None


def persistent_bright_mask(
    scl: Any,
    swir: Any,
    scene_clear: npt.NDArray[np.bool_],
    *,
    min_dates: int = 3,
    min_share: float = 0.6,
    min_swir: float = 0.2,
    max_swir_std: float = 0.05,
) -> Any:
    """Pixels SCL keeps calling cloud that are really a bright, stable surface (a new roof, concrete).

    L2A's cloud test confuses bright roofs and fresh concrete with cloud. A real cloud moves:
    on clear days it is almost never in the same pixel again. A roof is labelled "cloud" on most
    clear days from the day it appears on, and its SWIR (B11) reflectance is high (>= 0.2, like
    concrete and metal) and stable. Only clear days (``scene_clear``) count, so an overcast
    spell cannot make a pixel look persistent.

    Args:
        scl: (time, y, x) ESA scene classes.
        swir: (time, y, x) B11 surface reflectance (0-1, NaN = no data).
        scene_clear: (time,) True for scenes whose cloud fraction is low.
        min_dates: Fewest clear days labelled cloud.
        min_share: Least share of the clear days since first labelled cloud that are labelled cloud.
        min_swir: Least mean B11 reflectance on those days.
        max_swir_std: Largest standard deviation of B11 on those days.

    Returns:
        (y, x) bool: True for persistent bright objects (to un-mask on clear days).
    """
    clear_1d = np.asarray(scene_clear, dtype=bool)
    clear = clear_1d[:, None, None]
    flagged = _in_classes(scl, _CLOUD_ONLY) & clear
    if isinstance(flagged, np.ndarray) and isinstance(swir, np.ndarray):
        # In memory, only pixels flagged on enough clear days can qualify: compute the rest of
        # the test on those (usually a few hundred) instead of on the whole cube.
        n_flag = flagged.sum(axis=0, dtype=np.int32)
        candidates = n_flag >= min_dates
        out = np.zeros(n_flag.shape, dtype=bool)
        if candidates.any():
            out[candidates] = _persistent(
                flagged[:, candidates], swir[:, candidates], clear_1d, min_dates, min_share, min_swir, max_swir_std
            )
        return out
    return _persistent(flagged, swir, clear_1d, min_dates, min_share, min_swir, max_swir_std)


def _persistent(
    flagged: Any,
    swir: Any,
    clear_1d: npt.NDArray[np.bool_],
    min_dates: int,
    min_share: float,
    min_swir: float,
    max_swir_std: float,
) -> Any:
    """:func:`persistent_bright_mask` on (time, ...) flags and SWIR (numpy or dask, any trailing shape)."""
    swir0 = _nan_to_zero(swir)
    n_flag = flagged.sum(axis=0, dtype=np.int32)
    # Clear days since (and including) the first clear day labelled cloud: a lookup of the
    # first flagged index in the suffix count of clear days (cheaper than a cumsum over time).
    clear_from = np.cumsum(clear_1d[::-1])[::-1].astype(np.int32)
    first = flagged.argmax(axis=0)
    n_since = _lookup(clear_from, first) if len(clear_1d) else n_flag
    s1 = (swir0 * flagged).sum(axis=0, dtype=np.float32)
    s2 = (swir0 * swir0 * flagged).sum(axis=0, dtype=np.float32)
    n = np.maximum(n_flag, 1)
    mean = s1 / n
    var = np.maximum(s2 / n - mean * mean, 0.0)
    return (
        (n_flag >= min_dates)
        & (n_flag >= min_share * np.maximum(n_since, 1))
        & (mean >= min_swir)
        & (var <= max_swir_std**2)
    )


def unmask_persistent(valid: Any, scl: Any, persistent: Any, scene_clear: npt.NDArray[np.bool_]) -> Any:
    """Mark persistent bright objects valid again on clear days where SCL calls them cloud.

    Args:
        valid: (time, y, x) bool from :func:`valid_mask`.
        scl: (time, y, x) classes.
        persistent: (y, x) bool from :func:`persistent_bright_mask`.
        scene_clear: (time,) bool; cloudy scenes keep their mask (the cloud may be real).

    Returns:
        (time, y, x) bool.
    """
    clear = np.asarray(scene_clear, dtype=bool)[:, None, None]
    return valid | (_in_classes(scl, _CLOUD_ONLY) & persistent[None] & clear)


def _lookup(table: npt.NDArray[np.int32], index: Any) -> Any:
    if isinstance(index, np.ndarray):
        return table[index]
    return index.map_blocks(lambda i: table[i], dtype=table.dtype)  # dask


def _nan_to_zero(a: Any) -> Any:
    # np.where dispatches to dask.array.where for dask inputs (NEP 18).
    return np.where(a == a, a, 0)
