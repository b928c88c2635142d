"""Refresh jobs: records, locks and executors around :func:`jobs.refresh.refresh_site`, then the portfolio stage.

A batch (``sitewatch refresh --all``, a scheduler tick, an API call) is:

1. one queued job record per site, with a fresh job id, written before anything runs;
2. :func:`run_site_job` per site on an executor (this process, a process pool or Dask). It opens
   its own engine, provider and model from the plain values of a :class:`RefreshSpec`, takes the
   site's lock (owner: the job id), refreshes the site, and finishes the job record. It never
   raises for one site. Rerun with the same job id (a Dask worker was lost), it updates the same
   record and its results replace themselves (same inputs, same rows);
3. when at least one site has new figures, the portfolio stage: daily sensor features, scores,
   alerts, cases and notifications (:func:`jobs.risk.score_portfolio`), with its own job record.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

import store
from aoi.errors import SiteNotFoundError
from imagery.cache import SceneCache
from imagery.providers.base import SceneProvider
from jobs.context import provider_from
from jobs.executors import Executor, InProcessExecutor
from jobs.iot import site_daily_features
from jobs.locks import DEFAULT_LOCK_TTL, SiteLock
from jobs.notify import Notifier
from jobs.progress import make_estimator
from jobs.refresh import DEFAULT_MAX_READ_ATTEMPTS, RefreshOutcome, refresh_site
from jobs.risk import score_portfolio
from jobs.settings import Settings
from jobs.stale import DEFAULT_QUEUED_TIMEOUT, StalePolicy, abandon_stale_jobs
from models.estimate import SceneEstimator
from store import jobs_repo, progress_repo, repo
from store.jobs_repo import JobRecord

logger = logging.getLogger(__name__)

Trigger = Literal["schedule", "manual", "api"]
TRIGGERS: tuple[str, ...] = ("schedule", "manual", "api")

#: Days of sensor history the portfolio stage turns into daily activity features.
FEATURE_DAYS = 60
#: The reason of a run skipped because another run of its site holds the lock (it refreshed nothing).
LOCKED = "locked: another refresh of this site is running"


@dataclass(frozen=True, slots=True)
class RefreshSpec:
    """Everything a worker needs to refresh a site, as plain picklable values.

    Attributes:
        database_url: SQLAlchemy URL (with its password: workers connect with it).
        as_of: The day figures are computed for.
        provider: ``SITEWATCH_IMAGERY_PROVIDER``.
        archive_dir: Local STAC archive (``local`` provider).
        stac_url: STAC API root (``stac``).
        stac_collection: STAC collection (``stac``).
        sentinelhub_client_id: Sentinel Hub OAuth client id.
        sentinelhub_client_secret: Sentinel Hub OAuth client secret.
        sentinelhub_base_url: Sentinel Hub endpoint.
        cache_dir: Scene cache directory, shared by every worker (None: no cache).
        checkpoint: Change-detection checkpoint (None: the non-learned baseline).
        torch_threads: CPU threads per worker for the model.
        max_cloud_pct: Scenes cloudier than this over the site are skipped.
        incremental: Read no scene for sites with none new: refigure from stored estimates, or skip if
            nothing changed (False recomputes everything).
        retries: Provider retries after a transient error.
        backoff_s: First retry delay, seconds.
        lock_ttl_s: Life of a lock row without renewal, seconds (``SITEWATCH_JOB_LEASE_S``).
        queued_timeout_s: A run queued this long is abandoned, seconds.
        max_read_attempts: Refreshes that fail to read a scene before it is rejected.
    """

    database_url: str
    as_of: date
    provider: str = "local"
    archive_dir: str | None = None
    stac_url: str | None = None
    stac_collection: str = "sentinel-2-l2a"
    sentinelhub_client_id: str | None = None
    sentinelhub_client_secret: str | None = None
    sentinelhub_base_url: str = "https://services.sentinel-hub.com"
    cache_dir: str | None = None
    checkpoint: str | None = None
    torch_threads: int = 1
    max_cloud_pct: float = 60.0
    incremental: bool = True
    retries: int = 2
    backoff_s: float = 0.5
    lock_ttl_s: float = DEFAULT_LOCK_TTL.total_seconds()
    queued_timeout_s: float = DEFAULT_QUEUED_TIMEOUT.total_seconds()
    max_read_attempts: int = DEFAULT_MAX_READ_ATTEMPTS

    @classmethod
    def from_settings(
        cls, settings: Settings, *, as_of: date, database_url: str | None = None, incremental: bool = True
    ) -> RefreshSpec:
        """The spec of the configured deployment (``database_url`` overrides the settings' one)."""
        return cls(
            database_url=database_url or settings.resolved_database_url,
            as_of=as_of,
            provider=settings.imagery_provider,
            archive_dir=str(settings.resolved_archive_dir.resolve()),
            stac_url=settings.stac_url,
            stac_collection=settings.stac_collection,
            sentinelhub_client_id=settings.sentinelhub_client_id,
            sentinelhub_client_secret=settings.sentinelhub_client_secret,
            sentinelhub_base_url=settings.sentinelhub_base_url,
            cache_dir=str(settings.cache_dir.resolve()),
            checkpoint=settings.checkpoint,
            torch_threads=settings.torch_threads,
            max_cloud_pct=settings.max_cloud_pct,
            incremental=incremental,
            lock_ttl_s=settings.job_lease_s,
            queued_timeout_s=settings.job_queued_timeout_s,
            max_read_attempts=settings.scene_max_read_attempts,
        )

    @property
    def stale_policy(self) -> StalePolicy:
        """When runs of this deployment count as dead (:mod:`jobs.stale`)."""
        return StalePolicy(timedelta(seconds=self.lock_ttl_s), timedelta(seconds=self.queued_timeout_s))


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch did.

    Attributes:
        batch_id: Shared by the batch's job records.
        outcomes: One per site that ran, in completion order.
        portfolio: The portfolio stage's job record (None when it did not run).
        stopped: Whether the batch was stopped before every site ran.
    """

    batch_id: str
    outcomes: tuple[RefreshOutcome, ...]
    portfolio: JobRecord | None = None
    stopped: bool = False
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def count(self, status: str) -> int:
        """How many sites ended with ``status``."""
        return sum(o.status == status for o in self.outcomes)


def new_id() -> str:
    """A fresh job or batch id (32 hex digits)."""
    return uuid.uuid4().hex


def process_owner() -> str:
    """``host:pid`` of this process, recorded on the runs it starts."""
    return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------- per-process resources

# Workers build these once per process from plain values and reuse them for every site.


@functools.lru_cache(maxsize=4)
def engine_for(database_url: str) -> Engine:
    """This process's engine for a URL (created once)."""
    return store.connect(database_url)


def provider_for(spec: RefreshSpec) -> SceneProvider:
    """This process's provider for a spec (the provider fields decide; built once)."""
    return provider_from(
        spec.provider,
        archive_dir=spec.archive_dir,
        stac_url=spec.stac_url,
        stac_collection=spec.stac_collection,
        sentinelhub_client_id=spec.sentinelhub_client_id,
        sentinelhub_client_secret=spec.sentinelhub_client_secret,
        sentinelhub_base_url=spec.sentinelhub_base_url,
    )


@functools.lru_cache(maxsize=4)
def estimator_for(checkpoint: str | None, threads: int) -> SceneEstimator:
    """This process's change model (loaded once)."""
    return make_estimator(checkpoint, threads=threads)


# ---------------------------------------------------------------- one site


def run_site_job(spec: RefreshSpec, site_id: str, job_id: str, *, engine: Engine | None = None) -> RefreshOutcome:
    """Refresh one site under its job record and lock; never raises for the site.

    Runs in any process: without ``engine`` it opens its own from ``spec.database_url``.
    Idempotent per job id: a rerun of an unfinished job (its worker was lost mid-site) takes its
    own lock again, bumps the record's attempt count and finishes the same record; a rerun of a
    finished one (its result was lost with its worker) returns the recorded outcome.

    The lock is taken before the record says "running" and released after it says how the run
    ended, so a "running" record whose lock is free has lost its process (:mod:`jobs.stale`).
    """
    engine = engine or engine_for(spec.database_url)
    t0 = time.perf_counter()
    try:
        done = jobs_repo.get_job(engine, job_id)
    except jobs_repo.JobNotFoundError:
        done = None
    if done is not None and done.status in ("ok", "skipped", "failed"):
        # Dask reruns a finished task whose result died with its worker: the record already says it all
        logger.info("job %s already %s", job_id, done.status, extra={"site_id": site_id, "job_id": job_id})
        return outcome_from_record(done)
    lock = SiteLock(engine, site_id, owner=job_id, ttl=timedelta(seconds=spec.lock_ttl_s))
    outcome: RefreshOutcome | None = None
    try:
        if not lock.acquire():
            outcome = RefreshOutcome(site_id, "skipped", LOCKED, job_id=job_id)
    except Exception as exc:  # the database itself may be failing; the record says so below if it can
        logger.exception("could not take the site lock", extra={"site_id": site_id, "job_id": job_id})
        outcome = RefreshOutcome(site_id, "failed", f"{type(exc).__name__}: {exc}", job_id=job_id)
    try:
        attempt = _start(engine, spec, site_id, job_id)
        if outcome is None:
            try:
                outcome = _refresh_locked(engine, spec, site_id, job_id, lock)
            except Exception as exc:  # the record must say what happened, whatever it was
                logger.exception("refresh crashed", extra={"site_id": site_id, "job_id": job_id})
                outcome = RefreshOutcome(
                    site_id, "failed", f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0, job_id=job_id
                )
        counts = {**outcome.counts, "attempt": attempt}
        jobs_repo.finish_job(
            engine, job_id, status=outcome.status, reason=outcome.reason, stage_seconds=outcome.stage_seconds,
            counts=counts,
        )  # fmt: skip
    finally:
        lock.release()
        _collect_cycles()
    logger.info("job %s: %s", job_id, outcome.label, extra={"site_id": site_id, "job_id": job_id})
    return replace(outcome, counts=counts)


_heap_frozen = False


def _collect_cycles() -> None:
    """Free the site's datacube now: it and its rioxarray accessor reference each other.

    Without this a long-lived worker holds several sites' cubes until a full collection. A full
    collection walks the whole heap (0.3 s with torch loaded), so the first one freezes what
    survives it (modules, the model): later ones only look at what sites allocated since.
    """
    global _heap_frozen
    gc.collect()
    if not _heap_frozen:
        gc.freeze()
        _heap_frozen = True


def _start(engine: Engine, spec: RefreshSpec, site_id: str, job_id: str) -> int:
    """Mark the run started (creating its record when nobody queued it); its attempt number."""
    try:
        return jobs_repo.start_job(engine, job_id, owner=process_owner())
    except jobs_repo.JobNotFoundError:
        jobs_repo.create_jobs(
            engine, [(job_id, site_id)], batch_id=job_id, trigger="manual", as_of=spec.as_of, executor="inprocess"
        )
        return jobs_repo.start_job(engine, job_id, owner=process_owner())


def outcome_from_record(record: JobRecord) -> RefreshOutcome:
    """The outcome a finished site job record stands for."""
    status: Literal["ok", "skipped", "failed"] = "failed"
    if record.status in ("ok", "skipped"):
        status = "ok" if record.status == "ok" else "skipped"
    counts = dict(record.counts)
    return RefreshOutcome(
        record.site_id or "",
        status,
        record.reason,
        scenes_found=int(counts.get("scenes_found", 0)),
        scenes_used=int(counts.get("scenes_used", 0)),
        seconds=record.seconds or 0.0,
        stage_seconds=dict(record.stage_seconds),
        job_id=record.id,
        counts=counts,
    )


def _refresh_locked(engine: Engine, spec: RefreshSpec, site_id: str, job_id: str, lock: SiteLock) -> RefreshOutcome:
    abandoned = jobs_repo.abandon_running(engine, site_id, except_job=job_id)
    if abandoned:
        logger.warning("%d earlier run(s) had died; marked abandoned", abandoned, extra={"site_id": site_id})
    try:
        site = repo.get_site(engine, site_id)
    except SiteNotFoundError as exc:
        return RefreshOutcome(site_id, "failed", f"SiteNotFoundError: {exc}", job_id=job_id)
    return refresh_site(
        engine,
        site,
        provider=provider_for(spec),
        estimator=estimator_for(spec.checkpoint, spec.torch_threads),
        as_of=spec.as_of,
        cache=SceneCache(Path(spec.cache_dir)) if spec.cache_dir else None,
        max_cloud_pct=spec.max_cloud_pct,
        incremental=spec.incremental,
        max_read_attempts=spec.max_read_attempts,
        retries=spec.retries,
        backoff_s=spec.backoff_s,
        job_id=job_id,
        between_stages=lock.renew,
    )


# ---------------------------------------------------------------- batches


def run_refresh(
    engine: Engine,
    spec: RefreshSpec,
    site_ids: Sequence[str],
    *,
    executor: Executor | None = None,
    trigger: Trigger | str = "manual",
    portfolio_stage: bool = True,
    on_outcome: Callable[[RefreshOutcome], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    batch_id: str | None = None,
    now: datetime | None = None,
    notifier: Notifier | None = None,
) -> BatchResult:
    """Refresh sites on an executor, then (when something changed) score the portfolio.

    First, runs left queued or running by a dead process are marked abandoned (:mod:`jobs.stale`).

    Args:
        engine: The database (the caller's; in-process tasks share it, other workers open their own).
        spec: What every worker needs, as plain values.
        site_ids: The sites to refresh.
        executor: Where sites run (default: this process).
        trigger: "schedule", "manual" or "api", recorded on every job.
        portfolio_stage: Score the portfolio afterwards when at least one site has new figures.
        on_outcome: Called in this process as each site finishes (progress bars).
        should_stop: Polled between sites; True stops submitting (SIGTERM).
        batch_id: Id shared by the batch's records (default: a new one).
        now: Creation time of the records (default: now; the scheduler passes its clock).
        notifier: Webhook and e-mail channels of the portfolio stage (None sends nothing).

    Returns:
        The batch's outcomes and its portfolio stage record.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}; expected one of {', '.join(TRIGGERS)}")
    executor = executor or InProcessExecutor()
    batch_id = batch_id or new_id()
    abandon_stale_jobs(engine, spec.stale_policy, now=now)
    jobs = [(new_id(), site_id) for site_id in site_ids]
    jobs_repo.create_jobs(
        engine, jobs, batch_id=batch_id, trigger=trigger, as_of=spec.as_of, executor=executor.name, now=now
    )
    items = [(spec, site_id, job_id) for job_id, site_id in jobs]
    site_of = dict(jobs)
    kwargs: dict[str, Any] = {"engine": engine} if executor.in_process else {}
    fn = functools.partial(run_site_job, **kwargs) if kwargs else run_site_job

    def on_error(item: tuple[Any, ...], exc: BaseException) -> RefreshOutcome:
        job_id = str(item[-1])
        reason = f"worker lost: {type(exc).__name__}: {exc}"
        logger.error("refresh task failed: %s", reason, extra={"site_id": site_of[job_id], "job_id": job_id})
        try:
            jobs_repo.finish_job(engine, job_id, status="failed", reason=reason)
        except Exception:  # the database itself may be what failed; the outcome still says it
            logger.exception("could not record the failure", extra={"job_id": job_id})
        return RefreshOutcome(site_of[job_id], "failed", reason, job_id=job_id)

    outcomes: list[RefreshOutcome] = []
    totals: dict[str, float] = {}
    for outcome in executor.map_unordered(fn, items, on_error=on_error, should_stop=should_stop):
        outcomes.append(outcome)
        for stage, sec in outcome.stage_seconds.items():
            totals[stage] = totals.get(stage, 0.0) + sec
        if on_outcome is not None:
            on_outcome(outcome)
    stopped = len(outcomes) < len(items)
    if stopped:
        done = {o.job_id for o in outcomes}
        for job_id, _ in jobs:
            if job_id not in done:
                jobs_repo.finish_job(engine, job_id, status="abandoned", reason="stopped before it ran")
    portfolio = None
    if portfolio_stage and any(o.status == "ok" for o in outcomes) and not stopped:
        portfolio = run_portfolio_stage(engine, as_of=spec.as_of, batch_id=batch_id, trigger=trigger, notifier=notifier)
        totals.update(portfolio.stage_seconds)
    return BatchResult(batch_id, tuple(outcomes), portfolio, stopped, totals)


def run_portfolio_stage(
    engine: Engine,
    *,
    as_of: date,
    batch_id: str,
    trigger: str = "manual",
    feature_days: int = FEATURE_DAYS,
    notifier: Notifier | None = None,
) -> JobRecord:
    """Daily sensor features, scores, alerts, cases and notifications for the whole book, as one job.

    Scores are a history: this stage runs once per batch that produced new figures, so a
    refresh that finds nothing new adds no score rows.
    """
    job_id = new_id()
    jobs_repo.create_jobs(
        engine, [(job_id, None)], batch_id=batch_id, trigger=trigger, as_of=as_of, executor="inprocess",
        kind="portfolio",
    )  # fmt: skip
    jobs_repo.start_job(engine, job_id, owner=process_owner())
    stages: dict[str, float] = {}
    counts: dict[str, Any] = {}
    status, reason = "ok", ""
    try:
        t0 = time.perf_counter()
        portfolio = repo.load_portfolio(engine)  # once: features, inputs and notifications all use it
        start = as_of - timedelta(days=feature_days)
        activity = {s.id: site_daily_features(engine, s.id, start, as_of) for s in portfolio.sites}
        t1 = time.perf_counter()
        stages["features"] = t1 - t0
        progress = progress_repo.latest_summaries(engine)
        scored = score_portfolio(
            engine, as_of=as_of, progress=progress, activity=activity, notifier=notifier, portfolio=portfolio
        )
        stages["score"] = time.perf_counter() - t1
        failed = [o for o in scored if o.status != "ok"]
        counts = {
            "loans_scored": len(scored) - len(failed),
            "loans_failed": len(failed),
            "alerts_opened": sum(len(o.alerts_opened) for o in scored),
            "alerts_resolved": sum(len(o.alerts_resolved) for o in scored),
        }
        if failed:
            reason = f"{len(failed)} loan(s) failed: " + "; ".join(f"{o.loan_id}: {o.reason}" for o in failed[:5])
    except Exception as exc:  # recorded on the job; the site figures stay stored
        logger.exception("portfolio stage failed", extra={"job_id": job_id})
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
    jobs_repo.finish_job(engine, job_id, status=status, reason=reason, stage_seconds=stages, counts=counts)
    return jobs_repo.get_job(engine, job_id)


# ---------------------------------------------------------------- the API's entry points

_background: list[threading.Thread] = []


def submit_refresh(
    engine: Engine,
    settings: Settings,
    site_id: str,
    trigger: Trigger | str = "api",
    *,
    as_of: date | None = None,
    dask_address: str | None = None,
    wait: bool = False,
) -> str:
    """Queue a refresh of one site and return its job id at once; poll it with :func:`get_job`.

    The job runs on the Dask cluster at ``dask_address`` (default ``settings.dask_address``) when
    there is one (fire and forget), else on a background thread of this process. Its portfolio
    stage is left to the next batch.

    Args:
        engine: The database.
        settings: Provider, cache and model settings.
        site_id: The site.
        trigger: Recorded on the job ("api" by default).
        as_of: Day to compute for (default: today, UTC).
        dask_address: Scheduler address, e.g. ``tcp://10.0.0.5:8786`` (default: ``SITEWATCH_DASK_ADDRESS``).
        wait: Run in the calling thread and return once finished (tests, the CLI).

    Raises:
        SiteNotFoundError: no such site (nothing is queued).
        ValueError: an unknown trigger.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}; expected one of {', '.join(TRIGGERS)}")
    repo.get_site(engine, site_id)
    dask_address = dask_address or settings.dask_address
    day = as_of or datetime.now(UTC).date()
    spec = RefreshSpec.from_settings(settings, as_of=day, database_url=engine.url.render_as_string(hide_password=False))
    job_id = new_id()
    executor = "dask" if dask_address else "inprocess"
    jobs_repo.create_jobs(engine, [(job_id, site_id)], batch_id=job_id, trigger=trigger, as_of=day, executor=executor)
    if wait:
        run_site_job(spec, site_id, job_id, engine=engine)
    elif dask_address:
        from distributed import Client, fire_and_forget

        with Client(dask_address, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            future = client.submit(run_site_job, spec, site_id, job_id, key=f"refresh-{job_id}", pure=False)
            fire_and_forget(future)  # type: ignore[no-untyped-call]
    else:
        thread = threading.Thread(
            target=run_site_job, args=(spec, site_id, job_id), kwargs={"engine": engine}, name=f"refresh-{job_id}",
            daemon=True,
        )  # fmt: skip
        _background[:] = [t for t in _background if t.is_alive()]
        _background.append(thread)
        thread.start()
    logger.info("refresh queued (%s)", trigger, extra={"site_id": site_id, "job_id": job_id})
    return job_id


def get_job(engine: Engine, job_id: str) -> JobRecord:
    """One job record (status, timings per stage, counts, error).

    Raises:
        JobNotFoundError: no job with that id (a ``LookupError``).
    """
    return jobs_repo.get_job(engine, job_id)


def wait_for_background(timeout_s: float | None = None) -> None:
    """Join the refresh threads :func:`submit_refresh` started (tests, clean shutdown)."""
    for thread in list(_background):
        thread.join(timeout_s)
