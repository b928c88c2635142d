"""A scene's change against the pre-construction baseline, as a raster for map overlays.

The same steps as the progress stage (``jobs.progress``), stopped at the per-pixel change
probability of one scene instead of the site's percent complete.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from aoi.model import Site
from aoi.records import SceneRecord
from geo import Grid
from imagery.cache import SceneCache
from imagery.cog import write_cog
from imagery.cube import load_datacube
from imagery.errors import SceneUnavailableError
from imagery.providers.base import SceneProvider
from jobs.context import open_provider
from jobs.progress import BASELINE_DAYS, site_grid, site_layers
from jobs.settings import Settings
from models.estimate import S2_STAGE_BANDS, SceneEstimator, baseline_composite

logger = logging.getLogger(__name__)


def change_probability(
    site: Site,
    scene_id: str,
    acquired_at_utc: datetime,
    *,
    provider: SceneProvider,
    estimator: SceneEstimator,
    cache: SceneCache | None = None,
    max_cloud_pct: float = 60.0,
) -> tuple[npt.NDArray[np.float32], Grid]:
    """The change probability of one scene against the site's pre-construction baseline.

    Args:
        site: The site.
        scene_id: The scene (it must pass the cloud screen to be in the cube).
        acquired_at_utc: Its sensing time (bounds the search).
        provider: Where scenes come from.
        estimator: The change function and threshold used by the progress stage.
        cache: Scene cache shared with refreshes.
        max_cloud_pct: Cloud screen of the cube.

    Returns:
        (y, x) float32 probability in [0, 1] on the site's grid (UTM), NaN where not observed;
        and the grid.

    Raises:
        SceneUnavailableError: the scene is not usable, or there is no scene before the plan's start.
    """
    grid = site_grid(site)
    layers = site_layers(site, grid)
    start = site.plan.start - timedelta(days=BASELINE_DAYS)
    end = acquired_at_utc + timedelta(seconds=1)
    cube, _ = load_datacube(
        provider,
        grid,
        start,
        end,
        bands=S2_STAGE_BANDS,
        site_id=site.id,
        cache=cache,
        max_cloud_pct=max_cloud_pct,
        region=layers.footprint,
    )
    scene_ids = [str(s) for s in cube["scene_id"].values] if cube.sizes.get("time", 0) else []
    if scene_id not in scene_ids:
        raise SceneUnavailableError(f"scene {scene_id!r} is not usable for site {site.id!r}")
    # stack the cube: (time, band, y, x) reflectance and (time, y, x) validity
    images = np.stack([np.asarray(cube[b].values, dtype=np.float32) for b in S2_STAGE_BANDS], axis=1)
    valid = np.asarray(cube["valid"].values, dtype=bool)
    times = [pd.Timestamp(t).to_pydatetime().replace(tzinfo=UTC) for t in cube["time"].values]
    plan_start = datetime(site.plan.start.year, site.plan.start.month, site.plan.start.day, tzinfo=UTC)
    pre = np.array([t < plan_start for t in times])
    if not pre.any():
        raise SceneUnavailableError(f"site {site.id!r} has no scene before its plan's start: no baseline")
    baseline = baseline_composite(images[pre], valid[pre])
    k = scene_ids.index(scene_id)
    _, prob = estimator.observe(site.id, scene_id, times[k], baseline, images[k], valid[k], layers)
    return prob.astype(np.float32), grid


def scene_change_probability(
    settings: Settings, site: Site, scene: SceneRecord, estimator: SceneEstimator
) -> tuple[npt.NDArray[np.float32], Grid]:
    """``change_probability`` of a stored scene with the configured provider, scene cache and cloud screen."""
    return change_probability(
        site,
        scene.scene_id,
        scene.acquired_at_utc,
        provider=open_provider(settings),
        estimator=estimator,
        cache=SceneCache(settings.cache_dir),
        max_cloud_pct=settings.max_cloud_pct,
    )


def write_change_cog(path: Path, probability: npt.NDArray[np.float32], grid: Grid, *, method: str) -> Path:
    """Store a (y, x) change probability as a one-band float32 COG (NaN = not observed), atomically."""
    return write_cog(
        path, probability, grid, nodata=float("nan"), band_names=["change_probability"], tags={"method": method}
    )
