"""Refresh jobs: incremental, idempotent, crash-safe, recorded; retries; the API's entry points."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import store
from aoi.errors import SiteNotFoundError
from imagery.errors import ProviderUnavailableError, SceneUnavailableError
from imagery.providers.local import LocalArchiveProvider
from jobs.locks import SiteLock
from jobs.pipeline import get_job, new_id, run_refresh, run_site_job, submit_refresh, wait_for_background
from jobs.progress import make_estimator
from jobs.refresh import NO_NEW_SCENES, RetryingProvider, refresh_site
from jobs.settings import Settings
from store import jobs_repo, progress_repo
from store.jobs_repo import JobNotFoundError
from store.risk_schema import ScoreRow
from tests.jobs.conftest import AS_OF
from tests.jobs.refresh_helpers import TEST_AS_OF, row_counts, spec_for, store_book


@pytest.fixture(scope="module")
def scene_cache(tmp_path_factory):
    """One scene cache for the module: the first refresh of a site warms it for the others."""
    return tmp_path_factory.mktemp("scene-cache")


def _scores(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(ScoreRow)) or 0


@pytest.mark.integration
def test_refresh_twice_stores_the_same_results_and_skips_without_new_scenes(
    engine, db_url, sim_archive, sim_sites, scene_cache
):
    store_book(engine)
    spec = spec_for(db_url, sim_archive, scene_cache)
    ids = [s.id for s in sim_sites]

    cold = run_refresh(engine, spec, ids)
    assert sorted(o.status for o in cold.outcomes) == ["ok", "ok"]
    assert cold.portfolio is not None
    assert cold.portfolio.status == "ok", cold.portfolio
    assert cold.portfolio.counts["loans_scored"] >= 2
    assert set(cold.outcomes[0].stage_seconds) == {"discover", "sensors", "fetch", "model", "save"}
    digests = {i: progress_repo.latest_progress(engine, i)[2]["inputs_sha256"] for i in ids}
    rows, scores = row_counts(engine), _scores(engine)

    again = run_refresh(engine, spec, ids)
    assert [o.label for o in again.outcomes] == [f"skipped: {NO_NEW_SCENES}"] * 2
    # no pixel read, and no figure recomputed: the calendar and the sensors are where they were
    assert all(set(o.stage_seconds) == {"discover", "sensors"} for o in again.outcomes)
    assert again.portfolio is None, "nothing new: no second score history row"
    assert row_counts(engine) == rows
    assert _scores(engine) == scores
    assert {i: progress_repo.latest_progress(engine, i)[2]["inputs_sha256"] for i in ids} == digests

    # forced recompute of the same inputs: same figures, still no duplicates
    full = run_refresh(engine, replace(spec, incremental=False), ids, portfolio_stage=False)
    assert [o.status for o in full.outcomes] == ["ok", "ok"]
    assert row_counts(engine) == rows
    assert {i: progress_repo.latest_progress(engine, i)[2]["inputs_sha256"] for i in ids} == digests

    records = jobs_repo.list_jobs(engine, limit=None)
    assert len(records) == 2 + 1 + 2 + 2  # sites and portfolio of the cold batch, then two site-only batches
    assert all(r.status in ("ok", "skipped") and r.finished_at and r.attempts == 1 for r in records)
    assert {r.trigger for r in records} == {"manual"}


def test_new_scenes_make_an_incremental_refresh_recompute(sim_archive, sim_sites, scene_cache, tmp_path):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    site = sim_sites[0].id
    early = spec_for(url, sim_archive, scene_cache, as_of=TEST_AS_OF - timedelta(days=45))
    first = run_refresh(engine, early, [site], portfolio_stage=False)
    assert first.outcomes[0].status == "ok"
    later = run_refresh(engine, replace(early, as_of=TEST_AS_OF), [site], portfolio_stage=False)
    o = later.outcomes[0]
    assert o.status == "ok"
    assert 5 <= o.counts["scenes_new"] < o.counts["scenes_found"]
    assert progress_repo.latest_progress(engine, site)[0].as_of == TEST_AS_OF


def test_one_failing_site_never_stops_the_others_and_is_recorded(sim_archive, sim_sites, scene_cache, tmp_path):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    spec = spec_for(url, sim_archive, scene_cache)
    result = run_refresh(engine, spec, ["no-such-site", sim_sites[0].id], portfolio_stage=False)
    by_site = {o.site_id: o for o in result.outcomes}
    assert by_site[sim_sites[0].id].status == "ok"
    assert by_site["no-such-site"].status == "failed"
    assert "SiteNotFoundError" in by_site["no-such-site"].reason
    failed = jobs_repo.get_job(engine, by_site["no-such-site"].job_id)
    assert failed.status == "failed"
    assert "no-such-site" in failed.reason
    assert failed.finished_at is not None


def test_a_crash_mid_save_leaves_nothing_half_written_and_the_next_run_finishes(
    sim_archive, sim_sites, scene_cache, tmp_path, monkeypatch
):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    site = sim_sites[0].id
    spec = spec_for(url, sim_archive, scene_cache)

    def die(*_a, **_k):
        raise RuntimeError("killed during the save")

    # the save's last statement fails: the observations already added in its transaction roll back
    monkeypatch.setattr(progress_repo, "put_scene_records", die)
    crashed = run_refresh(engine, spec, [site], portfolio_stage=False).outcomes[0]
    assert crashed.status == "failed"
    assert "killed during the save" in crashed.reason
    assert row_counts(engine) == {"summaries": 0, "observations": 0, "scenes": 0}
    monkeypatch.undo()

    # a process that died holding the lock and a "running" record: the same job, rescheduled, finishes it
    job = new_id()
    jobs_repo.create_jobs(engine, [(job, site)], batch_id=job, trigger="schedule", as_of=TEST_AS_OF, executor="dask")
    jobs_repo.start_job(engine, job, owner="dead-host:1")
    assert SiteLock(engine, site, owner=job).acquire()
    other = run_site_job(spec, site, new_id(), engine=engine)
    assert other.label.startswith("skipped: locked"), "a live lock row keeps other jobs out"
    rerun = run_site_job(spec, site, job, engine=engine)
    assert rerun.status == "ok"
    record = get_job(engine, job)
    assert (record.status, record.attempts) == ("ok", 2)
    # a finished job run again (Dask lost its result with its worker) returns what it recorded
    again = run_site_job(spec, site, job, engine=engine)
    assert (again.status, again.counts["inputs_sha256"]) == ("ok", rerun.counts["inputs_sha256"])
    assert get_job(engine, job).attempts == 2
    counts = row_counts(engine)
    assert counts["summaries"] == 1
    assert counts["scenes"] > 0


def test_an_expired_lock_of_a_dead_run_is_taken_over_and_the_dead_run_marked_abandoned(
    sim_archive, sim_sites, scene_cache, tmp_path
):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    site = sim_sites[1].id
    dead = new_id()
    jobs_repo.create_jobs(engine, [(dead, site)], batch_id=dead, trigger="schedule", as_of=TEST_AS_OF, executor="dask")
    jobs_repo.start_job(engine, dead, owner="dead-host:1")
    assert jobs_repo.try_lock_row(engine, site, owner=dead, ttl=timedelta(seconds=-1))  # already expired
    outcome = run_site_job(spec_for(url, sim_archive, scene_cache), site, new_id(), engine=engine)
    assert outcome.status == "ok"
    assert get_job(engine, dead).status == "abandoned"


class _Flaky:
    """A provider whose first ``failures`` calls of each kind raise a transient error."""

    name = "local"

    def __init__(self, inner, failures: int, error: type[Exception] = ProviderUnavailableError) -> None:
        self.inner, self.failures, self.error = inner, failures, error
        self.calls = {"search": 0, "read": 0}

    def search(self, *a):
        self.calls["search"] += 1
        if self.calls["search"] <= self.failures:
            raise self.error("503 from the catalogue")
        return self.inner.search(*a)

    def read(self, *a):
        self.calls["read"] += 1
        if self.calls["read"] <= self.failures:
            raise SceneUnavailableError("timed out")
        return self.inner.read(*a)


def test_transient_provider_errors_are_retried_with_exponential_backoff(sim_archive):
    sleeps: list[float] = []
    inner = LocalArchiveProvider(sim_archive)
    flaky = RetryingProvider(_Flaky(inner, 2), retries=3, backoff_s=0.5, sleep=sleeps.append)
    bbox = inner.search((-180, -90, 180, 90), date(2025, 1, 1), AS_OF)[0].bbox_wgs84
    assert flaky.search(bbox, date(2025, 1, 1), AS_OF)
    assert sleeps == [0.5, 1.0]
    assert flaky.retried == 2

    sleeps.clear()
    hopeless = RetryingProvider(_Flaky(inner, 99), retries=2, backoff_s=0.1, sleep=sleeps.append)
    with pytest.raises(ProviderUnavailableError):
        hopeless.search(bbox, date(2025, 1, 1), AS_OF)
    assert sleeps == [0.1, 0.2]


def test_a_provider_that_keeps_failing_is_recorded_as_the_reason(sim_archive, sim_sites, tmp_path):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    down = _Flaky(LocalArchiveProvider(sim_archive), 99)
    outcome = refresh_site(
        engine, sim_sites[0], provider=down, estimator=make_estimator(None), as_of=TEST_AS_OF, retries=2, backoff_s=0.0
    )
    assert outcome.status == "failed"
    assert outcome.reason.startswith("ProviderUnavailableError: 503")
    assert outcome.counts["retries"] == 2
    assert down.calls["search"] == 3


def test_submit_refresh_returns_a_job_id_the_api_can_poll(sim_archive, sim_sites, tmp_path):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    settings = Settings(data_dir=tmp_path, database_url=url, archive_dir=sim_archive, checkpoint="")
    job_id = submit_refresh(engine, settings, sim_sites[0].id, as_of=TEST_AS_OF)
    assert get_job(engine, job_id).trigger == "api"
    wait_for_background(60)
    job = get_job(engine, job_id)
    assert job.status == "ok", job
    assert job.site_id == sim_sites[0].id
    assert set(job.stage_seconds) == {"discover", "sensors", "fetch", "model", "save"}
    assert job.counts["scenes_used"] > 0
    assert json.loads(json.dumps(job.to_json()))["status"] == "ok"
    with pytest.raises(SiteNotFoundError):
        submit_refresh(engine, settings, "no-such-site")
    with pytest.raises(JobNotFoundError):
        get_job(engine, "0" * 32)


def test_refresh_wrappers_keep_the_buffered_read_and_retry_it(sim_archive, sim_sites):
    import numpy as np

    from imagery.providers.base import BufferedSceneProvider
    from jobs.progress import site_grid
    from jobs.refresh import SceneFilteringProvider

    inner = LocalArchiveProvider(sim_archive)
    grid = site_grid(sim_sites[0])
    scene = inner.search(sim_sites[0].boundary_wgs84.bounds, date(2025, 1, 1), AS_OF)[0]
    expected = inner.read(scene, grid, ["B04", "B08"]).values
    sleeps: list[float] = []
    wrapped = SceneFilteringProvider(RetryingProvider(_Flaky(inner, 1), sleep=sleeps.append), frozenset())
    assert isinstance(wrapped, BufferedSceneProvider)
    out = list(np.full((2, *grid.shape), -1.0, dtype=np.float32))
    wrapped.read_into(scene, grid, ["B04", "B08"], out)
    np.testing.assert_array_equal(np.stack(out), expected)
    assert sleeps == [0.5]  # the first read failed and was retried
