from datetime import date, timedelta

import pytest

from imagery.providers.local import LocalArchiveProvider
from jobs.progress import compute_site_progress, make_estimator
from jobs.refresh import refresh_sites
from store import progress_repo, repo
from store.progress_repo import inputs_digest
from tests.jobs.conftest import AS_OF

CVA = make_estimator(None)


def _site(sites, fate):
    return next(s for s in sites if s.properties["fate"] == fate)


def test_simulated_fates_show_in_progress_against_plan(sim_archive, sim_sites):
    provider = LocalArchiveProvider(sim_archive)
    on_track = compute_site_progress(_site(sim_sites, "on_track"), provider=provider, estimator=CVA, as_of=AS_OF)
    stalled = compute_site_progress(_site(sim_sites, "stalled"), provider=provider, estimator=CVA, as_of=AS_OF)
    assert abs(on_track.summary.deviation_pp) < 15
    assert not on_track.summary.stalled
    assert stalled.summary.stalled
    assert stalled.summary.deviation_pp < -20
    assert stalled.summary.slip_days > 60
    assert on_track.baseline_scenes, "scenes before the plan's start make the baseline"
    skipped = [r for r in on_track.records if not r.used]
    assert skipped
    assert all(r.reason for r in skipped)


def test_recomputing_the_same_inputs_gives_the_same_figures(sim_archive, sim_sites):
    provider = LocalArchiveProvider(sim_archive)
    site = _site(sim_sites, "on_track")
    a = compute_site_progress(site, provider=provider, estimator=CVA, as_of=date(2026, 6, 1))
    b = compute_site_progress(site, provider=provider, estimator=CVA, as_of=date(2026, 6, 1))
    assert a.summary == b.summary
    assert inputs_digest(a.inputs) == inputs_digest(b.inputs)


@pytest.mark.integration
def test_refresh_stores_figures_traceably_and_idempotently(engine, sim_archive, sim_sites):
    from aoi.demo import demo_portfolio

    repo.save_portfolio(engine, demo_portfolio())
    provider = LocalArchiveProvider(sim_archive)
    first = refresh_sites(engine, sim_sites, provider=provider, estimator=CVA, as_of=AS_OF)
    assert [o.status for o in first] == ["ok", "ok"]
    site_id = sim_sites[0].id
    summary, points, inputs = progress_repo.latest_progress(engine, site_id)
    again = refresh_sites(engine, sim_sites[:1], provider=provider, estimator=CVA, as_of=AS_OF)
    assert again[0].status == "ok"
    summary2, points2, inputs2 = progress_repo.latest_progress(engine, site_id)
    assert summary2 == summary
    assert points2 == points
    assert inputs2["inputs_sha256"] == inputs["inputs_sha256"]
    assert len(progress_repo.list_observations(engine, site_id)) == summary.scenes_used + summary.scenes_skipped
    scenes = repo.list_scene_records(engine, site_id)
    assert len(scenes) == len({s.scene_id for s in scenes}) > summary.scenes_used
    assert set(inputs["scenes_used"]) <= {s.scene_id for s in scenes if s.used}


@pytest.mark.integration
def test_refresh_reads_stored_sensors_as_the_stall_flags_second_witness(engine, sim_archive, sim_sites):
    from aoi.demo import demo_portfolio
    from jobs.demo import load_simulated_readings

    repo.save_portfolio(engine, demo_portfolio())
    as_of = date(2026, 7, 15)  # in-pnq-factory stopped on 15 June; its sensors stayed up
    load_simulated_readings(engine, sim_sites, date(2026, 4, 15), as_of, seed=5)
    provider = LocalArchiveProvider(sim_archive)
    outcomes = refresh_sites(engine, sim_sites, provider=provider, estimator=CVA, as_of=as_of)
    assert [o.status for o in outcomes] == ["ok", "ok"]
    stalled, _, inputs = progress_repo.latest_progress(engine, _site(sim_sites, "stalled").id)
    assert stalled.stalled
    assert "sensors" in stalled.stall_witnesses
    assert len(inputs["site_work"]) == 21  # the window the flag read, traceable with the figures
    assert all(level < 0.1 for _, level in inputs["site_work"])
    on_track, _, inputs = progress_repo.latest_progress(engine, _site(sim_sites, "on_track").id)
    assert not on_track.stalled
    assert on_track.stall_witnesses == ()
    assert all(level > 0.3 for _, level in inputs["site_work"])
    assert "sensors" in outcomes[0].stage_seconds


class _ArchiveUntil(LocalArchiveProvider):
    """The local archive as it stood on ``last``: later scenes were not acquired yet."""

    def __init__(self, root, last: date) -> None:
        super().__init__(root)
        self.last = last

    def search(self, bbox_wgs84, start, end):
        return [s for s in super().search(bbox_wgs84, start, end) if s.acquired_at_utc.date() <= self.last]


@pytest.mark.integration
def test_incremental_refresh_without_new_scenes_refigures_slip_and_a_sensor_stall(engine, sim_archive, sim_sites):
    from aoi.demo import demo_portfolio
    from jobs.demo import load_simulated_readings

    repo.save_portfolio(engine, demo_portfolio())
    site = _site(sim_sites, "stalled")  # stopped on 15 June; its sensors stayed up
    provider = _ArchiveUntil(sim_archive, date(2026, 6, 20))  # no scene after 20 June
    load_simulated_readings(engine, [site], date(2026, 4, 1), date(2026, 7, 20), seed=5)
    first = refresh_sites(engine, [site], provider=provider, estimator=CVA, as_of=date(2026, 6, 20))
    assert first[0].status == "ok"
    before, _, stored = progress_repo.latest_progress(engine, site.id)
    assert not before.stalled, "five days after the stop nobody can tell"
    n_obs = len(progress_repo.list_observations(engine, site.id))

    later = refresh_sites(engine, [site], provider=provider, estimator=CVA, as_of=date(2026, 7, 20), incremental=True)
    assert later[0].status == "ok"
    assert later[0].counts["scenes_new"] == 0
    assert later[0].counts["refigured"] is True
    assert "fetch" not in later[0].stage_seconds, "no pixel read"
    after, _, inputs = progress_repo.latest_progress(engine, site.id)
    assert after.as_of == date(2026, 7, 20)
    assert after.stalled
    assert after.stall_witnesses == ("sensors",)
    assert after.slip_days > before.slip_days, "the plan moved on, the site did not"
    assert inputs["scenes_used"] == stored["scenes_used"]
    assert inputs["baseline_scenes"] == stored["baseline_scenes"]
    assert len(progress_repo.list_observations(engine, site.id)) == n_obs

    # The same day again: nothing changed, nothing is written.
    again = refresh_sites(engine, [site], provider=provider, estimator=CVA, as_of=date(2026, 7, 20), incremental=True)
    assert again[0].label == "skipped: no new scenes"
    assert progress_repo.latest_progress(engine, site.id)[2]["inputs_sha256"] == inputs["inputs_sha256"]

    # Figures refigured without new scenes equal a full recompute of the same day.
    full = refresh_sites(engine, [site], provider=provider, estimator=CVA, as_of=date(2026, 7, 20))
    assert full[0].status == "ok"
    assert "refigured" not in full[0].counts
    assert progress_repo.latest_progress(engine, site.id)[0] == after
    assert progress_repo.latest_progress(engine, site.id)[2]["inputs_sha256"] == inputs["inputs_sha256"]


def test_a_changed_estimator_or_plan_makes_stored_estimates_stale(sim_archive, sim_sites):
    from dataclasses import replace

    from aoi.model import Plan
    from jobs.refresh import same_scene_inputs

    site = _site(sim_sites, "on_track")
    stored = compute_site_progress(
        site, provider=LocalArchiveProvider(sim_archive), estimator=CVA, as_of=date(2025, 9, 1)
    ).inputs
    assert same_scene_inputs(stored, CVA, site)
    assert not same_scene_inputs({**stored, "threshold": CVA.threshold + 0.05}, CVA, site)
    assert not same_scene_inputs({**stored, "provenance": {"sha256": "0" * 64}}, CVA, site)
    assert not same_scene_inputs({}, CVA, site)
    # An edited plan: its phases' footprints are what each estimate measured.
    first = site.plan.phases[0]
    later = replace(first, end=first.end + timedelta(days=30))
    moved = replace(site, plan=Plan((later, *site.plan.phases[1:]), site.plan.milestones))
    assert not same_scene_inputs(stored, CVA, moved)


@pytest.mark.integration
def test_a_backfill_to_an_earlier_day_makes_the_next_incremental_refresh_read_again(engine, sim_archive, sim_sites):
    from aoi.demo import demo_portfolio

    repo.save_portfolio(engine, demo_portfolio())
    site = _site(sim_sites, "on_track")
    provider = LocalArchiveProvider(sim_archive)
    refresh_sites(engine, [site], provider=provider, estimator=CVA, as_of=date(2026, 7, 20))
    newest = progress_repo.latest_progress(engine, site.id)
    # A full backfill of May replaces the site's estimates with May's; July's figures stay newest.
    refresh_sites(engine, [site], provider=provider, estimator=CVA, as_of=date(2026, 5, 1))
    assert progress_repo.latest_progress(engine, site.id)[0] == newest[0]
    later = refresh_sites(engine, [site], provider=provider, estimator=CVA, as_of=date(2026, 7, 21), incremental=True)
    assert later[0].status == "ok"
    assert "refigured" not in later[0].counts, "July's estimates are gone: the scenes are read again"
    summary, _, inputs = progress_repo.latest_progress(engine, site.id)
    assert inputs["scenes_used"] == newest[2]["scenes_used"]
    assert summary.last_observation == newest[0].last_observation
