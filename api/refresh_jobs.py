"""Site refreshes started over HTTP, run one at a time in a background thread, each recorded as a job.

A stand-in until the scheduler and executors land: it calls ``jobs.refresh.refresh_site``
with the local archive provider and the configured checkpoint, and records the job's state
and outcome in ``api_jobs`` so any worker process can answer ``GET /v1/jobs/{id}``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import date

from sqlalchemy import Engine

from aoi.model import Site
from api.metrics import Metrics
from imagery.cache import SceneCache
from imagery.providers.local import LocalArchiveProvider
from jobs.progress import make_estimator
from jobs.refresh import refresh_site
from jobs.settings import Settings
from models.estimate import SceneEstimator
from store import api_repo
from store.schema import utcnow

logger = logging.getLogger(__name__)


class RefreshRunner:
    """Runs site refreshes in one background thread and records each as a job.

    Args:
        settings: Where the archive, cache and checkpoint are.
        engine: The database.
        metrics: Counts finished jobs by status.
    """

    def __init__(self, settings: Settings, engine: Engine, metrics: Metrics) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sitewatch-refresh")
        self._estimator: SceneEstimator | None = None
        self._lock = threading.Lock()

    def submit(self, site: Site, *, actor: str, as_of: date) -> api_repo.JobRecord:
        """Record a queued refresh job for a site and start it in the background."""
        job = api_repo.JobRecord(
            id=uuid.uuid4().hex,
            kind="refresh",
            site_id=site.id,
            status="queued",
            created_at=utcnow(),
            created_by=actor,
            detail={"as_of": as_of.isoformat()},
        )
        api_repo.save_job(self.engine, job)
        self._pool.submit(self._run, job, site, as_of)
        logger.info("refresh job queued", extra={"job_id": job.id, "site_id": site.id})
        return job

    def _estimator_once(self) -> SceneEstimator:
        with self._lock:
            if self._estimator is None:
                self._estimator = make_estimator(self.settings.checkpoint, threads=self.settings.torch_threads)
            return self._estimator

    def _run(self, job: api_repo.JobRecord, site: Site, as_of: date) -> None:
        api_repo.update_job(self.engine, job.id, status="running", started_at=utcnow())
        status, reason, detail = "failed", "", dict(job.detail)
        try:
            outcome = refresh_site(
                self.engine,
                site,
                provider=LocalArchiveProvider(self.settings.resolved_archive_dir),
                estimator=self._estimator_once(),
                as_of=as_of,
                cache=SceneCache(self.settings.cache_dir),
                max_cloud_pct=self.settings.max_cloud_pct,
            )
            status, reason = outcome.status, outcome.reason
            detail.update({k: v for k, v in asdict(outcome).items() if k not in ("site_id", "status", "reason")})
        except Exception as exc:  # a background job records its failure instead of dying unseen
            logger.exception("refresh job crashed", extra={"job_id": job.id, "site_id": site.id})
            reason = f"{type(exc).__name__}: {exc}"
        api_repo.update_job(self.engine, job.id, status=status, reason=reason, finished_at=utcnow(), detail=detail)
        self.metrics.inc("sitewatch_refresh_jobs_total", {"status": status})
        logger.info("refresh job %s", status, extra={"job_id": job.id, "site_id": site.id})

    def shutdown(self) -> None:
        """Stop taking jobs; a running one finishes in its thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)
