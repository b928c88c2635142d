"""Refreshes on a cadence per site, with deterministic jitter, catching up once after downtime.

Each site has slots every ``cadence`` starting at ``EPOCH + offset(site)``, where the offset is
a hash of the site id spread over ``jitter`` of the cadence, so a big book does not fire at once
and the same site always fires at the same time of its cycle. A site is **due** when no run of
it started at or after its latest slot. After any downtime, however many slots were missed,
only the latest one matters: an overdue site runs once. A site never refreshed is due at once.
Runs that did not refresh the site do not count: abandoned ones (their process died, see
:mod:`jobs.stale`) and those skipped because another run held the site's lock. A site with a run
still queued or running is not due (that run is doing the work); each tick first marks the runs
whose process is gone as abandoned, so their sites come due again.

The clock is injected (:class:`Scheduler` takes ``clock`` and ``sleep``) so cadence and
catch-up are tested without waiting.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from jobs.executors import Executor
from jobs.notify import Notifier
from jobs.pipeline import LOCKED, BatchResult, RefreshSpec, run_refresh
from jobs.settings import Settings
from jobs.stale import abandon_stale_jobs
from store import jobs_repo, repo

logger = logging.getLogger(__name__)

#: Slots count from here (a Monday, UTC).
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
#: Default time between two refreshes of a site (Sentinel-2 revisits every 5 days).
DEFAULT_CADENCE = timedelta(days=5)


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often sites refresh.

    Attributes:
        every: Time between two slots of a site.
        jitter: Share of ``every`` (0-1) over which site offsets are spread (0: all at the epoch).
    """

    every: timedelta = DEFAULT_CADENCE
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise ValueError(f"cadence must be positive, not {self.every}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], not {self.jitter}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Cadence:
        """The cadence configured by ``SITEWATCH_REFRESH_CADENCE_DAYS`` and ``SITEWATCH_REFRESH_JITTER``."""
        return cls(timedelta(days=settings.refresh_cadence_days), settings.refresh_jitter)

    def offset(self, site_id: str) -> timedelta:
        """The site's fixed offset within the cycle (the same on every machine and run)."""
        h = int.from_bytes(hashlib.sha256(site_id.encode()).digest()[:8], "big") / 2**64
        return timedelta(seconds=int(h * self.jitter * self.every.total_seconds()))

    def latest_slot(self, site_id: str, now: datetime) -> datetime | None:
        """The site's newest slot at or before ``now`` (None before its first one)."""
        first = EPOCH + self.offset(site_id)
        if now < first:
            return None
        return first + self.every * ((now - first) // self.every)

    def next_slot(self, site_id: str, now: datetime) -> datetime:
        """The site's first slot after ``now``."""
        latest = self.latest_slot(site_id, now)
        return EPOCH + self.offset(site_id) if latest is None else latest + self.every


def due_sites(site_ids: Iterable[str], last_runs: Mapping[str, datetime], now: datetime, cadence: Cadence) -> list[str]:
    """Sites whose latest slot has no run started at or after it (never-run sites included), in order."""
    due = []
    for site_id in site_ids:
        last = last_runs.get(site_id)
        slot = cadence.latest_slot(site_id, now)
        if last is None or (slot is not None and last < slot):
            due.append(site_id)
    return due


class Scheduler:
    """Runs due sites in batches until stopped.

    Args:
        engine: The database (portfolio, job records).
        spec_for: The refresh spec for a moment (its ``as_of`` is that day).
        cadence: Per-site cadence and jitter.
        executor: Where sites run.
        clock: Now, timezone-aware UTC.
        sleep: Waits up to a number of seconds; returns early when stopped (default: the stop event).
        max_sites_per_tick: At most this many sites per batch; the rest wait for the next tick.
        poll_s: Longest sleep between ticks, seconds.
        on_batch: Called after each batch.
        notifier: Notification channels of each batch's portfolio stage.
    """

    def __init__(
        self,
        engine: Engine,
        spec_for: Callable[[datetime], RefreshSpec],
        *,
        cadence: Cadence | None = None,
        executor: Executor | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] | None = None,
        max_sites_per_tick: int = 1000,
        poll_s: float = 300.0,
        on_batch: Callable[[BatchResult], None] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.engine = engine
        self.spec_for = spec_for
        self.cadence = cadence or Cadence()
        self.executor = executor
        self.clock = clock
        self.stop_event = threading.Event()
        self.sleep = sleep or (lambda s: self.stop_event.wait(s) and None)
        self.max_sites_per_tick = max_sites_per_tick
        self.poll_s = poll_s
        self.on_batch = on_batch
        self.notifier = notifier

    def stop(self) -> None:
        """Ask the loop to stop: the running site finishes, no new one starts (SIGTERM handler)."""
        self.stop_event.set()

    def due(self, now: datetime | None = None) -> list[str]:
        """Sites due now, less those with a run still queued or running."""
        now = now or self.clock()
        busy = {r.site_id for r in jobs_repo.in_flight_jobs(self.engine) if r.kind == "site"}
        last = jobs_repo.last_runs(self.engine, ignore_reason_prefix=LOCKED)
        return [s for s in due_sites(repo.list_site_ids(self.engine), last, now, self.cadence) if s not in busy]

    def tick(self) -> BatchResult | None:
        """Mark dead runs abandoned, then refresh the sites due now (at most ``max_sites_per_tick``).

        Returns None when none is due.
        """
        now = self.clock()
        spec = self.spec_for(now)
        abandon_stale_jobs(self.engine, spec.stale_policy, now=now)
        due = self.due(now)[: self.max_sites_per_tick]
        if not due:
            return None
        logger.info("scheduler: %d site(s) due", len(due))
        result = run_refresh(
            self.engine,
            spec,
            due,
            executor=self.executor,
            trigger="schedule",
            should_stop=self.stop_event.is_set,
            now=now,
            notifier=self.notifier,
        )
        if self.on_batch is not None:
            self.on_batch(result)
        return result

    def seconds_to_next(self, now: datetime | None = None) -> float:
        """Seconds until the next slot of any site, capped at ``poll_s``."""
        now = now or self.clock()
        soonest = min(
            (self.cadence.next_slot(s, now) for s in repo.list_site_ids(self.engine)),
            default=now + timedelta(seconds=self.poll_s),
        )
        return max(1.0, min(self.poll_s, (soonest - now).total_seconds()))

    def run_forever(self, *, max_ticks: int | None = None) -> int:
        """Tick, sleep until the next slot, repeat until :meth:`stop`; returns the batches run."""
        batches = ticks = 0
        while not self.stop_event.is_set():
            if self.tick() is not None:
                batches += 1
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
            if not self.stop_event.is_set():
                self.sleep(self.seconds_to_next())
        logger.info("scheduler stopped after %d batch(es)", batches)
        return batches
