from datetime import UTC, date, datetime, timedelta

import pytest

from iot.features import daily_features, work_levels
from iot.readings import Reading


def _r(sensor, kind, at, value):
    return Reading("s1", sensor, kind, at, value, "x")


def _days(n, start=date(2026, 9, 1)):
    return [start + timedelta(days=k) for k in range(n)]


def _site(days, *, skip=(), idle=()):
    out = []
    for d in days:
        if d in skip:
            continue
        for h in range(8, 18):
            at = datetime(d.year, d.month, d.day, h, tzinfo=UTC)
            out.append(_r("eq", "equipment_runtime_h", at, 0.0 if d in idle else 0.8))
            out.append(_r("gate", "workforce_count", at, 0.0 if d in idle else 40.0))
    return out


def test_gap_day_is_none_with_a_flag_not_zero():
    days = _days(40)
    gap = days[35]
    feats = daily_features(_site(days, skip={gap}), site_id="s1", start=days[30], end=days[39])
    by_day = {f.day: f for f in feats}
    assert by_day[gap].equipment_hours is None
    assert by_day[gap].workforce is None
    assert by_day[gap].is_gap
    assert by_day[gap].activity_index is None
    assert by_day[gap].gaps == ("equipment_runtime_h", "workforce_count")
    assert by_day[days[34]].equipment_hours == pytest.approx(8.0)
    assert by_day[days[34]].activity_index == pytest.approx(1.0)


def test_idle_day_is_zero_activity_not_a_gap():
    days = _days(40)
    feats = daily_features(_site(days, idle={days[36]}), site_id="s1", start=days[36], end=days[36])
    (f,) = feats
    assert f.equipment_hours == 0.0
    assert f.activity_index == 0.0
    assert f.gaps == ()


def test_silence_of_a_sensor_and_of_the_whole_site():
    days = _days(40)
    readings = [r for r in _site(days[:35]) if not (r.sensor_id == "gate" and r.observed_at_utc.date() >= days[30])]
    feats = {f.day: f for f in daily_features(readings, site_id="s1", start=days[30], end=days[38])}
    assert feats[days[31]].silent_sensors == ("gate",)
    assert not feats[days[31]].site_silent
    assert feats[days[36]].site_silent
    assert feats[days[36]].hours_since_last_reading == pytest.approx(24 + 24 + 7)
    assert feats[days[34]].silent_sensors == ("gate",)  # eq still reports on the day it last did


def test_without_enough_baseline_there_is_no_index():
    days = _days(5)
    (f,) = daily_features(_site(days), site_id="s1", start=days[4], end=days[4])
    assert f.equipment_hours == pytest.approx(8.0)
    assert f.activity_index is None


def test_work_levels_stay_low_through_a_long_stop():
    # 60 working days, then 200 idle ones with two guards at the gate: four weeks in, the activity
    # index compares idle with idle; the work level keeps reading the stop against the working days.
    days = _days(260)
    idle = set(days[60:])
    readings = [
        r
        if r.kind != "workforce_count" or r.observed_at_utc.date() not in idle
        else _r("gate", r.kind, r.observed_at_utc, 2.0)
        for r in _site(days, idle=idle)
    ]
    feats = daily_features(readings, site_id="s1", start=days[0], end=days[-1])
    levels = {w.day: w.level for w in work_levels(feats)}
    assert levels[days[10]] is None  # under 14 working days behind it: nothing to compare with
    assert levels[days[50]] == pytest.approx(1.0)
    assert all(levels[d] < 0.05 for d in days[61:])
    assert feats[-1].activity_index == pytest.approx(1.0)  # its 28-day baseline is idle: idle reads usual


def test_work_levels_are_none_on_gap_days_and_start_where_asked():
    days = _days(60)
    feats = daily_features(_site(days, skip={days[50]}), site_id="s1", start=days[0], end=days[-1])
    out = work_levels(feats, start=days[40])
    assert [w.day for w in out] == days[40:]
    assert {w.day: w.level for w in out}[days[50]] is None
    assert {w.day: w.level for w in out}[days[51]] == pytest.approx(1.0)


def _guards_only(days):
    return [
        _r(sensor, kind, datetime(d.year, d.month, d.day, h, tzinfo=UTC), value)
        for d in days
        for h in range(8, 18)
        for sensor, kind, value in (("eq", "equipment_runtime_h", 0.0), ("gate", "workforce_count", 2.0))
    ]


def test_a_stop_longer_than_the_reference_or_before_the_sensors_is_unknown_not_usual():
    # Worked 60 days, then stopped for 430: once the year behind a day holds no working day, the
    # level is unknown; guards do not become the usual day.
    days = _days(490)
    readings = list(_site(days[:60])) + _guards_only(days[60:])
    levels = {w.day: w.level for w in work_levels(daily_features(readings, site_id="s1", start=days[0], end=days[-1]))}
    assert all(levels[d] < 0.05 for d in days[61:400])
    assert all(levels[d] is None for d in days[60 + 366 :])
    # Sensors fitted to a site that had already stopped: nothing to compare with.
    fitted = daily_features(_guards_only(days[:100]), site_id="s1", start=days[0], end=days[99])
    assert all(w.level is None for w in work_levels(fitted))


def test_a_head_count_alone_gives_no_work_level():
    days = _days(40)
    heads = [r for r in _site(days) if r.kind == "workforce_count"]
    feats = daily_features(heads, site_id="s1", start=days[0], end=days[-1])
    assert all(w.level is None for w in work_levels(feats))
    assert work_levels(feats, min_metrics=1)[-1].level == pytest.approx(1.0)
