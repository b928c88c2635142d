"""Per-scene progress: change probability plus construction stage, per planned footprint.

A change detector answers "is this pixel different from the pre-construction baseline?".
That saturates as soon as a footprint is cleared, so each changed pixel is also given a
construction stage by its spectrum, relative to the site's own cleared ground:

- ``CLEARED``: changed and spectrally like the site's bare soil;
- ``SLAB``: changed, not soil, and like concrete (foundations, slabs, paving);
- ``STRUCTURE``: changed and neither (roofs, cladding, PV modules, steel).

Groundwork phases (earthworks, clearing) count every changed pixel as done. Building phases
weigh the stages by the share of a building's work they stand for.

Pure numpy over arrays on the site grid; no I/O.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from aoi.records import SceneProgress
from models.baseline import ndvi_of

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

#: A change function: (before, after, valid) -> (H, W) probability in [0, 1], NaN where invalid.
ChangeFn = Callable[[FloatArray, FloatArray, BoolArray], FloatArray]

UNTOUCHED, CLEARED, SLAB, STRUCTURE = 0, 1, 2, 3

#: Typical L2A reflectance of weathered concrete in (B02, B03, B04, B08, B11, B12): flat and
#: moderately bright (USGS speclib concrete, resampled to Sentinel-2 bands).
CONCRETE_S2 = np.array([0.17, 0.19, 0.21, 0.24, 0.30, 0.27], dtype=np.float32)
#: Freshly exposed soil in the same bands, used only when a site shows no cleared ground of its own.
FRESH_SOIL_S2 = np.array([0.10, 0.13, 0.165, 0.215, 0.33, 0.29], dtype=np.float32)
S2_STAGE_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")


@dataclass(frozen=True, slots=True)
class StageRules:
    """Spectral tests that give a changed pixel its construction stage.

    Attributes:
        max_angle_deg: Spectral angle under which a pixel matches a reference material.
        max_built_ndvi: A "changed" pixel greener than this is seasonal vegetation, not works:
            soil, concrete, roofs and PV modules all sit well below it.
        brightness_ratio: (low, high) brightness ratio to the reference that still matches.
    """

    max_angle_deg: float = 6.5
    max_built_ndvi: float = 0.3
    brightness_ratio: tuple[float, float] = (0.72, 1.38)


@dataclass(frozen=True, slots=True)
class BuildLadder:
    """How a building phase shows from space as its schedule advances (a forward model).

    For a phase a share ``f`` done, the expected share of its footprint that is at least cleared,
    at least slab, and roofed rises linearly between the ``*_from`` and ``*_full`` points. Typical
    of framed industrial and residential buildings: ground is cleared first, slabs appear from about
    15 % of the schedule, and the envelope closes from about 45 %. Estimation inverts it: the ``f``
    whose expected shares best match the observed ones.
    """

    clear_full: float = 0.3
    slab_from: float = 0.15
    slab_full: float = 0.6
    roof_from: float = 0.45
    roof_full: float = 1.0

    def shares(self, f: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
        """Expected (>= cleared, >= slab, roofed) shares for done shares ``f``."""
        cleared = np.clip(f / self.clear_full, 0.0, 1.0)
        slab = np.clip((f - self.slab_from) / (self.slab_full - self.slab_from), 0.0, 1.0)
        roof = np.clip((f - self.roof_from) / (self.roof_full - self.roof_from), 0.0, 1.0)
        return cleared, slab, roof

    def invert(self, cleared: float | None, slab: float, roof: float) -> float:
        """The done share whose expected shares are closest (least squares) to the observed ones.

        ``cleared`` is None for a building on a pad, whose ground the earthworks cleared.
        """
        grid = np.linspace(0.0, 1.0, 201)
        exp_c, exp_s, exp_r = self.shares(grid)
        err = (exp_s - slab) ** 2 + (exp_r - roof) ** 2
        if cleared is not None:
            err = err + (exp_c - cleared) ** 2
        # Ties (flat stretches of the ladder, e.g. before any slab shows) resolve to the lowest done
        # share consistent with the evidence: invisible progress is not claimed.
        best = np.flatnonzero(err <= err.min() + 1e-12)
        return float(grid[best[0]])


@dataclass(frozen=True, slots=True)
class SiteLayers:
    """What is static about a site on its grid.

    Attributes:
        phase_masks: Per phase (plan order), a (y, x) bool footprint.
        groundwork: Per phase, True when it only clears ground.
        weights: Per phase, its weight in the plan.
        site_mask: (y, x) bool, inside the site boundary.
    """

    phase_masks: tuple[BoolArray, ...]
    groundwork: tuple[bool, ...]
    weights: tuple[float, ...]
    site_mask: BoolArray
    footprint: BoolArray = field(init=False)
    groundwork_only: BoolArray = field(init=False)
    #: Per phase, True for a building phase whose ground a groundwork phase clears.
    on_pad: tuple[bool, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not (len(self.phase_masks) == len(self.groundwork) == len(self.weights)):
            raise ValueError("phase_masks, groundwork and weights differ in length")
        shape = self.site_mask.shape
        fp = np.zeros(shape, dtype=bool)
        structures = np.zeros(shape, dtype=bool)
        for m, ground in zip(self.phase_masks, self.groundwork, strict=True):
            if m.shape != shape:
                raise ValueError(f"phase mask shape {m.shape} differs from site mask {shape}")
            fp |= m
            if not ground:
                structures |= m
        object.__setattr__(self, "footprint", fp)
        pads = np.zeros(shape, dtype=bool)
        for m, ground in zip(self.phase_masks, self.groundwork, strict=True):
            if ground:
                pads |= m
        on_pad = tuple(
            bool(not ground and m.any() and (m & pads).sum() >= 0.5 * m.sum())
            for m, ground in zip(self.phase_masks, self.groundwork, strict=True)
        )
        object.__setattr__(self, "on_pad", on_pad)
        # Cleared pad around the buildings: the site's own reference for bare soil.
        object.__setattr__(self, "groundwork_only", fp & ~structures)


def baseline_composite(images: FloatArray, valid: BoolArray) -> FloatArray:
    """Per-pixel median of the valid observations: the pre-construction reference.

    Args:
        images: (time, band, y, x) reflectance.
        valid: (time, y, x) bool.

    Returns:
        (band, y, x) float32; NaN where no date was valid.
    """
    if images.ndim != 4 or valid.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"images {images.shape} and valid {valid.shape} do not fit (time, band, y, x)")
    masked = np.where(valid[:, None], images, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels are expected (never clear)
        out: FloatArray = np.nanmedian(masked, axis=0).astype(np.float32)
    return out


def _angle_deg(image: FloatArray, ref: npt.NDArray[np.float32]) -> FloatArray:
    dot = np.tensordot(ref, image, axes=(0, 0))
    norms = np.linalg.norm(image, axis=0) * float(np.linalg.norm(ref))
    with np.errstate(all="ignore"):
        cos = np.clip(dot / norms, -1.0, 1.0)
    angle: FloatArray = np.degrees(np.arccos(cos)).astype(np.float32)
    return angle


def _matches(image: FloatArray, ref: npt.NDArray[np.float32], rules: StageRules) -> BoolArray:
    ratio = image.mean(axis=0) / max(float(ref.mean()), 1e-6)
    low, high = rules.brightness_ratio
    match: BoolArray = (_angle_deg(image, ref) < rules.max_angle_deg) & (ratio > low) & (ratio < high)
    return match


def pixel_stages(
    image: FloatArray,
    changed: BoolArray,
    soil_region: BoolArray,
    *,
    rules: StageRules | None = None,
    concrete: npt.NDArray[np.float32] = CONCRETE_S2,
    fallback_soil: npt.NDArray[np.float32] = FRESH_SOIL_S2,
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Construction stage of every pixel.

    Args:
        image: (band, y, x) reflectance of the scene, bands as in ``S2_STAGE_BANDS``.
        changed: (y, x) bool, changed since the baseline.
        soil_region: (y, x) bool, where the site's bare soil is expected once cleared.
        rules: Matching tolerances.
        concrete: Reference spectrum for slabs.
        fallback_soil: Soil reference when the site shows fewer than 8 cleared soil pixels.

    Returns:
        ``(stage, soil_ref)``: (y, x) int8 in {UNTOUCHED, CLEARED, SLAB, STRUCTURE} and the
        soil spectrum used.
    """
    rules = rules or StageRules()
    finite = np.all(np.isfinite(image), axis=0)
    candidates = changed & soil_region & finite
    soil = fallback_soil
    if candidates.sum() >= 8:
        local = np.median(image[:, candidates], axis=1).astype(np.float32)
        # Only trust the site's own "soil" when it really looks like soil, not a slab.
        if _angle_deg(local[:, None, None], fallback_soil)[0, 0] < 3 * rules.max_angle_deg:
            soil = local
    stage = np.zeros(changed.shape, dtype=np.int8)
    ch = changed & finite
    safe = np.where(finite, image, 0.0).astype(np.float32)
    is_soil = _matches(safe, soil, rules)
    is_slab = _matches(safe, concrete, rules) & ~is_soil
    stage[ch] = STRUCTURE
    stage[ch & is_slab] = SLAB
    stage[ch & is_soil] = CLEARED
    return stage, soil


@dataclass(frozen=True, slots=True)
class SceneEstimator:
    """Turns one scene into a ``SceneProgress`` against the site's baseline.

    Attributes:
        change: The change function (a detector's ``predict`` or a non-learned baseline).
        threshold: Probability at or above which a pixel counts as changed.
        method: Recorded with every figure ("model:s2@<sha>" or "baseline:cva").
        min_observed: Below this share of each footprint seen cloud-free, no estimate.
        rules: Stage matching rules.
        stage_bands: Band names of the images, in channel order.
    """

    change: ChangeFn
    threshold: float
    method: str
    min_observed: float = 0.5
    rules: StageRules = field(default_factory=StageRules)
    ladder: BuildLadder = field(default_factory=BuildLadder)
    #: What the figures can be traced back to (checkpoint name, weights sha256, training data).
    provenance: Mapping[str, Any] = field(default_factory=dict)
    stage_bands: Sequence[str] = S2_STAGE_BANDS

    def observe(
        self,
        site_id: str,
        scene_id: str,
        acquired_at_utc: datetime,
        baseline: FloatArray,
        image: FloatArray,
        valid: BoolArray,
        layers: SiteLayers,
    ) -> tuple[SceneProgress, npt.NDArray[np.float32]]:
        """Estimate one scene.

        Args:
            site_id: The site.
            scene_id: The scene.
            acquired_at_utc: Its sensing time.
            baseline: (band, y, x) pre-construction composite.
            image: (band, y, x) reflectance of the scene.
            valid: (y, x) bool, cloud-free and with data.
            layers: The site's footprints.

        Returns:
            The estimate and the (y, x) change probability map (NaN where invalid).
        """
        ok = valid & np.all(np.isfinite(image), axis=0) & np.all(np.isfinite(baseline), axis=0)
        fp = layers.footprint
        seen_fp = float((fp & ok).sum() / max(fp.sum(), 1))
        prob = self.change(baseline, image, ok)
        changed = (np.nan_to_num(prob, nan=0.0) >= self.threshold) & (
            ndvi_of(image, self.stage_bands) < self.rules.max_built_ndvi
        )
        decisive = np.abs(np.nan_to_num(prob[fp & ok], nan=0.5) - 0.5) * 2
        confidence = float(decisive.mean()) if decisive.size else 0.0
        fractions: list[float | None] = []
        stage, _ = pixel_stages(image, changed, layers.groundwork_only, rules=self.rules)
        for mask, ground, on_pad in zip(layers.phase_masks, layers.groundwork, layers.on_pad, strict=True):
            seen = mask & ok
            if mask.sum() == 0 or seen.sum() / mask.sum() < self.min_observed:
                fractions.append(None)
            elif ground:
                fractions.append(float(changed[seen].mean()))
            else:
                st = stage[seen]
                # Bare soil under a building on a pad is the pad's earthworks: it says nothing here.
                cleared = None if on_pad else float((st >= CLEARED).mean())
                slab, roof = float((st >= SLAB).mean()), float((st == STRUCTURE).mean())
                fractions.append(self.ladder.invert(cleared, slab, roof))
        outside = layers.site_mask & ~fp & ok
        outside_frac = float(changed[outside].mean()) if outside.sum() >= 10 else None
        missing = [k for k, f in enumerate(fractions) if f is None]
        if missing:
            reason = (
                f"too little of the footprints seen: {seen_fp:.0%} overall, "
                f"phase(s) {', '.join(str(k) for k in missing)} under {self.min_observed:.0%}"
            )
            sp = SceneProgress(
                site_id, scene_id, acquired_at_utc, None, tuple(fractions), seen_fp, confidence, outside_frac, reason
            )
            return sp, prob
        total = sum(layers.weights)
        percent = 100.0 * sum(w * (f or 0.0) for w, f in zip(layers.weights, fractions, strict=True)) / total
        sp = SceneProgress(
            site_id, scene_id, acquired_at_utc, round(percent, 3), tuple(fractions), seen_fp, confidence, outside_frac
        )
        return sp, prob
