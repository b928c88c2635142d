"""Progress of one site: datacube (imagery) -> per-scene estimates (models) -> curve against plan.

This is where the capabilities meet; each stays ignorant of the others.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from aoi.model import Site, is_groundwork
from aoi.records import ProgressPoint, ProgressSummary, SceneProgress, SceneRecord, SiteWork
from geo import Grid, grid_for, rasterize_mask
from imagery.cache import SceneCache
from imagery.cube import load_datacube
from imagery.providers.base import SceneProvider
from models.baseline import index_change_probability
from models.errors import ModelError
from models.estimate import S2_STAGE_BANDS, SceneEstimator, SiteLayers, baseline_composite
from models.inference import ChangeDetector
from models.progress import CurveOptions, idle_since, summarize, work_ended

logger = logging.getLogger(__name__)

#: How far before the plan's start scenes are loaded to build the pre-construction baseline.
BASELINE_DAYS = 150
#: Share of the footprints a scene must show for it to be the evidence picture.
CLEAR_FOR_EVIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class SiteProgress:
    """Everything the progress stage produced for one site."""

    site_id: str
    grid: Grid
    records: list[SceneRecord]
    observations: list[SceneProgress]
    summary: ProgressSummary
    points: list[ProgressPoint]
    baseline_scenes: list[str]
    inputs: dict[str, Any]
    #: (band, y, x) pre-construction composite, bands as S2_STAGE_BANDS (None without a baseline).
    baseline: npt.NDArray[np.float32] | None = None
    #: (band, y, x) reflectance of the newest scene with an estimate, and its scene id.
    latest_image: npt.NDArray[np.float32] | None = None
    latest_scene: str | None = None
    #: (y, x) change probability of that scene against the baseline (NaN where invalid).
    latest_change: npt.NDArray[np.float32] | None = None
    threshold: float = 0.5


def site_grid(site: Site) -> Grid:
    """The analysis grid of a site: its UTM zone, 10 m, 100 m margin (the simulator uses the same)."""
    return grid_for(site.boundary_wgs84, resolution_m=10.0, buffer_m=100.0)


def site_layers(site: Site, grid: Grid) -> SiteLayers:
    """Footprint masks of the site's phases on its grid."""
    plan = site.plan
    return SiteLayers(
        tuple(rasterize_mask(p.footprint_wgs84, grid) for p in plan.phases),
        tuple(is_groundwork(plan, k) for k in range(len(plan.phases))),
        tuple(p.weight for p in plan.phases),
        rasterize_mask(site.boundary_wgs84, grid),
    )


def make_estimator(checkpoint: str | None, *, threads: int = 2) -> SceneEstimator:
    """The model estimator for a checkpoint, or the non-learned baseline when none fits (or None given)."""
    if checkpoint:
        try:
            detector = ChangeDetector.load(checkpoint, bands=S2_STAGE_BANDS, gsd_m=10.0, threads=threads)
        except ModelError as exc:
            logger.warning("checkpoint %s unusable (%s); falling back to the non-learned baseline", checkpoint, exc)
        else:
            card = detector.card
            provenance = {
                "checkpoint": card.name,
                "weights_sha256": card.weights_sha256,
                "threshold": detector.threshold,
                "bands": list(card.bands),
            }
            method = f"model:{card.name}@{card.weights_sha256[:12]}"
            return SceneEstimator(detector.predict, detector.threshold, method, provenance=provenance)
    return SceneEstimator(
        functools.partial(index_change_probability, bands=S2_STAGE_BANDS),
        0.5,
        "baseline:spectral-index",
        provenance={"checkpoint": None, "estimator": "NDVI loss or spectral angle > 10 deg, NDVI < 0.3"},
    )


def _stack(cube: Any, bands: tuple[str, ...]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    images = np.stack([np.asarray(cube[b].values, dtype=np.float32) for b in bands], axis=1)  # (t, band, y, x)
    valid = np.asarray(cube["valid"].values, dtype=bool)
    return images, valid


def compute_site_progress(
    site: Site,
    *,
    provider: SceneProvider,
    estimator: SceneEstimator,
    as_of: date,
    cache: SceneCache | None = None,
    max_cloud_pct: float = 60.0,
    curve: CurveOptions | None = None,
    activity: Sequence[SiteWork] = (),
) -> SiteProgress:
    """Load a site's scenes up to ``as_of``, estimate each against the baseline, fit the curve.

    Scenes before the plan's start build the baseline (median of their clear pixels); every usable
    scene, before or after, gets an estimate. Skipped scenes keep their reason in ``records``.
    ``activity`` (the site's daily work from its sensors, :func:`jobs.iot.site_work`) is the stall
    flag's second witness; the days it read are recorded in the inputs.
    """
    grid = site_grid(site)
    layers = site_layers(site, grid)
    start = site.plan.start - timedelta(days=BASELINE_DAYS)
    cube, records = load_datacube(
        provider,
        grid,
        start,
        as_of,
        bands=S2_STAGE_BANDS,
        site_id=site.id,
        cache=cache,
        max_cloud_pct=max_cloud_pct,
        region=layers.footprint,
    )
    observations: list[SceneProgress] = []
    baseline_ids: list[str] = []
    baseline = latest_image = latest_change = None
    latest_scene: str | None = None
    latest_is_clear = False
    if cube.sizes.get("time", 0):
        images, valid = _stack(cube, S2_STAGE_BANDS)
        times = [pd.Timestamp(t).to_pydatetime().replace(tzinfo=UTC) for t in cube["time"].values]
        scene_ids = [str(s) for s in cube["scene_id"].values]
        plan_start = datetime(site.plan.start.year, site.plan.start.month, site.plan.start.day, tzinfo=UTC)
        pre = np.array([t < plan_start for t in times])
        if pre.any():
            baseline = baseline_composite(images[pre], valid[pre])
            baseline_ids = [s for s, p in zip(scene_ids, pre, strict=True) if p]
            for k in range(len(times)):
                obs, prob = estimator.observe(site.id, scene_ids[k], times[k], baseline, images[k], valid[k], layers)
                observations.append(obs)
                # Evidence pictures: the newest clear scene, else the newest with an estimate.
                clear = obs.observed_fraction >= CLEAR_FOR_EVIDENCE
                if obs.percent is not None and (clear or not latest_is_clear):
                    latest_image, latest_change, latest_scene = images[k], prob, scene_ids[k]
                    latest_is_clear = clear
        else:
            logger.warning("no scene before the plan's start: no baseline", extra={"site_id": site.id})
    opts = curve or CurveOptions()
    summary, points = summarize(
        site.id, site.plan, observations, as_of=as_of, method=estimator.method, options=opts, activity=activity
    )
    inputs = {
        **estimate_inputs(site, grid, estimator),
        "baseline_scenes": baseline_ids,
        "scenes_used": [o.scene_id for o in observations if o.percent is not None],
        **curve_inputs(as_of, opts, activity),
    }
    return SiteProgress(
        site.id,
        grid,
        records,
        observations,
        summary,
        points,
        baseline_ids,
        inputs,
        baseline,
        latest_image,
        latest_scene,
        latest_change,
        estimator.threshold,
    )


def estimate_inputs(site: Site, grid: Grid, estimator: SceneEstimator) -> dict[str, Any]:
    """The inputs every per-scene estimate rests on besides the scenes: grid, plan and estimator."""
    return {
        "grid": grid.to_dict(),
        "plan_sha256": plan_fingerprint(site),
        "method": estimator.method,
        "threshold": estimator.threshold,
        "provenance": dict(estimator.provenance),
        "stage_rules": {k: getattr(estimator.rules, k) for k in estimator.rules.__dataclass_fields__},
    }


def curve_inputs(as_of: date, opts: CurveOptions, activity: Sequence[SiteWork]) -> dict[str, Any]:
    """The inputs of the curve stage beyond the per-scene estimates: as-of day, options and sensor days.

    ``site_work`` holds the sensor days the stall flag read (its window), ``idle_since`` the start
    of the idle stretch that holds the plan position and ``work_ended`` the crews' leaving that can
    date a finish, so the figures trace back to them.
    """
    window = as_of - timedelta(days=opts.idle_days)
    stopped = idle_since(activity, as_of, opts)
    ended = work_ended(activity, as_of, opts)
    return {
        "as_of": as_of.isoformat(),
        "curve_options": {k: getattr(opts, k) for k in opts.__dataclass_fields__},
        "site_work": [
            [w.day.isoformat(), None if w.level is None else round(w.level, 4)]
            for w in activity
            if window < w.day <= as_of
        ],
        "idle_since": None if stopped is None else stopped.isoformat(),
        "work_ended": None if ended is None else ended.isoformat(),
    }


def plan_fingerprint(site: Site) -> str:
    """sha256 of what the per-scene estimates rest on besides imagery: boundary and phases."""
    parts = [site.boundary_wgs84.wkb_hex]
    for p in site.plan.phases:
        parts += [p.name, repr(p.weight), p.start.isoformat(), p.end.isoformat(), p.footprint_wgs84.wkb_hex]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def refigure_site_progress(
    site: Site,
    observations: Sequence[SceneProgress],
    stored_inputs: dict[str, Any],
    *,
    as_of: date,
    activity: Sequence[SiteWork] = (),
    curve: CurveOptions | None = None,
) -> tuple[ProgressSummary, list[ProgressPoint], dict[str, Any]]:
    """The curve, flags and plan figures again from stored per-scene estimates: no pixel is read.

    Slip, the plan's expectation and the stall flag move with the calendar and with the site's
    sensors even when no scene is new; the per-scene estimates (and the scene-side inputs stored
    with them: grid, baseline, checkpoint) stay as they were.

    Args:
        site: The site.
        observations: Its stored estimates by the stored figures' method, in time order.
        stored_inputs: The inputs stored with its newest figures (``method`` among them).
        as_of: The day to compute for.
        activity: The site's daily work from its sensors.
        curve: Curve options (the defaults when None).

    Returns:
        Summary, curve points and the inputs, as :func:`compute_site_progress` stores them.
    """
    opts = curve or CurveOptions()
    known = [o for o in observations if o.acquired_at_utc.date() <= as_of]
    method = str(stored_inputs["method"])
    summary, points = summarize(site.id, site.plan, known, as_of=as_of, method=method, options=opts, activity=activity)
    now = curve_inputs(as_of, opts, activity)
    scene_side = {k: v for k, v in stored_inputs.items() if k != "inputs_sha256" and k not in now}
    scene_side["scenes_used"] = [o.scene_id for o in known if o.percent is not None]
    return summary, points, {**scene_side, **now}
