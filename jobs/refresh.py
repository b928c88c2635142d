"""Refreshing one site: discover new scenes, fetch, mask, change against the baseline, progress, save.

One outcome per site, never an exception for one site. The stages and what each one costs:

- ``discover``: one provider search over the site's period.
- ``sensors``: the site's daily work from its stored readings (the stall flag's second witness).
  When ``incremental`` and every scene found was already processed (its record is stored, in the
  same transaction as the figures) by the estimator configured now, no cube is loaded: the
  figures are recomputed from the stored per-scene estimates, because slip, the plan's
  expectation and the stall flag move with the calendar and the sensors; if even those inputs
  are unchanged, the refresh stops with "skipped: no new scenes".
- ``fetch``: reading source imagery (provider reads; cached scenes cost nothing here).
- ``model``: cloud masks, datacube, change against the baseline and the progress curve.
- ``save``: one transaction per site (:func:`store.progress_repo.save_progress`), so a process
  killed mid-refresh leaves the previous figures or the new ones, never half of them.

Provider errors that may pass (timeouts, 5xx, a file briefly missing) are retried with
exponential backoff by :class:`RetryingProvider`; what still fails is recorded. A scene that
could not be read is tried again by the next refresh, since the error may pass; after
``max_read_attempts`` refreshes that all failed to read it, its record is marked rejected
(:data:`REASON_REJECTED`, with the last error), and no refresh reads it again until an operator
clears it (:func:`clear_rejected_scene`, ``sitewatch scenes clear``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import xarray as xr
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from aoi.model import Site
from aoi.records import SceneProgress, SceneRecord, SiteWork
from geo import BBox, Grid
from imagery.cache import SceneCache
from imagery.cube import REASON_READ_ERROR
from imagery.errors import ImageryError, ProviderUnavailableError, SceneUnavailableError
from imagery.providers.base import SceneProvider, SceneRef, read_bands_into
from iot.errors import IotError
from jobs.iot import site_work
from jobs.progress import (
    BASELINE_DAYS,
    SiteProgress,
    compute_site_progress,
    curve_inputs,
    estimate_inputs,
    refigure_site_progress,
    site_grid,
)
from models.errors import ModelError
from models.estimate import SceneEstimator
from models.progress import CurveOptions
from store import progress_repo, repo

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors worth trying again: the service or the file may be back in a moment.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ProviderUnavailableError,
    SceneUnavailableError,
    TimeoutError,
    ConnectionError,
)

#: The reason of a site skipped because nothing new was found.
NO_NEW_SCENES = "no new scenes"
#: Reason prefix of a scene given up on after repeated read failures (kept until an operator clears it).
REASON_REJECTED = "rejected"
#: Refreshes that fail to read a scene before it is rejected (``SITEWATCH_SCENE_MAX_READ_ATTEMPTS``).
DEFAULT_MAX_READ_ATTEMPTS = 3
#: ``SceneRecord.meta`` key: how many refreshes in a row failed to read the scene.
READ_ATTEMPTS = "read_attempts"


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    """What a refresh did for one site.

    Attributes:
        site_id: The site.
        status: "ok", "skipped" (no new scenes, no scenes at all, or locked) or "failed".
        reason: Why it was skipped or failed ("" when ok).
        scenes_found: Scenes the provider lists for the site's period.
        scenes_used: Scenes that entered the progress estimate.
        seconds: Wall time of the whole refresh.
        stage_seconds: Seconds per stage ("discover", "sensors", "fetch", "model", "save").
        job_id: The job record of this refresh ("" when run without one).
        counts: Other counts ("scenes_new", "retries", ...).
    """

    site_id: str
    status: Literal["ok", "skipped", "failed"]
    reason: str = ""
    scenes_found: int = 0
    scenes_used: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    job_id: str = ""
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Status and reason in one phrase, e.g. "skipped: no new scenes"."""
        return f"{self.status}: {self.reason}" if self.reason else self.status


class RetryingProvider:
    """A provider whose searches and reads are retried on transient errors, with exponential backoff.

    Also keeps the seconds spent in the inner provider (the ``fetch`` stage) and the retries made.

    Args:
        inner: The provider to wrap.
        retries: Attempts after the first one.
        backoff_s: Delay before the first retry; doubled each time.
        sleep: Waits between attempts (tests pass a fake).
    """

    def __init__(
        self,
        inner: SceneProvider,
        *,
        retries: int = 2,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.seconds = 0.0
        self.retried = 0

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            t0 = time.perf_counter()
            try:
                return fn()
            except TRANSIENT_ERRORS as exc:
                if attempt == self.retries:
                    raise
                logger.info("%s failed (%s); retry %d in %.1f s", what, exc, attempt + 1, delay)
                self.retried += 1
                self.sleep(delay)
                delay *= 2
            finally:
                self.seconds += time.perf_counter() - t0
        raise AssertionError("unreachable")  # pragma: no cover

    def search(self, bbox_wgs84: BBox, start: date | datetime, end: date | datetime) -> list[SceneRef]:
        """:meth:`SceneProvider.search`, retried."""
        return self._call("search", lambda: self.inner.search(bbox_wgs84, start, end))

    def read(self, scene: SceneRef, grid: Grid, bands: Sequence[str]) -> xr.DataArray:
        """:meth:`SceneProvider.read`, retried."""
        return self._call(f"read {scene.scene_id}", lambda: self.inner.read(scene, grid, bands))

    def read_into(
        self, scene: SceneRef, grid: Grid, bands: Sequence[str], out: Sequence[npt.NDArray[np.float32]]
    ) -> None:
        """:meth:`BufferedSceneProvider.read_into`, retried (the cube's fast path survives the wrapper)."""
        self._call(f"read {scene.scene_id}", lambda: read_bands_into(self.inner, scene, grid, bands, out))


class SceneFilteringProvider:
    """A provider whose searches leave out some scenes (rejected ones: they are not read again).

    Args:
        inner: The provider to wrap.
        excluded: Scene ids left out of every search.
    """

    def __init__(self, inner: SceneProvider, excluded: frozenset[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.excluded = excluded

    def search(self, bbox_wgs84: BBox, start: date | datetime, end: date | datetime) -> list[SceneRef]:
        """:meth:`SceneProvider.search`, less the excluded scenes."""
        return [s for s in self.inner.search(bbox_wgs84, start, end) if s.scene_id not in self.excluded]

    def read(self, scene: SceneRef, grid: Grid, bands: Sequence[str]) -> xr.DataArray:
        """:meth:`SceneProvider.read`, unchanged."""
        return self.inner.read(scene, grid, bands)

    def read_into(
        self, scene: SceneRef, grid: Grid, bands: Sequence[str], out: Sequence[npt.NDArray[np.float32]]
    ) -> None:
        """:meth:`BufferedSceneProvider.read_into`, unchanged."""
        read_bands_into(self.inner, scene, grid, bands, out)


@dataclass(frozen=True, slots=True)
class SceneHistory:
    """What the stored scene records of a site say about its scenes from one provider."""

    #: Scenes processed: recorded, and not waiting for another read attempt.
    seen: frozenset[str] = frozenset()
    #: Per scene that failed to read last time, how many refreshes in a row have failed to read it.
    read_failures: Mapping[str, int] = field(default_factory=dict)
    #: Records of scenes rejected after repeated read failures: not read again until an operator clears them.
    rejected: tuple[SceneRecord, ...] = ()

    @property
    def rejected_ids(self) -> frozenset[str]:
        """Ids of the rejected scenes."""
        return frozenset(r.scene_id for r in self.rejected)


def load_scene_history(engine: Engine, site_id: str, provider_name: str) -> SceneHistory:
    """The site's stored scene records from one provider, sorted into seen, failing and rejected.

    A scene counts as seen when its record is stored (it is saved in the same transaction as the
    figures), unless it failed with a read error, which may pass: it is tried again. A rejected
    scene counts as seen.
    """
    stored = [r for r in repo.list_scene_records(engine, site_id) if r.provider == provider_name]
    return SceneHistory(
        frozenset(r.scene_id for r in stored if not r.reason.startswith(REASON_READ_ERROR)),
        {r.scene_id: int(r.meta.get(READ_ATTEMPTS, 1)) for r in stored if r.reason.startswith(REASON_READ_ERROR)},
        tuple(r for r in stored if r.reason.startswith(REASON_REJECTED)),
    )


@dataclass(frozen=True, slots=True)
class Discovery:
    """What the discover stage found for one site."""

    found: int
    new: tuple[str, ...]
    #: Whether stored figures by the same method exist (without them, nothing can be skipped).
    has_figures: bool
    history: SceneHistory = field(default_factory=SceneHistory)
    #: The inputs stored with the newest figures (with their ``inputs_sha256``), if any.
    stored_inputs: dict[str, Any] = field(default_factory=dict)


def discover(engine: Engine, site: Site, provider: SceneProvider, *, method: str, as_of: date) -> Discovery:
    """Scenes of the site's period not yet processed: one search, two small queries, no pixels read."""
    grid = site_grid(site)
    scenes = provider.search(grid.bbox_wgs84, site.plan.start - timedelta(days=BASELINE_DAYS), as_of)
    history = load_scene_history(engine, site.id, provider.name)
    latest = progress_repo.latest_progress(engine, site.id)
    has_figures = latest is not None and latest[2].get("method") == method
    new = tuple(s.scene_id for s in scenes if s.scene_id not in history.seen)
    return Discovery(len(scenes), new, has_figures, history, dict(latest[2]) if latest else {})


def site_progress(
    site: Site,
    *,
    provider: SceneProvider,
    estimator: SceneEstimator,
    as_of: date,
    history: SceneHistory,
    cache: SceneCache | None = None,
    max_cloud_pct: float = 60.0,
    max_read_attempts: int | None = None,
    activity: Sequence[SiteWork] = (),
) -> SiteProgress:
    """:func:`jobs.progress.compute_site_progress` as a refresh sees the site's scenes (and ``activity``, its sensors).

    Rejected scenes are not read: their stored records stand in the result, in time order. With
    ``max_read_attempts``, read failures are counted on from ``history`` and a scene that reaches
    it is rejected (:func:`judge_read_failures`); without it (evidence packs), nothing is counted.
    """
    rejected = history.rejected_ids
    source: SceneProvider = SceneFilteringProvider(provider, rejected) if rejected else provider
    result = compute_site_progress(
        site,
        provider=source,
        estimator=estimator,
        as_of=as_of,
        cache=cache,
        max_cloud_pct=max_cloud_pct,
        activity=activity,
    )
    records = list(result.records)
    if max_read_attempts is not None:
        records = judge_read_failures(records, history.read_failures, max_attempts=max_read_attempts)
    records += [r for r in history.rejected if r.acquired_at_utc.date() <= as_of]
    records.sort(key=lambda r: (r.acquired_at_utc, r.scene_id))
    return replace(result, records=records)


def same_scene_inputs(stored: Mapping[str, Any], estimator: SceneEstimator, site: Site) -> bool:
    """Whether stored figures came from this estimator as configured now, on this site as it is now.

    A new checkpoint or threshold under the same method name, or an edited plan or boundary, makes
    every stored estimate stale: the incremental refresh must read the scenes again rather than
    refigure from them.
    """
    return _stored_as(stored, estimate_inputs(site, site_grid(site), estimator))


def _stored_as(stored: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """Whether ``stored`` holds the same values as ``now`` under each of ``now``'s keys."""
    return progress_repo.inputs_digest(dict(now)) == progress_repo.inputs_digest({k: stored.get(k) for k in now})


def covers_stored_figures(observations: Sequence[SceneProgress], stored: Mapping[str, Any]) -> bool:
    """Whether every scene the stored figures used still has its estimate (a backfill replaces them)."""
    have = {o.scene_id for o in observations if o.percent is not None}
    return set(stored.get("scenes_used") or ()) <= have


def load_site_work(engine: Engine, site: Site, as_of: date) -> list[SiteWork]:
    """The site's daily work up to ``as_of`` from its stored readings (or none), reference year included.

    ``jobs.iot.SENSOR_DAYS`` against a full year of reference, and the year before them against
    what of it came earlier (:func:`jobs.iot.site_work`), so a long stop is dated where it began.

    A site whose time zone cannot be resolved still gets its figures, from imagery alone (logged).
    """
    try:
        return site_work(engine, site.id, as_of, with_history=True)
    except IotError as exc:
        logger.warning("sensor work not read: %s", exc, extra={"site_id": site.id})
        return []


def judge_read_failures(
    records: Sequence[SceneRecord], previous: Mapping[str, int], *, max_attempts: int
) -> list[SceneRecord]:
    """Count each scene's read failures in a row, and reject those that reached ``max_attempts``.

    Args:
        records: This refresh's scene records.
        previous: Per scene, failed reads in a row before this refresh (:attr:`Discovery.read_failures`).
        max_attempts: Failed refreshes after which a scene is rejected (at least 1).

    Returns:
        The records, where a read error now carries ``meta["read_attempts"]``, and one that has
        failed ``max_attempts`` times is ``rejected: unreadable in N refreshes in a row; last error: ...``.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
    out = []
    for rec in records:
        if rec.reason.startswith(REASON_READ_ERROR):
            attempts = previous.get(rec.scene_id, 0) + 1
            meta = {**rec.meta, READ_ATTEMPTS: attempts}
            reason = rec.reason
            if attempts >= max_attempts:
                reason = f"{REASON_REJECTED}: unreadable in {attempts} refreshes in a row; last error: {rec.reason}"
            rec = replace(rec, reason=reason, meta=meta)
        out.append(rec)
    return out


class SceneNotRejectedError(LookupError):
    """The site has no rejected record of that scene."""


def list_rejected_scenes(engine: Engine, *, site_id: str | None = None) -> list[SceneRecord]:
    """Scenes rejected after repeated read failures (of one site, or all), with their reasons."""
    return repo.find_scene_records(engine, reason_prefix=REASON_REJECTED, site_id=site_id)


def clear_rejected_scene(engine: Engine, site_id: str, scene_id: str, *, actor: str) -> list[SceneRecord]:
    """Let the next refresh read a rejected scene again (after an operator fixed its source); audited.

    Its record becomes a read error with no failures counted, so discovery sees it as new and
    it gets ``max_read_attempts`` fresh tries.

    Raises:
        SceneNotRejectedError: the site has no rejected record of that scene.
    """
    cleared = repo.update_scene_records(
        engine,
        site_id,
        scene_id,
        reason_prefix=REASON_REJECTED,
        reason=f"{REASON_READ_ERROR}: rejection cleared by {actor}; to be read again",
        meta={READ_ATTEMPTS: 0},
        actor=actor,
    )
    if not cleared:
        raise SceneNotRejectedError(f"site {site_id} has no rejected scene {scene_id}")
    logger.info("rejected scene %s cleared by %s", scene_id, actor, extra={"site_id": site_id, "scene_id": scene_id})
    return cleared


def refresh_site(
    engine: Engine,
    site: Site,
    *,
    provider: SceneProvider,
    estimator: SceneEstimator,
    as_of: date,
    cache: SceneCache | None = None,
    max_cloud_pct: float = 60.0,
    incremental: bool = False,
    max_read_attempts: int = DEFAULT_MAX_READ_ATTEMPTS,
    retries: int = 2,
    backoff_s: float = 0.5,
    job_id: str = "",
    between_stages: Callable[[], None] | None = None,
) -> RefreshOutcome:
    """Recompute and store one site's progress; failures are returned, not raised.

    Args:
        engine: The database.
        site: The site.
        provider: Where scenes come from (wrapped in :class:`RetryingProvider`).
        estimator: The change model and its method name.
        as_of: The day figures are computed for.
        cache: Scene cache shared by every refresh.
        max_cloud_pct: Scenes cloudier than this over the site are skipped (and recorded).
        incremental: When no scene is new and figures by this estimator exist, read no scene:
            refigure from the stored estimates, or skip if the calendar and sensors are unchanged.
        max_read_attempts: Refreshes that fail to read a scene before it is rejected.
        retries: Provider retries after a transient error.
        backoff_s: First retry delay, seconds.
        job_id: Recorded in the outcome.
        between_stages: Called after each stage (a lock renewal).
    """
    t0 = time.perf_counter()
    timed = RetryingProvider(provider, retries=retries, backoff_s=backoff_s)
    stages: dict[str, float] = {}
    counts: dict[str, Any] = {}
    tick = between_stages or (lambda: None)

    def failed(exc: BaseException) -> RefreshOutcome:
        logger.warning("refresh failed: %s", exc, extra={"site_id": site.id, "job_id": job_id})
        counts["retries"] = timed.retried
        return RefreshOutcome(
            site.id,
            "failed",
            f"{type(exc).__name__}: {exc}",
            seconds=time.perf_counter() - t0,
            stage_seconds=stages,
            job_id=job_id,
            counts=counts,
        )

    # Stage 1: discover. A search and two indexed queries decide whether anything is to do.
    try:
        found = discover(engine, site, timed, method=estimator.method, as_of=as_of)
    except (ImageryError, OSError, ValueError) as exc:
        stages["discover"] = time.perf_counter() - t0
        return failed(exc)
    stages["discover"] = time.perf_counter() - t0
    counts.update(scenes_found=found.found, scenes_new=len(found.new))
    tick()
    # The site's sensors are the stall flag's second witness.
    t_sensors = time.perf_counter()
    try:
        work = load_site_work(engine, site, as_of)
    except SQLAlchemyError as exc:
        return failed(exc)
    stages["sensors"] = time.perf_counter() - t_sensors
    tick()
    # No scene is new, but the calendar, the sensors or the curve options may be: the figures are
    # recomputed from the stored estimates (no pixel read), or skipped if those are unchanged too.
    stored: list[SceneProgress] | None = None
    if incremental and not found.new and found.has_figures and same_scene_inputs(found.stored_inputs, estimator, site):
        if _stored_as(found.stored_inputs, curve_inputs(as_of, CurveOptions(), work)):
            logger.info("skipped: %s", NO_NEW_SCENES, extra={"site_id": site.id, "job_id": job_id})
            return RefreshOutcome(
                site.id,
                "skipped",
                NO_NEW_SCENES,
                scenes_found=found.found,
                seconds=time.perf_counter() - t0,
                stage_seconds=stages,
                job_id=job_id,
                counts=counts,
            )
        try:
            stored = progress_repo.list_observations(engine, site.id, method=estimator.method)
        except SQLAlchemyError as exc:
            return failed(exc)
        if not covers_stored_figures(stored, found.stored_inputs):
            # A backfill to an earlier day replaced the estimates the newest figures rest on.
            logger.info("stored estimates incomplete: scenes read again", extra={"site_id": site.id, "job_id": job_id})
            stored = None
    if stored is not None:
        t_fig = time.perf_counter()
        try:
            summary, points, inputs = refigure_site_progress(
                site, stored, found.stored_inputs, as_of=as_of, activity=work
            )
        except (ModelError, ValueError) as exc:
            return failed(exc)
        stages["model"] = time.perf_counter() - t_fig
        t_save = time.perf_counter()
        try:
            digest = progress_repo.save_progress(
                engine, summary=summary, points=points, observations=(), records=(), inputs=inputs,
                replace_observations=False,
            )  # fmt: skip
        except (ValueError, OSError, SQLAlchemyError) as exc:
            return failed(exc)
        stages["save"] = time.perf_counter() - t_save
        counts.update(scenes_used=summary.scenes_used, inputs_sha256=digest, refigured=True)
        logger.info("refigured without new scenes", extra={"site_id": site.id, "job_id": job_id})
        return RefreshOutcome(
            site.id,
            "ok",
            scenes_found=found.found,
            scenes_used=summary.scenes_used,
            seconds=time.perf_counter() - t0,
            stage_seconds=stages,
            job_id=job_id,
            counts=counts,
        )

    # Stages 2-3: fetch (provider reads, timed by the wrapper), masks, change and progress.
    # Rejected scenes are not read again; read failures are counted, and reject a scene at the limit.
    fetch_before = timed.seconds
    t1 = time.perf_counter()
    try:
        result = site_progress(
            site, provider=timed, estimator=estimator, as_of=as_of, history=found.history, cache=cache,
            max_cloud_pct=max_cloud_pct, max_read_attempts=max_read_attempts, activity=work,
        )  # fmt: skip
    except (ImageryError, ModelError, ValueError, OSError) as exc:
        return failed(exc)
    was_rejected = found.history.rejected_ids
    counts["scenes_rejected"] = sum(
        r.reason.startswith(REASON_REJECTED) and r.scene_id not in was_rejected for r in result.records
    )
    t2 = time.perf_counter()
    stages["fetch"] = timed.seconds - fetch_before
    stages["model"] = max(0.0, (t2 - t1) - stages["fetch"])
    counts["retries"] = timed.retried
    tick()

    # Stage 4: save, one transaction.
    try:
        digest = progress_repo.save_progress(
            engine,
            summary=result.summary,
            points=result.points,
            observations=result.observations,
            records=result.records,
            inputs=result.inputs,
        )
    except (ValueError, OSError, SQLAlchemyError) as exc:
        return failed(exc)
    t3 = time.perf_counter()
    stages["save"] = t3 - t2
    counts.update(scenes_used=result.summary.scenes_used, inputs_sha256=digest)
    if not result.records:
        return RefreshOutcome(
            site.id, "skipped", "no scenes found", seconds=t3 - t0, stage_seconds=stages, job_id=job_id, counts=counts
        )
    logger.info(
        "refreshed: %s of %s scenes used",
        result.summary.scenes_used,
        len(result.records),
        extra={"site_id": site.id, "job_id": job_id},
    )
    return RefreshOutcome(
        site.id,
        "ok",
        scenes_found=len(result.records),
        scenes_used=result.summary.scenes_used,
        seconds=t3 - t0,
        stage_seconds=stages,
        job_id=job_id,
        counts=counts,
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
    incremental: bool = False,
    on_outcome: Callable[[RefreshOutcome], None] | None = None,
) -> list[RefreshOutcome]:
    """Refresh sites one after another in this process; one failing site never stops the others.

    This is the bare loop (no job records, no locks); :func:`jobs.pipeline.run_refresh` adds both
    and runs on any executor.
    """
    outcomes = []
    for site in sites:
        outcome = refresh_site(
            engine,
            site,
            provider=provider,
            estimator=estimator,
            as_of=as_of,
            cache=cache,
            max_cloud_pct=max_cloud_pct,
            incremental=incremental,
        )
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
