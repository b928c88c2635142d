"""Runs left "queued" or "running" by a process that died are marked abandoned, with the reason.

A site run holds its site's lock for as long as its record says "running" (the lock is taken
before the record is started and released after it is finished, see
:func:`jobs.pipeline.run_site_job`). So a "running" site run whose lock is free has lost its
process:

- on PostgreSQL, the advisory lock is free the moment the server has dropped the dead holder's
  connection: the check takes the lock for an instant, and a run found dead is marked while it
  is held, so a finishing run can never be mistaken for a dead one;
- on other databases, the lock row is a lease the run renews after every stage
  (``SITEWATCH_JOB_LEASE_S``): a run whose lease ran out is dead (or stuck beyond its lease).

A portfolio run takes no lock; it is abandoned when it has run longer than the lease. A run still
"queued" ``SITEWATCH_JOB_QUEUED_TIMEOUT_S`` after it was created was never picked up (its
submitter stopped, or its task was lost).

Abandoned runs do not count as runs for the scheduler (:func:`store.jobs_repo.last_runs`), so
their sites are due again and the next refresh runs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from jobs.locks import DEFAULT_LOCK_TTL, SiteLock
from jobs.settings import Settings
from store import jobs_repo
from store.jobs_repo import JobRecord
from store.schema import utcnow

logger = logging.getLogger(__name__)

#: Default time a run may stay queued before it is abandoned.
DEFAULT_QUEUED_TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class StalePolicy:
    """When a run's holder counts as gone.

    Attributes:
        lease: A lock row not renewed for this long, or a portfolio run running this long, is dead.
        queued_timeout: A run queued this long was never picked up.
    """

    lease: timedelta = DEFAULT_LOCK_TTL
    queued_timeout: timedelta = DEFAULT_QUEUED_TIMEOUT

    @classmethod
    def from_settings(cls, settings: Settings) -> StalePolicy:
        """``SITEWATCH_JOB_LEASE_S`` and ``SITEWATCH_JOB_QUEUED_TIMEOUT_S``."""
        return cls(timedelta(seconds=settings.job_lease_s), timedelta(seconds=settings.job_queued_timeout_s))


def abandon_stale_jobs(engine: Engine, policy: StalePolicy | None = None, *, now: datetime | None = None) -> list[str]:
    """Mark every run whose holder is gone as abandoned, with the reason; returns their ids.

    Safe to call at any time from any process (the scheduler calls it every tick, a batch before
    it starts): a run that is alive, or that finishes while it is checked, keeps its status.

    Args:
        engine: The database.
        policy: Lease and queue timeouts (default: 30 min and 12 h).
        now: The current time, timezone-aware UTC (tests pass their clock).
    """
    policy = policy or StalePolicy()
    now = now or utcnow()
    marked: list[str] = []
    for record in jobs_repo.in_flight_jobs(engine):
        reason = _dead(engine, record, policy, now)
        if reason is not None:
            marked.append(record.id)
            logger.warning(
                "run %s abandoned: %s", record.id, reason, extra={"site_id": record.site_id, "job_id": record.id}
            )
    return marked


def _dead(engine: Engine, record: JobRecord, policy: StalePolicy, now: datetime) -> str | None:
    """Mark one run abandoned when its holder is gone; the reason, or None when it was left alone."""
    if record.status == "queued":
        created = record.created_at or now
        if now - created < policy.queued_timeout:
            return None
        reason = f"queued at {created.isoformat()} and never started within {policy.queued_timeout}"
        return reason if jobs_repo.abandon_job(engine, record.id, reason=reason, expect="queued", now=now) else None
    if record.kind != "site" or record.site_id is None:
        started = record.started_at or record.created_at or now
        if now - started < policy.lease:
            return None
        reason = f"running since {started.isoformat()}, longer than its lease of {policy.lease}: its process is gone"
        return reason if jobs_repo.abandon_job(engine, record.id, reason=reason, expect="running", now=now) else None
    probe = SiteLock(engine, record.site_id, owner=f"stale-check:{record.id}")
    if probe.backend == "advisory":
        if not probe.acquire():
            return None  # its holder (or a newer run of the site) is alive
        try:
            reason = f"its site lock was free while it was {record.owner or 'running'}: its process is gone"
            done = jobs_repo.abandon_job(engine, record.id, reason=reason, expect="running", now=now)
        finally:
            probe.release()
        return reason if done else None
    reason = f"its lock lease ran out ({record.owner or 'unknown process'} stopped renewing it): its process is gone"
    done = jobs_repo.abandon_job(
        engine, record.id, reason=reason, expect="running", unless_lock_row_live=record.site_id, now=now
    )
    return reason if done else None
