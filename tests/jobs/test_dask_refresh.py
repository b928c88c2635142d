"""Refresh on a real Dask LocalCluster: a worker killed mid-batch, and every site still finishes once."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

import store
from jobs.executors import DaskRunner, ProcessPoolRunner
from jobs.pipeline import run_refresh
from store import jobs_repo, progress_repo
from tests.jobs.refresh_helpers import TEST_AS_OF, clone_book, row_counts, spec_for, store_book

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Clones per simulated site: 2 sites x 3 = 6 sites over 2 workers (each imports torch: keep them few).
COPIES = 3


@pytest.fixture(scope="module")
def scene_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("scene-cache")


@pytest.fixture(scope="module")
def reference(sim_archive, sim_sites, scene_cache, tmp_path_factory):
    """In-process figures of the two simulated sites: what every executor must reproduce."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ref') / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    result = run_refresh(engine, spec_for(url, sim_archive, scene_cache), [s.id for s in sim_sites])
    assert {o.status for o in result.outcomes} == {"ok"}
    out = {s.id: progress_repo.latest_progress(engine, s.id) for s in sim_sites}
    engine.dispose()
    return out


def _kill_a_running_site(engine, killed: list, stop: threading.Event) -> None:
    """Once one site is done, SIGKILL the process of a run in progress (its record says which) and
    append that record to ``killed``."""
    while not stop.is_set():
        records = jobs_repo.list_jobs(engine, limit=None)
        if any(r.status == "ok" for r in records):
            # a run started moments ago is surely still in progress (a site takes over a second)
            fresh = datetime.now(UTC) - timedelta(seconds=0.3)
            running = [r for r in records if r.status == "running" and r.owner and r.started_at > fresh]
            if running:
                os.kill(int(running[0].owner.rsplit(":", 1)[1]), signal.SIGKILL)
                killed.append(running[0])
                return
        time.sleep(0.02)


def _same_figures(engine, reference, copies):
    for original, (summary, points, inputs) in reference.items():
        for k in range(copies):
            s2, p2, i2 = progress_repo.latest_progress(engine, f"{original}-c{k}")
            assert i2["inputs_sha256"] == inputs["inputs_sha256"]
            assert p2 == points
            assert s2.observed_pct == summary.observed_pct
            assert s2.slip_days == summary.slip_days


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    ) as lc:
        yield lc


def test_a_worker_killed_mid_batch_still_leaves_every_site_done_exactly_once(
    sim_archive, sim_sites, scene_cache, reference, cluster, tmp_path
):
    from distributed import Client

    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    book = clone_book(sim_sites, COPIES)
    store_book(engine, book)
    ids = [s.id for s in book.sites]
    spec = spec_for(url, sim_archive, scene_cache)
    killed: list = []

    with Client(cluster) as client:
        stop = threading.Event()
        killer = threading.Thread(target=_kill_a_running_site, args=(engine, killed, stop))
        killer.start()
        try:
            result = run_refresh(engine, spec, ids, executor=DaskRunner(client=client))
        finally:
            stop.set()
            killer.join(10)

    assert killed, "a worker was killed in the middle of a site"
    assert sorted(o.site_id for o in result.outcomes) == sorted(ids)
    assert {o.status for o in result.outcomes} == {"ok"}
    records = jobs_repo.list_jobs(engine, batch_id=result.batch_id, limit=None)
    sites = [r for r in records if r.kind == "site"]
    assert sorted(r.site_id for r in sites) == sorted(ids), "one record per site"
    assert {r.status for r in sites} == {"ok"}
    assert {r.executor for r in sites} == {"dask"}
    attempts = {r.site_id: r.attempts for r in sites}
    assert sorted(attempts.values())[-1] == 2, f"the killed run was rescheduled, same record: {attempts}"
    assert [r.status for r in records if r.kind == "portfolio"] == ["ok"]
    counts = row_counts(engine)
    assert counts["summaries"] == len(ids), "exactly one set of figures per site"
    _same_figures(engine, reference, COPIES)


def test_a_process_pool_worker_killed_mid_site_is_resubmitted_and_every_site_done_once(
    sim_archive, sim_sites, scene_cache, reference, tmp_path
):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    book = clone_book(sim_sites, 2)
    store_book(engine, book)
    ids = [s.id for s in book.sites]
    killed: list = []

    runner = ProcessPoolRunner(1)
    stop = threading.Event()
    killer = threading.Thread(target=_kill_a_running_site, args=(engine, killed, stop))
    killer.start()
    try:
        result = run_refresh(engine, spec_for(url, sim_archive, scene_cache), ids, executor=runner)
    finally:
        stop.set()
        killer.join(10)
        runner.close()

    assert killed, "the worker was killed in the middle of a site"
    assert sorted(o.site_id for o in result.outcomes) == sorted(ids)
    assert {o.status for o in result.outcomes} == {"ok"}, [o.label for o in result.outcomes]
    sites = [r for r in jobs_repo.list_jobs(engine, batch_id=result.batch_id, limit=None) if r.kind == "site"]
    assert sorted(r.site_id for r in sites) == sorted(ids), "one record per site"
    assert {r.status for r in sites} == {"ok"}
    attempts = {r.site_id: r.attempts for r in sites}
    assert attempts[killed[0].site_id] == 2, f"the killed site ran again under the same record: {attempts}"
    assert row_counts(engine)["summaries"] == len(ids), "exactly one set of figures per site"
    _same_figures(engine, reference, 2)


def test_a_process_pool_gives_the_same_figures(sim_archive, sim_sites, scene_cache, reference, tmp_path):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    book = clone_book(sim_sites, 1)
    store_book(engine, book)
    runner = ProcessPoolRunner(1)
    try:
        result = run_refresh(engine, spec_for(url, sim_archive, scene_cache), [s.id for s in book.sites],
                             executor=runner, portfolio_stage=False)  # fmt: skip
    finally:
        runner.close()
    assert {o.status for o in result.outcomes} == {"ok"}
    assert {r.executor for r in jobs_repo.list_jobs(engine, limit=None)} == {"processes"}
    _same_figures(engine, reference, 1)


def test_submit_refresh_runs_on_the_dask_cluster(sim_archive, sim_sites, scene_cache, reference, cluster, tmp_path):
    from jobs.pipeline import get_job, submit_refresh
    from jobs.settings import Settings

    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    # the address comes from the settings (SITEWATCH_DASK_ADDRESS), as the API's refresh endpoint passes none
    settings = Settings(
        data_dir=tmp_path, database_url=url, archive_dir=sim_archive, checkpoint="",
        dask_address=cluster.scheduler_address,
    )  # fmt: skip
    site = sim_sites[0].id
    job_id = submit_refresh(engine, settings, site, as_of=TEST_AS_OF)
    deadline = time.monotonic() + 120
    while get_job(engine, job_id).status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
    job = get_job(engine, job_id)
    assert (job.status, job.executor, job.trigger) == ("ok", "dask", "api")
    assert job.owner.split(":")[1] != str(os.getpid()), "it ran in a worker process"
    assert progress_repo.latest_progress(engine, site)[2]["inputs_sha256"] == reference[site][2]["inputs_sha256"]
