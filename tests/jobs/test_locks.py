"""Site locks: two refreshes of the same site never run at once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

import store
from jobs.locks import SiteLock, SiteLockedError


def _race(db_url: str, backend: str, rounds: int = 5) -> list[int]:
    """Two threads, each with its own engine, try the same lock at the same moment; winners per round."""
    engines = [store.connect(db_url), store.connect(db_url)]
    winners = []
    try:
        for r in range(rounds):
            barrier = threading.Barrier(2)
            locks = [SiteLock(e, f"site-{r}", owner=f"job-{r}-{k}", backend=backend) for k, e in enumerate(engines)]
            got = [False, False]

            def attempt(k: int, locks=locks, got=got, barrier=barrier) -> None:
                barrier.wait()
                got[k] = locks[k].acquire()

            threads = [threading.Thread(target=attempt, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            winners.append(sum(got))
            for lock in locks:
                lock.release()
    finally:
        for e in engines:
            e.dispose()
    return winners


def test_two_concurrent_attempts_take_a_site_lock_exactly_once(engine, db_url):
    assert _race(db_url, "auto") == [1] * 5


def test_two_concurrent_attempts_take_a_lock_row_exactly_once(engine, db_url):
    assert _race(db_url, "row") == [1] * 5


def test_a_released_lock_can_be_taken_again(engine):
    a = SiteLock(engine, "s1", owner="a")
    b = SiteLock(engine, "s1", owner="b")
    with a:
        assert not b.acquire()
        with pytest.raises(SiteLockedError):
            b.__enter__()
    assert b.acquire()
    b.release()


def test_a_lock_row_expires_and_its_owner_may_take_it_again(engine):
    dead = SiteLock(engine, "s1", owner="job-1", ttl=timedelta(seconds=-1), backend="row")
    assert dead.acquire()  # taken, already expired: its holder "died"
    assert SiteLock(engine, "s1", owner="job-1", backend="row").acquire(), "the same job retakes its own lock"
    other = SiteLock(engine, "s1", owner="job-2", backend="row")
    assert not other.acquire(), "renewed by job-1, so not expired"
    late = SiteLock(engine, "s2", owner="job-3", ttl=timedelta(seconds=-1), backend="row")
    assert late.acquire()
    assert SiteLock(engine, "s2", owner="job-4", backend="row").acquire(), "an expired lock is free"


def test_an_advisory_lock_dies_with_its_holders_connection(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's")
    a, b = store.connect(db_url), store.connect(db_url)
    try:
        holder = SiteLock(a, "s1", owner="a")
        assert holder.backend == "advisory"
        assert holder.acquire()
        assert not SiteLock(b, "s1", owner="b").acquire()
        assert holder._conn is not None
        holder._conn.invalidate()  # the connection drops, as when the worker is killed
        holder._conn = None
        holder.held = False
        # the server ends the dead session's backend, and its locks, a moment after the socket closes
        deadline = time.monotonic() + 10
        while not SiteLock(b, "s1", owner="b").acquire():
            assert time.monotonic() < deadline, "the lock outlived its holder's connection"
            time.sleep(0.05)
    finally:
        a.dispose()
        b.dispose()


@pytest.fixture(scope="module")
def scene_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("scene-cache")


@pytest.mark.integration
def test_two_concurrent_refreshes_of_a_site_run_it_once(engine, db_url, sim_archive, sim_sites, scene_cache):
    from jobs.pipeline import new_id, run_site_job
    from store import jobs_repo
    from tests.jobs.refresh_helpers import TEST_AS_OF, row_counts, spec_for, store_book

    store_book(engine)
    spec = spec_for(db_url, sim_archive, scene_cache)
    site = sim_sites[0].id
    jobs = [new_id(), new_id()]
    jobs_repo.create_jobs(engine, [(j, site) for j in jobs], batch_id="b", trigger="manual", as_of=TEST_AS_OF,
                          executor="inprocess")  # fmt: skip
    barrier = threading.Barrier(2)
    labels: dict[str, str] = {}

    def refresh(job_id: str) -> None:
        own = store.connect(db_url)  # like two machines: separate engines
        try:
            barrier.wait()
            labels[job_id] = run_site_job(spec, site, job_id, engine=own).label
        finally:
            own.dispose()

    threads = [threading.Thread(target=refresh, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(labels.values()) == ["ok", "skipped: locked: another refresh of this site is running"]
    assert row_counts(engine)["summaries"] == 1
    assert sorted(jobs_repo.get_job(engine, j).status for j in jobs) == ["ok", "skipped"]


def test_advisory_locks_of_two_books_in_two_schemas_do_not_collide(tmp_path):
    from tests.conftest import fresh_database_url

    first, second = (
        fresh_database_url("postgresql", tmp_path, prefix="sw_lock_a"),
        fresh_database_url("postgresql", tmp_path, prefix="sw_lock_b"),
    )
    engines = [store.connect(next(first)), store.connect(next(second))]
    try:
        locks = [SiteLock(e, "same-site-id", owner=f"job-{k}") for k, e in enumerate(engines)]
        assert [lock.acquire() for lock in locks] == [True, True], "each schema is its own book"
        assert not SiteLock(engines[0], "same-site-id", owner="job-9").acquire(), "but one per site within a book"
        for lock in locks:
            lock.release()
    finally:
        for e in engines:
            e.dispose()
        for gen in (first, second):
            gen.close()
