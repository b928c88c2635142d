"""Non-learned change baselines: change vector analysis (CVA) with Otsu's threshold, and spectral indices.

Pure functions on ``(band, y, x)`` float32 reflectance arrays of two co-registered dates. They are
both the yardstick the learned model must beat and, for ``index_change_probability``, the fallback
for progress estimation when no checkpoint fits the imagery.
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


def index_change_probability(
    before: FloatArray,
    after: FloatArray,
    valid: BoolArray | None = None,
    *,
    bands: Sequence[str],
    ndvi_loss: float = 0.2,
    angle_deg: float = 10.0,
) -> FloatArray:
    """Non-learned change of land cover towards works: vegetation lost, or a new material.

    Magnitude tests (CVA) confuse a meadow drying out in summer with clearing, because both move
    reflectance a lot. Works surfaces share one trait instead: they are not green. So a pixel is
    changed when it is not vegetation now (NDVI below the built threshold is applied by the
    estimator) and either lost at least ``ndvi_loss`` of NDVI since the baseline or turned into a
    different material (spectral angle to the baseline above ``angle_deg``).

    This is the progress estimator's fallback when no checkpoint fits the imagery, and the
    ``index_baseline`` scored beside every model.

    Args:
        before: ``(C, H, W)`` reflectance of the baseline.
        after: ``(C, H, W)`` reflectance of the scene.
        valid: ``(H, W)`` pixels to score (default: where both dates are finite).
        bands: Sentinel-2 band names in channel order; must include B04 and B08.
        ndvi_loss: NDVI drop that counts as clearing.
        angle_deg: Spectral angle that counts as a new material.

    Returns:
        (y, x) float32 in [0, 1] (a smooth score, 0.5 at the tests' edge), NaN where invalid.
    """
    _check_pair(before, after)
    valid = _valid_mask(before, after, valid)
    ndvi_b, ndvi_a = ndvi_of(before, bands), ndvi_of(after, bands)
    dot = np.sum(before * after, axis=0)
    with np.errstate(all="ignore"):
        cos = np.clip(dot / (np.linalg.norm(before, axis=0) * np.linalg.norm(after, axis=0)), -1.0, 1.0)
    angle = np.degrees(np.arccos(cos))
    score = np.maximum((ndvi_b - ndvi_a) / ndvi_loss, angle / angle_deg)
    prob: FloatArray = (1.0 / (1.0 + np.exp(-8.0 * (score - 1.0)))).astype(np.float32)
    prob[~(valid & np.isfinite(prob))] = np.nan
    return prob


def ndvi_of(image: FloatArray, bands: Sequence[str]) -> FloatArray:
    """NDVI of a ``(C, H, W)`` Sentinel-2 image (bands must include B04 and B08); 1 where undefined."""
    red, nir = image[list(bands).index("B04")], image[list(bands).index("B08")]
    with np.errstate(all="ignore"):
        ndvi: FloatArray = np.nan_to_num((nir - red) / (nir + red), nan=1.0).astype(np.float32)
    return ndvi
