"""Refreshing sites: new scenes in, progress figures out; one outcome per site, never an exception."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from sqlalchemy import Engine

from aoi.model import Site
from imagery.cache import SceneCache
from imagery.errors import ImageryError
from imagery.providers.base import SceneProvider
from jobs.progress import compute_site_progress
from models.errors import ModelError
from models.estimate import SceneEstimator
from store import progress_repo

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    """What a refresh did for one site."""

    site_id: str
    status: Literal["ok", "skipped", "failed"]
    reason: str = ""
    scenes_found: int = 0
    scenes_used: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)


def refresh_site(
    engine: Engine,
    site: Site,
    *,
    provider: SceneProvider,
    estimator: SceneEstimator,
    as_of: date,
    cache: SceneCache | None = None,
    max_cloud_pct: float = 60.0,
) -> RefreshOutcome:
    """Recompute and store one site's progress; failures are returned, not raised."""
    t0 = time.perf_counter()
    try:
        result = compute_site_progress(
            site, provider=provider, estimator=estimator, as_of=as_of, cache=cache, max_cloud_pct=max_cloud_pct
        )
        t1 = time.perf_counter()
        progress_repo.save_progress(
            engine,
            summary=result.summary,
            points=result.points,
            observations=result.observations,
            records=result.records,
            inputs=result.inputs,
        )
    except (ImageryError, ModelError, ValueError, OSError) as exc:
        logger.warning("refresh failed: %s", exc, extra={"site_id": site.id})
        return RefreshOutcome(site.id, "failed", f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)
    t2 = time.perf_counter()
    if not result.records:
        return RefreshOutcome(site.id, "skipped", "no scenes found", seconds=t2 - t0)
    logger.info(
        "refreshed: %s of %s scenes used", result.summary.scenes_used, len(result.records), extra={"site_id": site.id}
    )
    return RefreshOutcome(
        site.id,
        "ok",
        scenes_found=len(result.records),
        scenes_used=result.summary.scenes_used,
        seconds=t2 - t0,
        stage_seconds={"compute": t1 - t0, "save": t2 - t1},
    )


def refresh_sites(
    engine: Engine,
    sites: Sequence[Site],
    *,
    provider: SceneProvider,
    estimator: SceneEstimator,
    as_of: date,
    cache: SceneCache | None = None,
    max_cloud_pct: float = 60.0,
    on_outcome: Callable[[RefreshOutcome], None] | None = None,
) -> list[RefreshOutcome]:
    """Refresh sites one after another in this process; one failing site never stops the others."""
    outcomes = []
    for site in sites:
        outcome = refresh_site(
            engine, site, provider=provider, estimator=estimator, as_of=as_of, cache=cache, max_cloud_pct=max_cloud_pct
        )
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
