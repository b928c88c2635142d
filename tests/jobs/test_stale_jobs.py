"""Runs left queued or running by a dead process are abandoned, with the reason, and their sites run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

import store
from jobs.locks import SiteLock
from jobs.pipeline import LOCKED, new_id, run_refresh
from jobs.scheduler import EPOCH, Cadence, Scheduler
from jobs.stale import StalePolicy, abandon_stale_jobs
from store import jobs_repo, progress_repo, repo
from store.schema import utcnow
from tests.jobs.refresh_helpers import TEST_AS_OF, spec_for, store_book
from tests.jobs.test_scheduler import _empty_archive

ROOT = Path(__file__).resolve().parents[2]
DAY = timedelta(days=1)

#: A worker that takes the site's lock, marks its run "running", then hangs inside the refresh.
HANGING_WORKER = textwrap.dedent(
    """
    import sys, time
    from dataclasses import replace
    from pathlib import Path

    import jobs.pipeline as pipeline
    from tests.jobs.refresh_helpers import spec_for

    url, archive, cache, site, job, marker = sys.argv[1:7]

    def hang(*args, **kwargs):
        Path(marker).write_text("in the middle of the site")
        time.sleep(600)

    pipeline.refresh_site = hang
    pipeline.run_site_job(replace(spec_for(url, Path(archive), Path(cache)), lock_ttl_s=1.0), site, job)
    """
)


@pytest.fixture(scope="module")
def scene_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("scene-cache")


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _lock_free(engine, site_id: str) -> bool:
    probe = SiteLock(engine, site_id, owner="probe")
    if probe.acquire():
        probe.release()
        return True
    return False


@pytest.mark.integration
def test_a_refresh_killed_mid_site_is_abandoned_and_the_next_refresh_reruns_the_site(
    engine, db_url, sim_archive, sim_sites, scene_cache, tmp_path
):
    store_book(engine)
    site = sim_sites[0].id
    job = new_id()
    jobs_repo.create_jobs(engine, [(job, site)], batch_id=job, trigger="schedule", as_of=TEST_AS_OF, executor="dask")
    marker = tmp_path / "started"
    worker = subprocess.Popen(
        [sys.executable, "-c", HANGING_WORKER, db_url, str(sim_archive), str(scene_cache), site, job, str(marker)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        _wait_for(lambda: marker.exists() or worker.poll() is not None, 120, "the worker to reach the refresh")
        assert worker.poll() is None, "the worker is in the middle of the site"
        assert jobs_repo.get_job(engine, job).status == "running"
        assert not _lock_free(engine, site), "it holds the site's lock"
        assert abandon_stale_jobs(engine) == [], "a live run is left alone"
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait(30)
    # PostgreSQL drops the advisory lock with the dead connection; the SQLite lease (1 s) runs out
    _wait_for(lambda: _lock_free(engine, site), 30, "the dead worker's lock to be free")
    time.sleep(0.1)

    result = run_refresh(engine, spec_for(db_url, sim_archive, scene_cache), [site], portfolio_stage=False)

    dead = jobs_repo.get_job(engine, job)
    assert dead.status == "abandoned"
    assert "process is gone" in dead.reason
    assert dead.finished_at is not None
    assert [o.status for o in result.outcomes] == ["ok"], result.outcomes
    assert jobs_repo.get_job(engine, result.outcomes[0].job_id).status == "ok"
    assert progress_repo.latest_progress(engine, site) is not None, "the site's figures are stored"


@pytest.mark.integration
def test_a_run_holding_its_lock_is_left_alone_and_abandoned_once_the_lock_is_gone(engine):
    store_book(engine)
    site = repo.list_site_ids(engine)[0]
    job = new_id()
    jobs_repo.create_jobs(engine, [(job, site)], batch_id=job, trigger="manual", as_of=TEST_AS_OF, executor="dask")
    lock = SiteLock(engine, site, owner=job, ttl=timedelta(minutes=5))
    assert lock.acquire()
    jobs_repo.start_job(engine, job, owner="worker-host:4242")
    policy = StalePolicy(lease=timedelta(minutes=5), queued_timeout=timedelta(hours=1))
    assert abandon_stale_jobs(engine, policy) == []
    assert jobs_repo.get_job(engine, job).status == "running"
    if lock.backend == "advisory":
        lock.release()  # what the server does when the holder's connection dies
        later = None
    else:
        later = utcnow() + timedelta(minutes=6)  # the holder stopped renewing its lease
    assert abandon_stale_jobs(engine, policy, now=later) == [job]
    record = jobs_repo.get_job(engine, job)
    assert record.status == "abandoned"
    assert "worker-host:4242" in record.reason
    assert abandon_stale_jobs(engine, policy, now=later) == [], "once"
    lock.release()


def test_a_run_that_finishes_while_checked_keeps_its_status(tmp_path):
    engine = store.connect(f"sqlite:///{tmp_path / 'sw.db'}")
    store.upgrade(engine)
    job = new_id()
    jobs_repo.create_jobs(engine, [(job, "s1")], batch_id=job, trigger="manual", as_of=TEST_AS_OF, executor="dask")
    jobs_repo.start_job(engine, job, owner="h:1")
    jobs_repo.finish_job(engine, job, status="ok")
    assert not jobs_repo.abandon_job(engine, job, reason="x", expect="running")
    assert jobs_repo.get_job(engine, job).status == "ok"


def test_stale_queued_and_portfolio_runs_are_abandoned_and_the_scheduler_reruns_their_sites(tmp_path):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    spec = spec_for(url, _empty_archive(tmp_path / "archive"), tmp_path / "cache", queued_timeout_s=12 * 3600.0)
    sites = repo.list_site_ids(engine)
    t0 = EPOCH + 200 * 5 * DAY + timedelta(hours=2)
    now = [t0]
    sched = Scheduler(engine, lambda _: spec, cadence=Cadence(5 * DAY, 0.0), clock=lambda: now[0])
    assert len(sched.tick().outcomes) == len(sites)

    # A batch at the next slot died after queueing site A; site B was skipped while another run held its lock;
    # a portfolio stage died mid-way.
    a, b = sites[0], sites[1]
    slot = t0 + 5 * DAY
    queued, locked, portfolio = new_id(), new_id(), new_id()
    jobs_repo.create_jobs(
        engine, [(queued, a)], batch_id=queued, trigger="schedule", as_of=None, executor="x", now=slot
    )
    jobs_repo.create_jobs(
        engine, [(locked, b)], batch_id=locked, trigger="schedule", as_of=None, executor="x", now=slot
    )
    jobs_repo.start_job(engine, locked, owner="h:1")
    jobs_repo.finish_job(engine, locked, status="skipped", reason=LOCKED)
    jobs_repo.create_jobs(engine, [(portfolio, None)], batch_id=portfolio, trigger="schedule", as_of=None,
                          executor="x", kind="portfolio", now=slot)  # fmt: skip
    jobs_repo.start_job(engine, portfolio, owner="h:2")

    now[0] = slot + timedelta(hours=1)
    ran = {o.site_id for o in sched.tick().outcomes}
    assert a not in ran, "a queued run is not stale yet: the site is taken care of"
    assert b in ran, "a run skipped for the lock did not refresh the site"
    assert ran == set(sites) - {a}
    assert jobs_repo.get_job(engine, queued).status == "queued"

    now[0] = slot + timedelta(hours=13)
    later = sched.tick()
    assert [o.site_id for o in later.outcomes] == [a], "abandoned: its site runs again, once"
    record = jobs_repo.get_job(engine, queued)
    assert record.status == "abandoned"
    assert "never started" in record.reason
    # a portfolio stage takes no lock: it is dead once it has run longer than its lease
    assert jobs_repo.get_job(engine, portfolio).status == "running"
    lease = StalePolicy(lease=timedelta(minutes=30))
    assert abandon_stale_jobs(engine, lease, now=utcnow() + timedelta(minutes=29)) == []
    assert abandon_stale_jobs(engine, lease, now=utcnow() + timedelta(minutes=31)) == [portfolio]
    assert "lease" in jobs_repo.get_job(engine, portfolio).reason
