import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from shapely.geometry import box

from aoi import Phase, Plan
from aoi.records import SceneProgress, SiteWork
from models.progress import (
    CurveOptions,
    PlanCurves,
    anchored_stall,
    band_halfwidth,
    fill_unseen_phases,
    finish_day,
    fit_curve,
    idle_evidence,
    idle_since,
    isotonic_fit,
    plan_days_for_percent,
    site_reading_noise,
    slip_days,
    stall_evidence,
    summarize,
    work_ended,
)

FP = box(0, 0, 0.001, 0.001)
PLAN = Plan((Phase("all", 1.0, date(2025, 1, 1), date(2025, 12, 31), FP),))


def _obs(day: date, pct: float | None, seen: float = 1.0, conf: float = 0.9) -> SceneProgress:
    when = datetime(day.year, day.month, day.day, 10, 30, tzinfo=UTC)
    return SceneProgress("s", f"S{day:%Y%m%d}", when, pct, (None if pct is None else pct / 100,), seen, conf, 0.0)


def _series(truth, start=date(2025, 1, 1), days=365, step=5, noise=3.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(0, days, step):
        d = start + timedelta(days=k)
        out.append(_obs(d, float(np.clip(truth(d) + rng.normal(0, noise), 0, 100))))
    return out


def test_isotonic_fit_pools_violators_with_weights():
    fitted = isotonic_fit([1, 3, 2, 4], [1, 1, 3, 1])
    assert np.all(np.diff(fitted) >= 0)
    assert fitted[1] == pytest.approx(fitted[2]) == pytest.approx((3 + 2 * 3) / 4)
    assert list(isotonic_fit([5, 4, 6], [1, 1, 1], increasing=False)) == pytest.approx([5, 5, 5])


def test_on_plan_site_tracks_plan_with_small_error():
    devs, slips = [], []
    for seed in range(8):
        summary, _ = summarize("s", PLAN, _series(PLAN.planned_percent, seed=seed), as_of=date(2025, 9, 1), method="t")
        devs.append(abs(summary.deviation_pp))
        slips.append(abs(summary.slip_days))
        assert not summary.stalled
    assert np.mean(devs) < 2.5
    assert max(devs) < 6
    assert np.mean(slips) < 10
    summary, points = summarize("s", PLAN, _series(PLAN.planned_percent), as_of=date(2025, 9, 1), method="test")
    assert summary.forecast_completion is not None
    assert abs((summary.forecast_completion - date(2025, 12, 31)).days) < 45
    assert all(b.observed_pct >= a.observed_pct for a, b in itertools.pairwise(points))


def test_late_site_has_positive_slip_in_days():
    def late(d):  # runs at 60 % of the planned pace
        return PLAN.planned_percent(date(2025, 1, 1) + timedelta(days=int((d - date(2025, 1, 1)).days * 0.6)))

    elapsed = (date(2025, 9, 1) - date(2025, 1, 1)).days
    slips = []
    for seed in range(8):
        summary, _ = summarize("s", PLAN, _series(late, seed=seed), as_of=date(2025, 9, 1), method="test")
        slips.append(summary.slip_days)
        assert summary.deviation_pp < -20
    assert np.mean(slips) == pytest.approx(elapsed * 0.4, abs=10)


@pytest.mark.parametrize(
    ("noise", "days", "at_least"),
    # Measured 17/20 at 1 pp within 30 days, 13/20 at 1.5 pp (16/20 within 45 days): the flag
    # needs "stopped" three times likelier than "moving at half pace" (stall_log_ratio), which
    # costs recall on noisy readings and buys no false stall on dev seeds 101-103, 301-303,
    # 501-503 and 601-603.
    [(1.0, 30, 16), (1.5, 30, 12), (1.5, 45, 15)],
)
def test_stall_is_flagged_within_a_month_and_not_before(noise, days, at_least):
    stall = date(2025, 6, 1)

    def stalled(d):
        return PLAN.planned_percent(min(d, stall))

    flagged = 0
    for seed in range(20):
        obs = _series(stalled, seed=seed, noise=noise)
        before, _ = summarize("s", PLAN, obs, as_of=stall - timedelta(days=5), method="test")
        after, _ = summarize("s", PLAN, obs, as_of=stall + timedelta(days=days), method="test")
        assert not before.stalled
        assert before.stall_check == "not_stalled"
        flagged += after.stalled
        if after.stalled:
            assert after.forecast_completion is None
            assert after.stall_check == "stalled"
    assert flagged >= at_least


def test_slow_site_is_rarely_called_stalled():
    def slow(d):  # 60 % of the planned pace
        return PLAN.planned_percent(date(2025, 1, 1) + timedelta(days=int((d - date(2025, 1, 1)).days * 0.6)))

    calls = [
        summarize(
            "s", PLAN, _series(slow, seed=seed, noise=1.5), as_of=date(2025, 4, 1) + timedelta(days=7 * k), method="t"
        )[0].stalled
        for seed in range(20)
        for k in range(0, 20, 3)
    ]
    assert sum(calls) / len(calls) < 0.05


def test_finished_site_is_not_stalled():
    obs = _series(PLAN.planned_percent, days=500)
    summary, _ = summarize("s", PLAN, obs, as_of=date(2026, 5, 1), method="test")
    assert summary.observed_pct > 97
    assert not summary.stalled
    assert abs(summary.slip_days) < 20  # finished about on time; not "slipping" a day every day since
    later, _ = summarize("s", PLAN, obs, as_of=date(2026, 5, 1) + timedelta(days=90), method="test")
    assert later.slip_days == summary.slip_days


def test_reversal_is_flagged_not_smoothed_away():
    def cancelled(d):
        return 15.0 if d < date(2025, 4, 1) else max(0.0, 15.0 - (d - date(2025, 4, 1)).days / 6)

    curve = fit_curve(_series(cancelled, days=240, noise=1.5))
    assert len(curve.events) == 1
    assert curve.events[0].kind == "reversal"
    assert abs((curve.events[0].on - date(2025, 4, 1)).days) <= 30
    assert curve.value(date(2025, 8, 20)) < 3


def _pad_readings(level, days: int, *, over_reads: set[int], seed: int) -> list[SceneProgress]:
    """Clear readings of a cleared pad (scatter 0.5 pp) every 5 days from 1 January 2025; the
    scenes numbered in ``over_reads`` read a slab step (13 pp) high, as clear scenes now and then do.
    """
    rng = np.random.default_rng(seed)
    out = []
    for k in range(0, days, 5):
        d = date(2025, 1, 1) + timedelta(days=k)
        value = level(d) + rng.normal(0, 0.5) + (13.0 if k // 5 in over_reads else 0.0)
        out.append(_obs(d, float(np.clip(value, 0, 100))))
    return out


def test_small_pad_growing_back_over_is_a_reversal_within_two_months():
    # A 15 % pad abandoned on 1 May grows back over in 90 days: on 20 June it stands at 6.7 %,
    # 8.3 pp under its level, and one clear scene in four reads a slab step high. The fall is
    # under the 10 pp that every scene, at any reading's scatter, must show.
    cut = date(2025, 5, 1)

    def level(d: date) -> float:
        rise = 15.0 * min(1.0, max(0.0, (d - date(2025, 1, 1)).days / 90))
        return rise * (1.0 - min(1.0, max(0, (d - cut).days) / 90))

    for seed in range(3):
        obs = _pad_readings(level, 171, over_reads=set(range(3, 40, 4)), seed=seed)
        curve = fit_curve(obs)
        assert [e.kind for e in curve.events] == ["reversal"], seed
        assert abs(curve.events[0].drop_pp - 8.3) < 1.5, seed  # from the pad, not from its over-reads
        assert abs(curve.value(date(2025, 6, 20)) - level(date(2025, 6, 20))) < 1.5, seed


def test_over_read_earthworks_falling_back_to_the_pad_is_not_a_reversal():
    # Three clear scenes in a row read the rising earthworks 9-11 pp high; the pad then holds at
    # 15 %. Measured from those over-reads, the pad "fell" by two thirds of its level.
    def level(d: date) -> float:
        return 15.0 * min(1.0, (d - date(2025, 1, 1)).days / 90)

    for seed in range(3):
        obs = _pad_readings(level, 200, over_reads=set(), seed=seed)
        for k in (12, 13, 14):
            obs[k] = replace(obs[k], percent=obs[k].percent + 10.0)
        assert fit_curve(obs).events == (), seed


def test_demolished_building_keeps_its_peak_and_the_date_it_fell():
    # Built to 80 % by June, demolished to its pad (20 %) from 1 July: the fall is dated at the
    # demolition and measured from 80 %, whether it takes a few days or two months, and whether
    # every scene is clear or only one in three (partial views between them read 3 pp low).
    def level(d: date, days: int) -> float:
        built = 80.0 * min(1.0, max(0.0, (d - date(2025, 1, 1)).days / 170))
        return built - 60.0 * min(1.0, max(0, (d - date(2025, 7, 1)).days) / days)

    for days, clear_every in ((3, 1), (60, 3)):
        for seed in range(3):
            rng = np.random.default_rng(seed)
            obs = []
            for k in range(0, 258, 5):
                d = date(2025, 1, 1) + timedelta(days=k)
                clear = (k // 5) % clear_every == 0
                value = level(d, days) + rng.normal(0, 1.0) - (0.0 if clear else 3.0)
                obs.append(_obs(d, float(np.clip(value, 0, 100)), seen=1.0 if clear else 0.8))
            curve = fit_curve(obs)
            assert [e.kind for e in curve.events] == ["reversal"], (days, seed)
            event = curve.events[0]
            assert abs(event.drop_pp - 60.0) < 8.0, (days, seed, event)
            assert abs((event.on - date(2025, 7, 1)).days) <= days // 2 + 15, (days, seed, event)
            assert max(curve.fitted) < 83.0, (days, seed)


def test_cancelled_pad_back_to_vegetation_slips_from_the_plan_start():
    # Cleared on plan, abandoned on 1 May, the pad grown over by August: nothing stands, so the
    # site is where its plan started, not where the plan would first have shown the clearing
    # (the visible plan's flat start is hidden work only for a site that has not gone back).
    table = PlanCurves.of(PAD_PLAN)
    cut = date(2025, 5, 1)
    obs = []
    rng = np.random.default_rng(5)
    for k in range(-60, 300, 5):
        d = date(2025, 1, 1) + timedelta(days=k)
        level = float(table.visible[table.index(min(d, cut))])
        if d > cut:
            level *= max(0.0, 1.0 - (d - cut).days / 90)
        obs.append(_obs(d, float(np.clip(level + rng.normal(0, 1.0), 0, 100))))
    as_of = date(2025, 10, 1)
    summary, _ = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")
    assert [e.kind for e in summary.events] == ["reversal"]
    assert summary.observed_pct < 2
    assert abs(summary.slip_days - (as_of - PAD_PLAN.start).days) <= 3
    assert summary.slip_low_days <= summary.slip_days <= summary.slip_high_days


def test_building_demolished_to_its_pad_slips_from_where_the_plan_leaves_the_pad():
    # Built on plan, then demolished in October back to the cleared pad (15 %): the site stands
    # where its plan stood before the building began, the end of the pause on 1 May.
    table = PlanCurves.of(PAD_PLAN)
    rng = np.random.default_rng(2)
    obs = []
    for k in range(-60, 420, 5):
        d = date(2025, 1, 1) + timedelta(days=k)
        level = float(table.visible[table.index(d)])
        if d >= date(2025, 10, 1):
            level = max(15.0, level - (d - date(2025, 10, 1)).days * 2.0)
        obs.append(_obs(d, float(np.clip(level + rng.normal(0, 1.0), 0, 100))))
    for as_of in (date(2026, 1, 15), date(2026, 3, 1)):
        summary, _ = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")
        assert [e.kind for e in summary.events] == ["reversal"]
        assert abs(summary.slip_days - (as_of - date(2025, 5, 1)).days) <= 10, (as_of, summary.slip_days)
        assert summary.slip_low_days <= summary.slip_days <= summary.slip_high_days


def test_cloudy_stretch_widens_band_but_does_not_move_curve():
    obs = _series(PLAN.planned_percent, noise=0.5)
    gap = (date(2025, 5, 1), date(2025, 7, 1))
    cloudy = [
        o if not gap[0] <= o.acquired_at_utc.date() < gap[1] else _obs(o.acquired_at_utc.date(), None) for o in obs
    ]
    clear_curve, cloudy_curve = fit_curve(obs), fit_curve(cloudy)
    mid = date(2025, 6, 1)
    assert cloudy_curve.value(mid) == pytest.approx(clear_curve.value(mid), abs=3)
    assert band_halfwidth(cloudy_curve, mid) > 2 * band_halfwidth(clear_curve, mid)


def test_no_usable_scene_gives_no_figures():
    summary, points = summarize("s", PLAN, [_obs(date(2025, 3, 1), None)], as_of=date(2025, 4, 1), method="test")
    assert summary.observed_pct is None
    assert summary.scenes_skipped == 1
    assert points == []


def test_stall_window_is_configurable():
    stall = date(2025, 6, 1)
    obs = _series(lambda d: PLAN.planned_percent(min(d, stall)))
    long_window = CurveOptions(stall_days=90)
    summary, _ = summarize("s", PLAN, obs, as_of=stall + timedelta(days=40), method="t", options=long_window)
    assert not summary.stalled


# A plan with a pause: earthworks (a pad) in January-February, nothing planned in March-April,
# then a building on the pad from May to December.
PAD = box(0, 0, 0.002, 0.002)
PAUSED = Plan(
    (
        Phase("earthworks", 0.2, date(2025, 1, 1), date(2025, 2, 28), PAD),
        Phase("hall", 0.8, date(2025, 5, 1), date(2025, 12, 31), box(0.0005, 0.0005, 0.0015, 0.0015)),
    )
)


def test_slip_is_zero_for_a_site_waiting_out_a_planned_pause():
    # 20 % is planned from 28 Feb to 30 Apr: a site there in April is on plan, not 40 days late.
    assert slip_days(PAUSED, 20.0, date(2025, 4, 10)) == 0
    # Still at 20 % on 10 June: late by the days since the plan expected more (1 May), not since 28 Feb.
    assert slip_days(PAUSED, 20.0, date(2025, 6, 10)) == (date(2025, 6, 10) - date(2025, 4, 30)).days
    assert plan_days_for_percent(PAUSED, 20.0) == (date(2025, 2, 28), date(2025, 4, 30))
    # Nothing done on 21 January: 0 % was planned until 31 December, 21 days before.
    assert slip_days(PAUSED, 0.0, date(2025, 1, 21)) == 21
    assert slip_days(PAUSED, 0.0, date(2024, 12, 31)) == 0


@pytest.mark.xfail(
    strict=True,
    reason="issue 5: placed on the plateau by its schedule fitted to the raw readings, four of five "
    "on-plan sites read within 5 days here, but one reads 12 days late (by the smoothed curve's pace, "
    "all five read 25)",
)
def test_invisible_start_of_a_building_is_not_read_as_slip():
    # Imagery sees nothing of the hall for its first 15 %: an on-plan site reads 20 % until then.
    def visible_truth(d):
        return PlanCurves.of(PAUSED).visible[PlanCurves.of(PAUSED).index(d)]

    as_of = date(2025, 5, 25)  # hall ~10 % done, none of it visible
    slips = [
        summarize("s", PAUSED, _series(visible_truth, noise=1.0, days=145, seed=s), as_of=as_of, method="t")[0]
        for s in range(5)
    ]
    assert all(abs(s.slip_days) <= 10 for s in slips), [s.slip_days for s in slips]
    assert all(s.slip_low_days <= s.slip_days <= s.slip_high_days for s in slips)


def test_on_plan_site_on_a_plateau_is_placed_by_its_schedule_not_the_curves_late_entry():
    # The xfail above, measured: the smoothed curve enters the plateau late, so the pace it kept
    # to get there reads an on-plan site 25 days late; its schedule fitted to the raw readings does not.
    def visible_truth(d):
        return PlanCurves.of(PAUSED).visible[PlanCurves.of(PAUSED).index(d)]

    as_of = date(2025, 5, 25)
    by_curve = replace(CurveOptions(), position_by_schedule=False)
    for s in range(5):
        obs = _series(visible_truth, noise=1.0, days=145, seed=s)
        placed = summarize("s", PAUSED, obs, as_of=as_of, method="t")[0]
        entered = summarize("s", PAUSED, obs, as_of=as_of, method="t", options=by_curve)[0]
        assert abs(placed.slip_days) < abs(entered.slip_days)
        assert abs(placed.slip_days) <= 15
        assert placed.slip_low_days <= placed.slip_days <= placed.slip_high_days


def test_site_stopped_on_a_plateau_reads_late_by_its_idle_days_on_its_schedule():
    # On plan until 25 May, in the hall's invisible set-up (the visible plan is flat from 28 February
    # until its slabs show), then idle. It is 26 days late on 20 June. The stop is placed on the
    # site's schedule fitted to the earthworks, not at that pace from the day the smoothed curve
    # entered 20 %, which read it 46-48 days late.
    table = PlanCurves.of(PAUSED)
    stop, as_of = date(2025, 5, 25), date(2025, 6, 20)

    def visible_truth(d):
        return table.visible[table.index(min(d, stop))]

    errors = []
    for s in range(5):
        obs = _series(visible_truth, noise=1.0, days=(as_of - date(2025, 1, 1)).days, seed=s)
        work = _work(date(2025, 1, 1), as_of, idle_from=stop, seed=s)
        summary = summarize("s", PAUSED, obs, as_of=as_of, method="t", activity=work)[0]
        assert summary.stalled
        assert summary.slip_low_days <= summary.slip_days <= summary.slip_high_days
        errors.append(abs(summary.slip_days - (as_of - stop).days))
    # Fitted only to the readings before the stop: the flat ones after it slowed the schedule.
    assert max(errors) <= 13, errors
    assert np.mean(errors) <= 6, errors


def test_slip_range_brackets_the_slip_and_widens_on_a_plateau():
    on_slope, _ = summarize("s", PLAN, _series(PLAN.planned_percent, noise=1.0), as_of=date(2025, 7, 1), method="t")
    assert on_slope.slip_low_days <= on_slope.slip_days <= on_slope.slip_high_days
    assert on_slope.slip_high_days - on_slope.slip_low_days < 40

    def stuck(d):  # earthworks on time, then nothing
        return PlanCurves.of(PAUSED).visible[PlanCurves.of(PAUSED).index(min(d, date(2025, 3, 1)))]

    paused, _ = summarize("s", PAUSED, _series(stuck, noise=1.0, days=200), as_of=date(2025, 7, 15), method="t")
    assert paused.slip_high_days - paused.slip_low_days > 40  # can't tell where in the hidden stretch it is
    assert paused.slip_low_days <= paused.slip_days <= paused.slip_high_days
    assert paused.slip_days > 0


def test_a_misread_scene_does_not_drag_the_curve():
    obs = _series(PLAN.planned_percent, noise=1.0, days=240)
    k = 30  # mid-June: one scene misread 25 pp high
    bad = obs[k]
    misread = list(obs)
    misread[k] = _obs(bad.acquired_at_utc.date(), bad.percent + 25.0)
    clean, dirty = fit_curve(obs), fit_curve(misread)
    day = bad.acquired_at_utc.date()
    assert dirty.value(day) == pytest.approx(clean.value(day), abs=1.5)
    assert dirty.value(day + timedelta(days=20)) == pytest.approx(clean.value(day + timedelta(days=20)), abs=1.5)


def test_scene_missing_one_phase_enters_the_curve_as_a_lower_bound():
    when = datetime(2025, 6, 1, 10, tzinfo=UTC)
    seen = SceneProgress("s", "A", when, 60.0, (1.0, 0.5), 1.0, 0.9, 0.0)
    half = SceneProgress("s", "B", when + timedelta(days=5), None, (None, 0.6), 0.8, 0.9, 0.0, "pad under cloud")
    alone = SceneProgress("s", "C", when + timedelta(days=10), None, (1.0, None), 0.3, 0.9, 0.0, "hall under cloud")
    filled = fill_unseen_phases([alone, half, seen], [0.2, 0.8])
    assert [o.scene_id for o in filled] == ["A", "B", "C"]
    assert filled[1].percent == pytest.approx(100 * (0.2 * 1.0 + 0.8 * 0.6))  # pad carried forward
    assert filled[1].observed_fraction < half.observed_fraction
    assert filled[2].percent is None  # saw only the pad, 20 % of the weight


def _with_misreads(obs, *, every=3, up_pp=12.0, until=None):
    """Every ``every``-th estimate misread upwards by ``up_pp`` (a building flickering into view)."""
    out = []
    for k, o in enumerate(obs):
        day = o.acquired_at_utc.date()
        if k % every == 1 and o.percent is not None and (until is None or day <= until):
            o = _obs(day, min(o.percent + up_pp, 100.0))
        out.append(o)
    return out


def test_upward_misreads_before_the_window_do_not_fake_a_stall():
    as_of = date(2025, 7, 1)
    table = PlanCurves.of(PLAN)
    fooled = 0
    for seed in range(10):
        # On plan, every other run-up scene misread 12 pp high: the anchored level starts too high.
        obs = _with_misreads(
            _series(PLAN.planned_percent, seed=seed, noise=0.3), every=2, until=as_of - timedelta(days=28)
        )
        known = [o for o in obs if o.acquired_at_utc.date() <= as_of]
        curve = fit_curve(known)
        evidence = stall_evidence(table, curve, known, as_of)
        assert evidence.verdict == "moving"
        assert evidence.log_ratio is not None
        assert evidence.log_ratio < 0
        assert not summarize("s", PLAN, obs, as_of=as_of, method="t")[0].stalled
        fooled += anchored_stall(table, curve, as_of, CurveOptions())
    assert fooled >= 8  # the anchored test alone is fooled here (measured 10/10)


def test_flat_readings_with_misreads_are_still_a_stall():
    stall = date(2025, 6, 1)
    obs = _with_misreads(_series(lambda d: PLAN.planned_percent(min(d, stall)), noise=0.3, seed=3))
    as_of = stall + timedelta(days=30)
    known = [o for o in obs if o.acquired_at_utc.date() <= as_of]
    evidence = stall_evidence(PlanCurves.of(PLAN), fit_curve(known), known, as_of)
    assert evidence.verdict == "stalled"
    assert evidence.expected_pp > 5  # 100 % over a year: about 7.7 pp in 28 days
    assert summarize("s", PLAN, obs, as_of=as_of, method="t")[0].stalled


def test_too_few_scenes_in_the_window_is_insufficient_evidence_not_a_stall():
    stall = date(2025, 6, 1)
    as_of = stall + timedelta(days=30)
    obs = [
        o
        for o in _series(lambda d: PLAN.planned_percent(min(d, stall)), noise=0.3)
        if not (as_of - timedelta(days=56) < o.acquired_at_utc.date() <= as_of - timedelta(days=10))
    ]  # two cloudy months: two scenes in the window, and in the window widened to 56 days
    known = [o for o in obs if o.acquired_at_utc.date() <= as_of]
    evidence = stall_evidence(PlanCurves.of(PLAN), fit_curve(known), known, as_of)
    assert evidence.verdict == "insufficient"
    assert evidence.scenes == 2
    summary = summarize("s", PLAN, obs, as_of=as_of, method="t")[0]
    assert not summary.stalled
    # The officer is told the flag is down for want of scenes, not because the site is moving.
    assert summary.stall_check == "insufficient"


def test_finish_after_a_cloudy_month_is_dated_between_the_scenes_around_it():
    # On plan to the end, but no usable scene from mid-November to late January: the plan passes
    # 97.5 % on about 22 December, and the first clear scene after that is a month later.
    gap = (date(2025, 11, 15), date(2026, 1, 25))
    obs = [
        o for o in _series(PLAN.planned_percent, days=500, noise=0.3) if not gap[0] <= o.acquired_at_utc.date() < gap[1]
    ]
    summary, _ = summarize("s", PLAN, obs, as_of=date(2026, 4, 1), method="t")
    assert summary.observed_pct > 97.5
    # Dating it on the first scene past 97.5 % would say +34 days (25 January); interpolating
    # between the scenes around the gap gives about +22 (the truth is 0, inside the gap).
    assert summary.slip_days <= 24
    # The range spans the gap the finish fell in; with a scene every 5 days it is narrow.
    assert summary.slip_low_days <= 0 <= summary.slip_high_days
    steady, _ = summarize(
        "s", PLAN, _series(PLAN.planned_percent, days=500, noise=0.3), as_of=date(2026, 4, 1), method="t"
    )
    assert steady.slip_low_days <= steady.slip_days <= steady.slip_high_days
    assert steady.slip_high_days - steady.slip_low_days <= 10


def test_long_stall_stays_flagged_through_a_cloudy_month():
    # Stopped in June; in August only two scenes pass the cloud test. The test then looks back
    # over twice the window instead of dropping a flag that has held for weeks.
    stall = date(2025, 6, 1)
    as_of = date(2025, 9, 1)
    obs = [
        o
        for o in _series(lambda d: PLAN.planned_percent(min(d, stall)), noise=0.3)
        if not (as_of - timedelta(days=28) < o.acquired_at_utc.date() <= as_of - timedelta(days=10))
    ]
    known = [o for o in obs if o.acquired_at_utc.date() <= as_of]
    evidence = stall_evidence(PlanCurves.of(PLAN), fit_curve(known), known, as_of)
    assert evidence.verdict == "stalled"
    assert evidence.scenes >= 3
    assert summarize("s", PLAN, obs, as_of=as_of, method="t")[0].stalled


PAD = box(0, 0, 0.002, 0.002)
#: Earthworks on a pad, then one building on it: the building shows nothing from space until its
#: slabs do (the first ``INVISIBLE_START`` of its schedule), so the visible plan has a plateau.
PAD_PLAN = Plan(
    (
        Phase("earthworks", 0.15, date(2025, 1, 1), date(2025, 3, 31), PAD),
        Phase("building A", 0.85, date(2025, 5, 1), date(2025, 12, 31), box(0.0005, 0.0005, 0.0015, 0.0015)),
    )
)


def _visible_series(speed, *, stop=None, noise=1.0, seed=0, days=365, misread_every=0):
    """Readings of a site that follows PAD_PLAN's visible curve at ``speed`` (plan days per day)."""
    table = PlanCurves.of(PAD_PLAN)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(-60, days, 5):
        d = date(2025, 1, 1) + timedelta(days=k)
        on = min(d, stop) if stop is not None else d
        plan_day = date(2025, 1, 1) + timedelta(days=int(max((on - date(2025, 1, 1)).days, -1) * speed))
        pct = float(table.visible[table.index(plan_day)]) if plan_day >= date(2025, 1, 1) else 0.0
        pct += rng.normal(0, noise)
        if misread_every and k % (5 * misread_every) == 0 and k > 0:
            pct += 12.75  # a building flickering into view: read at the slab step (0.85 * 0.15)
        out.append(_obs(d, float(np.clip(pct, 0, 100))))
    return out


def test_late_site_at_half_pace_through_the_earthworks_plateau_is_not_stalled():
    # Half the plan's pace, with a building misread into view on every fourth scene: the site sits
    # at 15 % for months after the plan's visible curve has moved on, which is slow, not stalled.
    calls = []
    for seed in range(5):
        obs = _visible_series(0.5, seed=seed, misread_every=4)
        for month in range(3, 12):
            as_of = date(2025, month, 28)
            calls.append(summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")[0].stalled)
    assert sum(calls) == 0


def test_stop_seen_only_on_the_widened_window_after_a_cloudy_month_stays_flagged():
    # Stopped on 1 June; the last 28 days before 1 September had no usable scene, so the stall
    # window widens to 56 days, and the anchored test must look at that window too (on the plain
    # one it found no scenes and vetoed the flag: "not_stalled", and 26 days of slip lost).
    stop, as_of = date(2025, 6, 1), date(2025, 9, 1)
    for seed in range(3):
        obs = [
            o
            for o in _series(lambda d: PLAN.planned_percent(min(d, stop)), noise=0.3, seed=seed)
            if not as_of - timedelta(days=28) < o.acquired_at_utc.date() <= as_of
        ]
        summary = summarize("s", PLAN, obs, as_of=as_of, method="t")[0]
        assert summary.stalled, summary.stall_check
        assert summary.stall_witnesses == ("imagery",)
        assert abs(summary.slip_days - slip_days(PLAN, PLAN.planned_percent(stop), as_of)) <= 10


def test_stall_after_the_plateau_is_flagged_within_a_month():
    # Stopped on 1 August, when the plan expects slabs and roofs to keep appearing.
    stop = date(2025, 8, 1)
    flagged = [
        summarize(
            "s", PAD_PLAN, _visible_series(1.0, stop=stop, seed=seed), as_of=stop + timedelta(days=30), method="t"
        )[0].stalled
        for seed in range(10)
    ]
    assert sum(flagged) >= 8


def test_slab_step_after_the_newest_scene_is_not_a_stall():
    # On plan, but cloudy from 1 June: the plan's slab step (7 June) falls after the last
    # look, so readings still at 15 % are no evidence of a stop on 25 June.
    table = PlanCurves.of(PAD_PLAN)
    step = next(k for k in range(len(table.visible)) if table.visible[k] > 16.0)
    assert date(2025, 6, 1) < table.day(step) < date(2025, 6, 25)
    obs = [o for o in _visible_series(1.0, noise=0.5) if o.acquired_at_utc.date() <= date(2025, 6, 1)]
    evidence = stall_evidence(table, fit_curve(obs), obs, date(2025, 6, 25))
    assert evidence.verdict != "stalled"
    assert not summarize("s", PAD_PLAN, obs, as_of=date(2025, 6, 25), method="t")[0].stalled


def _finished_readings(seed: int, *, below: tuple[float, float], shadow_every: int, noise: float):
    """PLAN on plan to its end (31 December 2025), then readings ``below`` 100 and every
    ``shadow_every``-th one a further 6-10 pp low (a roof in shadow), every 5 days to May 2026."""
    rng = np.random.default_rng(seed)
    obs = []
    for k in range(0, 500, 5):
        d = date(2025, 1, 1) + timedelta(days=k)
        pct = PLAN.planned_percent(d)
        if pct >= 100.0:
            pct = 100.0 - rng.uniform(*below) - (rng.uniform(6.0, 10.0) if k % (5 * shadow_every) == 0 else 0.0)
        obs.append(_obs(d, float(np.clip(pct + rng.normal(0, noise), 0, 100))))
    return obs


def test_finished_site_whose_readings_scatter_below_100_keeps_its_finish_date():
    # Finished on plan (31 December); afterwards clear readings sit at 96.5-99 and one in four is
    # read 6-10 pp low (a roof in shadow). The curve, a weighted mean, stays under 97.5 for months;
    # the readings' upper quartile says finished at the end of December.
    obs = _finished_readings(4, below=(1.0, 3.5), shadow_every=4, noise=0.3)
    summary, _ = summarize("s", PLAN, obs, as_of=date(2026, 5, 1), method="t")
    assert abs(summary.slip_days) <= 15
    assert not summary.stalled


def test_partial_scenes_that_over_read_a_rising_site_do_not_date_its_finish_early():
    # On plan, finishing on 31 December. In a cloudy early November (about 85 %) two partial
    # scenes, with cloud over the unbuilt part of the footprints, read 98.7 and 100: with the
    # three clear scenes of that month they made the upper quartile say finished two months early
    # (held-out site 1703-0004, -64 days).
    rng = np.random.default_rng(3)
    days = [date(2025, 1, 1) + timedelta(days=k) for k in range(0, 450, 6)]
    cloudy = (date(2025, 10, 20), date(2025, 11, 19))
    days = [d for d in days if not cloudy[0] <= d <= cloudy[1]]
    days += [date(2025, 10, 22), date(2025, 11, 1), date(2025, 11, 14)]
    clear = [_obs(d, float(np.clip(PLAN.planned_percent(d) + rng.normal(0, 0.5), 0, 100))) for d in sorted(days)]
    over_reads = [_obs(date(2025, 11, 4), 98.7, seen=0.67), _obs(date(2025, 11, 9), 100.0, seen=0.75)]
    as_of = date(2026, 3, 1)
    finished = finish_day(clear + over_reads, as_of, CurveOptions())
    assert finished is not None
    assert finished == finish_day(clear, as_of, CurveOptions())
    assert finished > date(2025, 12, 1)
    summary, _ = summarize("s", PLAN, clear + over_reads, as_of=as_of, method="t")
    assert abs(summary.slip_days) <= 15


def test_finish_in_a_cloudy_winter_is_not_vetoed_by_one_shaded_full_view_a_month():
    # Finished on plan (31 December). December to February, scenes see three quarters of the
    # footprints and read the truth, and the one scene a month that sees everything reads the roof
    # in shadow, 8 pp low: within what shade does to a finished site, so no veto.
    rng = np.random.default_rng(11)
    obs = []
    for k in range(0, 520, 5):
        d = date(2025, 1, 1) + timedelta(days=k)
        pct, done = PLAN.planned_percent(d), 100.0 - rng.uniform(0.0, 2.5)
        if d < date(2025, 12, 1):
            obs.append(_obs(d, pct + rng.normal(0, 0.5)))
        elif d < date(2026, 3, 1):
            obs.append(_obs(d, min(pct, done) - 8.0) if k % 30 == 0 else _obs(d, min(pct, done), seen=0.75))
        else:
            obs.append(_obs(d, done - 1.0 - (8.0 if k % 20 == 0 else 0.0)))
    for as_of in (date(2026, 2, 20), date(2026, 4, 15)):
        summary, _ = summarize("s", PLAN, obs, as_of=as_of, method="t")
        assert abs(summary.slip_days) <= 15, as_of


def test_stall_with_phantom_slabs_in_the_window_is_still_stopped():
    # Stopped on 1 August; every third or fourth scene reads one slab step (12.75 pp) high, in the
    # window too. Modelled as phantom slabs (a mixture component at +one step, its rate measured on
    # the site's history), they are evidence of the level, not of progress: the stop stays clear.
    stop = date(2025, 8, 1)
    as_of = stop + timedelta(days=30)
    table = PlanCurves.of(PAD_PLAN)
    assert table.phantom_pp == pytest.approx(12.75)
    unmodelled = replace(table, phantom_pp=0.0)
    stronger = 0
    for every in (3, 4):
        for seed in range(10):
            obs = _visible_series(1.0, stop=stop, seed=seed, misread_every=every)
            known = [o for o in obs if o.acquired_at_utc.date() <= as_of]
            curve = fit_curve(known)
            evidence = stall_evidence(table, curve, known, as_of)
            assert evidence.verdict == "stalled"
            before = stall_evidence(unmodelled, curve, known, as_of).log_ratio
            assert evidence.log_ratio is not None
            assert before is not None
            stronger += evidence.log_ratio > before
    assert stronger >= 18  # measured 19 of 20; without the component 3 of 20 read "moving"


def test_phantom_slabs_do_not_make_a_half_pace_site_stopped():
    # The phantom component must not turn slow progress into a stop: half pace, phantoms on every
    # fourth scene, the likelihood ratio still says "moving" wherever the plan expects progress.
    table = PlanCurves.of(PAD_PLAN)
    for seed in range(5):
        obs = _visible_series(0.5, seed=seed, misread_every=4)
        for month in range(3, 12):
            as_of = date(2025, month, 28)
            known = [o for o in obs if o.acquired_at_utc.date() <= as_of]
            assert stall_evidence(table, fit_curve(known), known, as_of).verdict != "stalled"


def test_phantom_slabs_in_the_window_do_not_hide_a_stall_from_the_flag() -> None:
    # Stopped on 1 August with phantom slabs on every third or fourth scene. The anchored-slope
    # test reads a phantom in its window as progress; on a full window the likelihood test, which
    # models phantoms, decides alone, so the flag is raised where needing both tests missed it.
    stop = date(2025, 8, 1)
    both = CurveOptions(stall_anchor_every_window=True)
    flagged, flagged_both = 0, 0
    for every in (3, 4):
        for seed in range(10):
            obs = _visible_series(1.0, stop=stop, seed=seed, misread_every=every)  # type: ignore[no-untyped-call]
            as_of = stop + timedelta(days=30)
            flagged += summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")[0].stalled
            flagged_both += summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", options=both)[0].stalled
    assert flagged == 20  # measured 20 of 20
    assert flagged_both <= 12  # measured 10 of 20 with both tests required


def test_phantom_slabs_do_not_pull_the_site_schedule_a_step_ahead() -> None:
    # Half pace, phantom slabs on every third scene: without the phantom term in the schedule fit,
    # the site was placed past its slab step and its flat readings before that step read as a stop
    # (5 of 45 month-ends flagged); with it, 2.
    months = [date(2025, m, 28) for m in range(3, 12)]
    runs = [(seed, as_of) for seed in range(5) for as_of in months]
    bare = CurveOptions(warp_phantom_prior=0.0)

    series = {s: _visible_series(0.5, seed=s, misread_every=3) for s in range(5)}  # type: ignore[no-untyped-call]

    def flags(opts: CurveOptions) -> int:
        return sum(summarize("s", PAD_PLAN, series[s], as_of=d, method="t", options=opts)[0].stalled for s, d in runs)

    assert flags(CurveOptions()) <= 2
    assert flags(bare) >= 4


def test_phantom_slabs_are_discounted_in_the_progress_curve() -> None:
    # On plan, phantom slabs (one slab step high) on every third scene: weighting each reading by
    # its chance of not being a phantom, at the site's measured rate, brings the curve back to the
    # truth (mean error measured 2.1 pp without, 1.1 pp with).
    table = PlanCurves.of(PAD_PLAN)
    plain, modelled = [], []
    for seed in range(10):
        obs = _visible_series(1.0, seed=seed, misread_every=3)  # type: ignore[no-untyped-call]
        truth = _visible_series(1.0, seed=seed, noise=0.0)  # type: ignore[no-untyped-call]
        for month in (4, 6, 8, 10):
            as_of = date(2025, month, 15)
            known = [o for o in obs if o.acquired_at_utc.date() <= as_of]
            true = np.array([o.percent for o in truth if o.acquired_at_utc.date() <= as_of])
            chance = site_reading_noise(table, known, as_of, CurveOptions())[4]
            bare = fit_curve(known)
            fitted = fit_curve(known, phantom_pp=table.phantom_pp, phantom_chance=chance)
            plain.append(float(np.mean(np.abs(np.array(bare.fitted) - true))))
            modelled.append(float(np.mean(np.abs(np.array(fitted.fitted) - true))))
    assert np.mean(modelled) < 0.7 * np.mean(plain)


# ---------------------------------------------------------------- the sensor witness


PLAN_START, YEAR_END = date(2025, 1, 1), date(2025, 12, 31)


def _work(first: date, last: date, *, idle_from: date | None = None, idle: float = 0.05, seed: int = 0):
    """Daily work levels: a usual day (about 1) until ``idle_from``, then ``idle`` (guards at the gate)."""
    rng = np.random.default_rng(seed)
    out = []
    day = first
    while day <= last:
        level = idle if idle_from is not None and day >= idle_from else float(rng.uniform(0.7, 1.3))
        out.append(SiteWork(day, level))
        day += timedelta(days=1)
    return out


def test_idle_feed_on_a_site_imagery_sees_at_work_does_not_hold_back_its_position():
    # The sensors read idle from 1 August (a dead feed), but the scenes show the site going on at
    # plan pace: no stop, and the slip is what the imagery alone gives.
    for seed in range(3):
        obs = _visible_series(1.0, seed=seed)
        for as_of in (date(2025, 8, 28), date(2025, 9, 28), date(2025, 10, 28)):
            work = _work(PLAN_START, as_of, idle_from=date(2025, 8, 1), seed=seed)
            alone = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")[0]
            fed = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=work)[0]
            assert not fed.stalled
            assert fed.slip_days == alone.slip_days


def test_stop_where_imagery_sees_nothing_is_flagged_by_idle_sensors():
    # Stopped on 10 May, in building A's set-up and excavation: the visible plan is flat until its
    # slabs show (7 June), so on 5 June the scenes look like a site on plan. Its machines do not.
    stop, as_of = date(2025, 5, 10), date(2025, 6, 5)
    table = PlanCurves.of(PAD_PLAN)
    assert table.visible[table.index(stop)] == table.visible[table.index(as_of)]
    for seed in range(5):
        obs = _visible_series(1.0, stop=stop, seed=seed)
        alone = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")[0]
        assert not alone.stalled
        assert alone.stall_witnesses == ()
        work = _work(date(2025, 1, 1), as_of, idle_from=stop + timedelta(days=1), seed=seed)
        summary = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=work)[0]
        assert summary.stalled
        assert summary.stall_witnesses == ("sensors",)
        assert summary.stall_check == "stalled"
        assert summary.forecast_completion is None  # a stalled site gets no finish date


def test_stop_at_the_end_of_a_long_pause_is_flagged_within_a_month_of_the_restart_due():
    # Earthworks on plan to 31 March, then three months' pause on the pad; building A was due on
    # 1 July and never started. The sensors went idle on 1 April, bar one busy day on 20 June (a
    # delivery). The earthworks fix the pace, and so when work was due again, months later.
    plan = Plan(
        (
            Phase("earthworks", 0.15, date(2025, 1, 1), date(2025, 3, 31), PAD),
            Phase("building A", 0.85, date(2025, 7, 1), date(2025, 12, 31), box(0.0005, 0.0005, 0.0015, 0.0015)),
        )
    )
    table = PlanCurves.of(plan)
    as_of = date(2025, 7, 30)
    flagged = 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        obs = []
        for k in range(0, 271, 5):
            d = date(2024, 11, 2) + timedelta(days=k)
            obs.append(_obs(d, float(np.clip(table.visible[table.index(d)] + rng.normal(0, 0.5), 0, 100))))
        work = [
            SiteWork(w.day, 1.0) if w.day == date(2025, 6, 20) else w
            for w in _work(date(2025, 1, 1), as_of, idle_from=date(2025, 4, 1), seed=seed)
        ]
        summary = summarize("s", plan, obs, as_of=as_of, method="t", activity=work)[0]
        flagged += summary.stalled and summary.stall_witnesses == ("sensors",)
    assert flagged >= 4


def test_site_at_work_is_not_flagged_and_idle_planned_pause_is_not_a_stall():
    # On plan all year; its sensors idle through April, the plan's pause between the two phases.
    pause = date(2025, 4, 1)
    obs = _visible_series(1.0, seed=3)
    work = [
        w if not (pause <= w.day <= date(2025, 4, 30)) else SiteWork(w.day, 0.05) for w in _work(PLAN_START, YEAR_END)
    ]
    flags = [
        summarize("s", PAD_PLAN, obs, as_of=date(2025, month, 28), method="t", activity=work)[0].stalled
        for month in range(3, 13)
    ]
    assert not any(flags)
    table = PlanCurves.of(PAD_PLAN)
    curve = fit_curve(obs)
    paused = idle_evidence(table, curve, obs, work, date(2025, 4, 28))
    assert paused.verdict == "not_expected"
    assert paused.days_idle == 21


def test_idle_feed_does_not_outvote_imagery_that_sees_progress():
    # Slabs and roofs keep appearing in August while the feed reads idle (a broken or misfiled feed).
    obs = _visible_series(1.0, seed=1)
    as_of = date(2025, 8, 28)
    work = _work(PLAN_START, as_of, idle_from=date(2025, 8, 1))
    assert idle_evidence(PlanCurves.of(PAD_PLAN), fit_curve(obs), obs, work, as_of).verdict == "idle"
    summary = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=work)[0]
    assert not summary.stalled
    assert summary.stall_witnesses == ()


def test_sensor_gaps_are_not_idleness():
    # Stopped in the invisible stretch, but the feed reported on 10 of the last 21 days only.
    stop, as_of = date(2025, 5, 10), date(2025, 6, 5)
    obs = _visible_series(1.0, stop=stop, seed=0)
    work = [w for w in _work(PLAN_START, as_of, idle_from=stop) if w.day.day % 2 == 0]
    evidence = idle_evidence(PlanCurves.of(PAD_PLAN), fit_curve(obs), obs, work, as_of)
    assert evidence.verdict == "insufficient"
    assert evidence.days_reported < 17
    assert not summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=work)[0].stalled
    # The same days reported as gaps (level None) count the same.
    nones = [SiteWork(w.day, None) if w.day.day % 2 else w for w in _work(PLAN_START, as_of, idle_from=stop)]
    assert idle_evidence(PlanCurves.of(PAD_PLAN), fit_curve(obs), obs, nones, as_of).verdict == "insufficient"


def test_finished_site_winding_down_is_not_a_sensor_stall():
    # Finished early (at 1.3 times the plan's pace); crews demobilise while the plan still runs.
    obs = _visible_series(1.3, seed=2)
    as_of = date(2025, 11, 30)
    assert summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")[0].observed_pct > 97
    work = _work(PLAN_START, as_of, idle_from=date(2025, 10, 20))
    summary = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=work)[0]
    assert not summary.stalled
    assert idle_evidence(PlanCurves.of(PAD_PLAN), fit_curve(obs), obs, work, as_of).verdict == "not_expected"


def test_idle_sensors_stop_the_site_moving_on_where_its_work_stopped():
    # Stopped on 10 May in building A's invisible stretch; on 5 June imagery still looks on plan,
    # so without sensors the site is moved on through the stretch at its pace.
    stop, as_of = date(2025, 5, 10), date(2025, 6, 5)
    work = _work(PLAN_START, as_of, idle_from=stop + timedelta(days=1))
    assert idle_since(work, as_of, CurveOptions()) == stop + timedelta(days=1)
    assert idle_since(work, stop + timedelta(days=15), CurveOptions()) is None  # not three weeks yet
    slips_alone, slips = [], []
    for seed in range(5):
        obs = _visible_series(1.0, stop=stop, seed=seed)
        slips_alone.append(summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")[0].slip_days)
        slips.append(summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=work)[0].slip_days)
    # Alone, the site reads 10-25 days late (the plateau pace bias of the xfail above), not 26.
    assert sum(slips_alone) / 5 < 20
    assert all(abs(s - (as_of - stop).days) <= 10 for s in slips)
    assert all(s > a for a, s in zip(slips_alone, slips, strict=True))


def test_idle_sensors_while_waiting_out_a_planned_pause_are_no_slip():
    # On plan; April is the plan's pause between earthworks and building A, and the site idles.
    as_of = date(2025, 4, 28)
    work = [SiteWork(w.day, 0.05) if w.day >= date(2025, 4, 1) else w for w in _work(PLAN_START, as_of)]
    assert idle_since(work, as_of, CurveOptions()) == date(2025, 4, 1)
    for seed in range(5):
        obs = _visible_series(1.0, seed=seed)
        alone = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")[0].slip_days
        assert summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=work)[0].slip_days == alone
        assert abs(alone) <= 10


def test_sensors_at_work_dispute_a_stop_seen_by_imagery_alone():
    # Readings flat from 1 August, when the plan expects slabs and roofs; the site's machines and
    # crews keep their usual day. Imagery alone flags it; with the sensors the flag is disputed.
    stop = date(2025, 8, 1)
    as_of = stop + timedelta(days=30)
    disputed = 0
    for seed in range(10):
        obs = _visible_series(1.0, stop=stop, seed=seed)
        if not summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")[0].stalled:
            continue
        busy = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=_work(PLAN_START, as_of, seed=seed))[0]
        assert not busy.stalled
        assert busy.stall_check == "disputed"
        # At a third of its usual day the site is neither idle nor at work: imagery decides.
        slow = [SiteWork(w.day, 0.33) if w.day > stop else w for w in _work(PLAN_START, as_of, seed=seed)]
        slowed = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=slow)[0]
        assert slowed.stall_witnesses == ("imagery",)
        disputed += 1
    assert disputed >= 8


def test_site_that_has_not_started_is_late_not_stalled_by_idle_sensors():
    # Sensors fitted in December stand idle; the plan starts on 1 January and nothing shows by the
    # 21st. Of the schedules the imagery allows, a late start expects no work yet: late, not stalled.
    as_of = date(2025, 1, 21)
    obs = [o for o in _visible_series(1.0, stop=date(2024, 12, 1), seed=0) if o.acquired_at_utc.date() <= as_of]
    work = [SiteWork(date(2024, 12, 1) + timedelta(days=k), 0.05) for k in range((as_of - date(2024, 12, 1)).days + 1)]
    evidence = idle_evidence(PlanCurves.of(PAD_PLAN), fit_curve(obs), obs, work, as_of)
    assert evidence.verdict == "not_expected"
    assert evidence.expected_pp == 0.0
    assert not summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=work)[0].stalled


def test_weekends_neither_flag_a_working_site_nor_hide_a_stop():
    stop, as_of = date(2025, 5, 10), date(2025, 6, 5)

    def five_day_week(work):
        return [SiteWork(w.day, 0.05) if w.day.weekday() >= 5 else w for w in work]

    working = five_day_week(_work(PLAN_START, as_of))
    assert idle_since(working, as_of, CurveOptions()) is None
    obs = _visible_series(1.0, seed=0)
    assert not summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=working)[0].stalled
    stopped = five_day_week(_work(PLAN_START, as_of, idle_from=stop + timedelta(days=1)))
    obs = _visible_series(1.0, stop=stop, seed=0)
    assert summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=stopped)[0].stall_witnesses == ("sensors",)


def test_stop_short_of_a_planned_pause_is_flagged_while_the_site_idles_through_it():
    # Stopped on 15 March, 2.5 pp short of the earthworks' end (31 March); April is the plan's
    # pause. By 25 April the last three weeks are all pause, so they alone expect nothing; since
    # the work stopped, every schedule the imagery allows expected the rest of the earthworks.
    stop, as_of = date(2025, 3, 15), date(2025, 4, 25)
    table = PlanCurves.of(PAD_PLAN)
    window_only = replace(CurveOptions(), idle_whole_stretch=False)
    for seed in range(5):
        obs = [o for o in _visible_series(1.0, stop=stop, seed=seed) if o.acquired_at_utc.date() <= as_of]
        work = _work(PLAN_START, as_of, idle_from=stop + timedelta(days=1), seed=seed)
        curve = fit_curve(obs)
        assert idle_evidence(table, curve, obs, work, as_of, window_only).verdict == "not_expected"
        whole = idle_evidence(table, curve, obs, work, as_of)
        assert whole.verdict == "idle"
        assert 1.5 <= whole.expected_pp <= 3.5
        assert not summarize("s", PAD_PLAN, obs, as_of=as_of, method="t")[0].stalled
        summary = summarize("s", PAD_PLAN, obs, as_of=as_of, method="t", activity=work)[0]
        assert summary.stall_witnesses == ("sensors",)


#: PAD_PLAN with a four-month pause: earthworks to 31 March, building A from 1 August.
LONG_PAUSE_PLAN = Plan(
    (
        Phase("earthworks", 0.15, date(2025, 1, 1), date(2025, 3, 31), PAD),
        Phase("building A", 0.85, date(2025, 8, 1), date(2026, 3, 31), box(0.0005, 0.0005, 0.0015, 0.0015)),
    )
)


def _long_pause_series(speed: float, *, stop: date | None = None, seed: int = 0) -> list[SceneProgress]:
    """Readings (1 pp noise) of a site that follows LONG_PAUSE_PLAN's visible curve at ``speed``."""
    table = PlanCurves.of(LONG_PAUSE_PLAN)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(-60, 400, 5):
        d = date(2025, 1, 1) + timedelta(days=k)
        on = min(d, stop) if stop is not None else d
        plan_day = date(2025, 1, 1) + timedelta(days=int(max((on - date(2025, 1, 1)).days, -1) * speed))
        pct = float(table.visible[min(table.index(plan_day), len(table.visible) - 1)]) if k >= 0 else 0.0
        out.append(_obs(d, float(np.clip(pct + rng.normal(0, 1.0), 0, 100))))
    return out


def test_site_that_never_came_back_after_a_long_pause_is_flagged_within_a_month_of_its_resumption():
    # Earthworks done on plan, crews gone on 1 April, never back; the plan resumes on 1 August.
    # The schedule is the one the site kept until it stopped: fitted on the readings as they
    # stood then, the four idle months neither fade the earthworks' climb (which pins the pace)
    # nor let the flat readings since drag the schedule slower. Before, it took 40-50 days.
    stop, as_of = date(2025, 3, 31), date(2025, 8, 28)
    for seed in range(5):
        obs = [o for o in _long_pause_series(1.0, stop=stop, seed=seed) if o.acquired_at_utc.date() <= as_of]
        work = _work(PLAN_START, as_of, idle_from=stop + timedelta(days=1), seed=seed)
        summary = summarize("s", LONG_PAUSE_PLAN, obs, as_of=as_of, method="t", activity=work)[0]
        assert summary.stalled, seed
        assert summary.stall_witnesses == ("sensors",)


@pytest.mark.parametrize("speed", [0.6, 0.8])
def test_late_site_idle_through_its_longer_pause_is_not_a_sensor_stall(speed: float) -> None:
    # The same plan at 0.6 or 0.8 of its pace, crews idle from the earthworks' end until the
    # building starts on the site's own (later) schedule: its pause is long, not a stop.
    ended = date(2025, 1, 1) + timedelta(days=int(90 / speed))
    resumed = date(2025, 1, 1) + timedelta(days=int(212 / speed))
    for seed in range(3):
        obs = _long_pause_series(speed, seed=seed)
        day = ended + timedelta(days=21)
        while day <= resumed + timedelta(days=30):
            work = [
                w if w.day >= resumed else SiteWork(w.day, 0.05) if w.day > ended else w
                for w in _work(PLAN_START, day, seed=seed)
            ]
            known = [o for o in obs if o.acquired_at_utc.date() <= day]
            assert not summarize("s", LONG_PAUSE_PLAN, known, as_of=day, method="t", activity=work)[0].stalled, day
            day += timedelta(days=10)


def test_one_scene_that_reads_a_stopped_site_finished_is_set_aside_until_another_confirms_it():
    # Crews gone on 1 October at 75 %, the sensors reporting idle days since; the sky closed over
    # the site for six weeks, then one partial scene read a roof at twice its share: 100 %. Alone
    # against the sensors, it is a misread; the site is stopped at 75 %, not finished.
    stop, as_of = date(2025, 10, 1), date(2025, 12, 20)
    work = _work(PLAN_START, as_of, idle_from=stop, seed=1)
    for seed in range(3):
        obs = [o for o in _series(PLAN.planned_percent, noise=1.0, seed=seed) if o.acquired_at_utc.date() < stop]
        misread = replace(_obs(date(2025, 11, 20), 100.0), observed_fraction=0.72)
        summary = summarize("s", PLAN, [*obs, misread], as_of=as_of, method="t", activity=work)[0]
        assert summary.observed_pct is not None
        assert abs(summary.observed_pct - 75.0) <= 3.0
        assert summary.stalled
        assert [(e.kind, e.on) for e in summary.events] == [("set_aside", date(2025, 11, 20))]
        alone = summarize("s", PLAN, [*obs, misread], as_of=as_of, method="t")[0]  # imagery alone: finished
        assert alone.observed_pct is not None
        assert alone.observed_pct >= 99.0
        # A second scene that agrees: the feed is the one that is wrong, and the imagery is trusted.
        again = _obs(date(2025, 12, 5), 99.5)
        confirmed = summarize("s", PLAN, [*obs, misread, again], as_of=as_of, method="t", activity=work)[0]
        assert confirmed.observed_pct is not None
        assert confirmed.observed_pct >= 97.5
        assert not confirmed.stalled
        assert confirmed.events == ()


def test_scene_after_a_cloudy_spell_before_the_stop_keeps_the_work_done_under_the_clouds():
    # On plan until 1 September (67 %), idle since; the sky was closed from 1 July, so the last
    # reading before the stop is 49 % on 30 June. A clear scene on 15 October reads 67 %: the
    # schedule the site kept to June reaches that by the stop, so the scene is kept.
    stop, as_of = date(2025, 9, 1), date(2025, 10, 20)
    work = _work(PLAN_START, as_of, idle_from=stop, seed=1)
    for seed in range(3):
        obs = [
            o
            for o in _series(PLAN.planned_percent, noise=1.0, seed=seed)
            if o.acquired_at_utc.date() < date(2025, 7, 1)
        ]
        clear = _obs(date(2025, 10, 15), round(PLAN.planned_percent(stop), 1))
        summary = summarize("s", PLAN, [*obs, clear], as_of=as_of, method="t", activity=work)[0]
        assert summary.events == ()
        assert summary.observed_pct == pytest.approx(PLAN.planned_percent(stop), abs=1.0)
        assert summary.last_observation == date(2025, 10, 15)


def test_misread_after_a_stop_is_set_aside_though_one_busy_day_broke_the_idle_stretch():
    # Stopped at 75 % on 1 October; on 5 December a delivery made a half day of work, so the
    # idle stretch is two weeks, not three, while the stall window stays idle (20 days of 21).
    # A partial scene on 10 December reads 100 %: five days of work cannot explain it.
    stop, as_of = date(2025, 10, 1), date(2025, 12, 20)
    work = [
        SiteWork(w.day, 0.5) if w.day == date(2025, 12, 5) else w
        for w in _work(PLAN_START, as_of, idle_from=stop, seed=1)
    ]
    assert idle_since(work, as_of, CurveOptions()) is None
    for seed in range(3):
        obs = [o for o in _series(PLAN.planned_percent, noise=1.0, seed=seed) if o.acquired_at_utc.date() < stop]
        misread = replace(_obs(date(2025, 12, 10), 100.0), observed_fraction=0.72)
        summary = summarize("s", PLAN, [*obs, misread], as_of=as_of, method="t", activity=work)[0]
        assert [(e.kind, e.on) for e in summary.events] == [("set_aside", date(2025, 12, 10))]
        assert summary.stalled
        assert summary.scenes_used == len(obs)
        assert summary.scenes_skipped == 1


def test_finish_is_dated_by_the_crews_leaving_when_the_readings_trail_it():
    # Finished on plan (reached 97.5 % on 22 December); afterwards clear readings sit at 96-98.5
    # and every third is read 6-10 pp low, so the readings say "finished" weeks late, if at all.
    # The crews left on 1 January.
    as_of = date(2026, 5, 1)
    true_slip = 0  # reached 97.5 % the day its plan did
    better = 0
    for seed in range(5):
        obs = _finished_readings(seed, below=(1.5, 4.0), shadow_every=3, noise=0.5)
        work = _work(PLAN_START, as_of, idle_from=date(2026, 1, 1), seed=seed)
        assert work_ended(work, as_of, CurveOptions()) == date(2026, 1, 1)
        alone = summarize("s", PLAN, obs, as_of=as_of, method="t")[0].slip_days
        dated = summarize("s", PLAN, obs, as_of=as_of, method="t", activity=work)[0].slip_days
        assert abs(dated - true_slip) <= abs(alone - true_slip)
        better += abs(dated - true_slip) <= 2 < abs(alone - true_slip)
        # Stopped short, at 85 %: the crews' leaving is a stop, not a finish.
        stop = PLAN.date_for_percent(85.0)
        short = [o if o.acquired_at_utc.date() <= stop else _obs(o.acquired_at_utc.date(), 85.0) for o in obs]
        stopped = summarize(
            "s", PLAN, short, as_of=as_of, method="t", activity=_work(PLAN_START, as_of, idle_from=stop)
        )
        assert stopped[0].stalled
        assert stopped[0].slip_days > 100
    assert better >= 3


def test_finish_is_dated_by_crews_who_left_after_the_readings_said_finished_on_a_long_tail():
    # The yard's 5 % runs two months past the main works, so the plan's last 2.5 points take
    # 61 days. On plan: 97.5 % on 31 October, 100 % on 31 December, crews gone on 1 January. The
    # readings trail the tail by 1-3 pp and say "finished" weeks late, still before the crews
    # left; the crews' leaving, less the tail at the site's pace, dates it.
    tail_plan = Plan(
        (
            Phase("main", 0.95, PLAN_START, date(2025, 10, 31), FP),
            Phase("yard", 0.05, date(2025, 9, 1), YEAR_END, FP),
        )
    )
    as_of = date(2026, 3, 1)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        obs = []
        for k in range(0, 420, 5):
            d = PLAN_START + timedelta(days=k)
            pct = tail_plan.planned_percent(d)
            pct -= rng.uniform(1.0, 3.0) if pct >= 97.5 else 0.0  # the yard's last points read low
            obs.append(_obs(d, float(np.clip(pct + rng.normal(0, 0.3), 0, 100))))
        work = _work(PLAN_START, as_of, idle_from=date(2026, 1, 1), seed=seed)
        summary = summarize("s", tail_plan, obs, as_of=as_of, method="t", activity=work)[0]
        assert not summary.stalled
        assert abs(summary.slip_days) <= 5, summary.slip_days


def test_crews_that_left_months_before_the_finish_left_a_stop_not_a_finish():
    # Stopped at 94 % on 8 December; the sensors stood idle a week and were taken away. Work
    # resumed unmonitored in April and finished in May: the finish is the readings', not the stop.
    stop = PLAN.date_for_percent(94.0)
    resumed = date(2026, 4, 1)
    obs = []
    for k in range(0, 560, 5):
        d = date(2025, 1, 1) + timedelta(days=k)
        if d <= stop:
            pct = PLAN.planned_percent(d)
        else:
            pct = min(100.0, 94.0 + 6.0 * max((d - resumed).days, 0) / 45)
        obs.append(_obs(d, pct))
    as_of = date(2026, 7, 10)
    work = [
        w for w in _work(PLAN_START, as_of, idle_from=stop + timedelta(days=1)) if w.day <= stop + timedelta(days=8)
    ]
    assert work_ended(work, as_of, CurveOptions()) == stop + timedelta(days=1)
    alone = summarize("s", PLAN, obs, as_of=as_of, method="t")[0]
    with_sensors = summarize("s", PLAN, obs, as_of=as_of, method="t", activity=work)[0]
    assert alone.slip_days > 100
    assert with_sensors.slip_days == alone.slip_days


def test_finished_site_whose_readings_stay_under_complete_is_not_a_sensor_stall():
    # Finished on plan; afterwards every reading sits at 94-96.5 %, so the readings never say
    # "finished", and the crews' sensors read idle from 1 January until as-of.
    as_of = date(2026, 5, 1)
    for seed in range(3):
        obs = _finished_readings(seed, below=(3.5, 6.0), shadow_every=1000, noise=0.3)
        work = _work(PLAN_START, as_of, idle_from=date(2026, 1, 1), seed=seed)
        summary = summarize("s", PLAN, obs, as_of=as_of, method="t", activity=work)[0]
        assert summary.observed_pct < 97.5
        # Imagery alone may call a site short of complete after its plan's end stalled; the
        # crews' idle weeks since they left add nothing to that.
        assert "sensors" not in summary.stall_witnesses


def test_site_within_noise_of_complete_whose_crews_left_before_the_plan_ended_is_not_a_sensor_stall():
    # On plan until its readings reach 95 % (mid-December), then 93.5-95 %: finished as far as a
    # reading's noise can tell. The crews left on 1 December, before the plan's end. Measured from
    # the day they left, the plan would still owe its last 8 pp; within ``noise_pp`` of complete the
    # sensor witness looks only at its recent window, when the plan expects nothing more.
    as_of = date(2026, 1, 20)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        obs = []
        for k in range(0, (as_of - date(2025, 1, 1)).days + 1, 5):
            d = date(2025, 1, 1) + timedelta(days=k)
            pct = min(PLAN.planned_percent(d), 95.0 - rng.uniform(0.0, 1.5))
            obs.append(_obs(d, float(np.clip(pct + rng.normal(0, 0.3), 0, 100))))
        work = _work(PLAN_START, as_of, idle_from=date(2025, 12, 1), seed=seed)
        summary = summarize("s", PLAN, obs, as_of=as_of, method="t", activity=work)[0]
        assert summary.observed_pct > CurveOptions().complete_pct - CurveOptions().noise_pp
        assert "sensors" not in summary.stall_witnesses
