"""Non-learned change baselines: change vector analysis (CVA) with Otsu's threshold, and spectral indices.

Pure functions on ``(band, y, x)`` float32 reflectance arrays of two co-registered dates. They are
both the yardstick the learned model must beat and the fallback for progress estimation when no
checkpoint fits the imagery (``cva_change_probability``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from skimage.filters import threshold_otsu

from models.errors import InputShapeError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


def _check_pair(before: np.ndarray, after: np.ndarray) -> None:
    if before.ndim != 3 or before.shape != after.shape:
        raise InputShapeError(f"before and after must both be (band, y, x) of one shape: {before.shape}, {after.shape}")


def _valid_mask(before: np.ndarray, after: np.ndarray, valid: BoolArray | None) -> BoolArray:
    finite: BoolArray = np.isfinite(before).all(axis=0) & np.isfinite(after).all(axis=0)
    if valid is not None:
        finite &= valid
    return finite


def cva_magnitude(before: FloatArray, after: FloatArray, valid: BoolArray | None = None) -> FloatArray:
    """Length of the per-pixel change vector, each band scaled by its spread.

    Args:
        before: ``(C, H, W)`` reflectance at date 1.
        after: ``(C, H, W)`` reflectance at date 2 (same grid).
        valid: Optional ``(H, W)`` mask of usable pixels; others are NaN in the output.

    Returns:
        ``(H, W)`` float32 magnitude (unitless, in band standard deviations); NaN where invalid.
    """
    _check_pair(before, after)
    ok = _valid_mask(before, after, valid)
    diff = after.astype(np.float32) - before.astype(np.float32)
    out = np.full(before.shape[1:], np.nan, dtype=np.float32)
    if not ok.any():
        return out
    d = diff[:, ok]
    # Scale each band by the pooled spread of both dates so that bright SWIR bands do not dominate.
    spread = np.concatenate([before[:, ok], after[:, ok]], axis=1).std(axis=1) + 1e-6
    out[ok] = np.sqrt(((d / spread[:, None]) ** 2).sum(axis=0))
    return out


def _otsu_probability(score: FloatArray) -> FloatArray:
    """Map a score to [0, 1] with a logistic centred on Otsu's threshold (0.5 exactly at the threshold)."""
    out = np.full(score.shape, np.nan, dtype=np.float32)
    ok = np.isfinite(score)
    values = score[ok]
    if values.size == 0:
        return out
    if np.ptp(values) <= 0:
        out[ok] = 0.0
        return out
    threshold = float(threshold_otsu(values, nbins=256))  # type: ignore[no-untyped-call]
    # Logistic width: a tenth of the inter-quartile range keeps the map almost binary yet rankable.
    q1, q3 = np.percentile(values, [25, 75])
    width = max(float(q3 - q1) / 10.0, 1e-6)
    z = np.clip((values - threshold) / width, -60.0, 60.0)
    out[ok] = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    return out


def cva_change_probability(before: FloatArray, after: FloatArray, valid: BoolArray | None = None) -> FloatArray:
    """Change probability from CVA: 0.5 exactly at Otsu's threshold of the CVA magnitude.

    Works for any number of bands and needs no training, so it is the fallback for progress
    estimation when no checkpoint matches the imagery.

    Args:
        before: ``(C, H, W)`` float32 reflectance at date 1.
        after: ``(C, H, W)`` float32 reflectance at date 2, same grid.
        valid: Optional ``(H, W)`` bool mask; pixels outside it (or non-finite) come back NaN.

    Returns:
        ``(H, W)`` float32 in [0, 1] (NaN where invalid). ``>= 0.5`` is the Otsu change mask.
    """
    return _otsu_probability(cva_magnitude(before, after, valid))


def _normalized_difference(a: FloatArray, b: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (a - b) / (a + b)
    return np.where(np.isfinite(out), out, 0.0).astype(np.float32)


def spectral_indices(image: FloatArray, bands: Sequence[str]) -> dict[str, FloatArray]:
    """NDVI, NDBI and bare-soil index (BSI) where the Sentinel-2 bands allow.

    Args:
        image: ``(C, H, W)`` reflectance.
        bands: Sentinel-2 band names in channel order (e.g. ``B02, B03, B04, B08, B11, B12``).

    Returns:
        Dict of ``(H, W)`` float32 index maps: ``ndvi`` (needs B04, B08), ``ndbi`` (B08, B11),
        ``bsi`` (B02, B04, B08, B11). Missing bands -> index absent.
    """
    idx = {b.upper(): i for i, b in enumerate(bands)}
    out: dict[str, FloatArray] = {}
    if {"B04", "B08"} <= idx.keys():
        out["ndvi"] = _normalized_difference(image[idx["B08"]], image[idx["B04"]])
    if {"B08", "B11"} <= idx.keys():
        out["ndbi"] = _normalized_difference(image[idx["B11"]], image[idx["B08"]])
    if {"B02", "B04", "B08", "B11"} <= idx.keys():
        swir_red = image[idx["B11"]] + image[idx["B04"]]
        nir_blue = image[idx["B08"]] + image[idx["B02"]]
        out["bsi"] = _normalized_difference(swir_red, nir_blue)
    return out


def construction_index_probability(
    before: FloatArray, after: FloatArray, bands: Sequence[str], valid: BoolArray | None = None
) -> FloatArray | None:
    """Change probability from spectral indices of new construction: NDVI loss plus NDBI / BSI gain.

    Construction replaces vegetation with soil, concrete and roofs, so NDVI falls and the
    built-up / bare-soil indices rise. The summed index change is thresholded with Otsu like CVA.

    Returns:
        ``(H, W)`` float32 in [0, 1] (NaN where invalid), or None when the bands lack red + NIR.
    """
    _check_pair(before, after)
    i1, i2 = spectral_indices(before, bands), spectral_indices(after, bands)
    if "ndvi" not in i1:
        return None
    score = i1["ndvi"] - i2["ndvi"]
    for name in ("ndbi", "bsi"):
        if name in i1:
            score = score + (i2[name] - i1[name])
    score = score.astype(np.float32)
    score[~_valid_mask(before, after, valid)] = np.nan
    return _otsu_probability(score)
