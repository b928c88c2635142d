from datetime import date, timedelta

from aoi.demo import DEMO_AS_OF, demo_portfolio, fate_curve
from iot.features import daily_features
from iot.readings import validate_reading
from iot.simulate import simulated_readings
from jobs.demo import load_simulated_readings
from jobs.iot import site_daily_features, site_work
from store import readings as rs
from tests.iot.conftest import NOW

SITES = {s.id: s for s in demo_portfolio().sites}


def _readings(site_id, start, end, seed=3):
    site = SITES[site_id]
    raw = simulated_readings(site, fate_curve(site), start, end, seed=seed)
    return [validate_reading(r.payload, now_utc=NOW, site_exists=SITES.__contains__) for r in raw]


def test_simulation_is_deterministic_by_seed():
    a = _readings("de-rgb-hall", date(2026, 10, 1), date(2026, 10, 3))
    assert a == _readings("de-rgb-hall", date(2026, 10, 1), date(2026, 10, 3))
    assert a != _readings("de-rgb-hall", date(2026, 10, 1), date(2026, 10, 3), seed=4)


def test_stalled_site_goes_quiet_after_its_event_but_keeps_reporting():
    event = date(2026, 6, 15)  # in-pnq-factory's stall
    start, end = event - timedelta(days=40), event + timedelta(days=30)
    feats = {
        f.day: f
        for f in daily_features(
            _readings("in-pnq-factory", start, end), site_id="x", start=event - timedelta(days=5), end=end
        )
    }
    before, after = feats[event - timedelta(days=2)], feats[event + timedelta(days=20)]
    assert before.equipment_hours > 10
    assert before.activity_index > 0.5
    assert after.equipment_hours == 0.0
    assert after.deliveries == 0.0
    assert after.concrete_m3 == 0.0
    assert after.activity_index < 0.1  # two guards on the gate, nothing else
    assert not after.site_silent
    assert after.gaps == ()


def test_cancelled_site_goes_silent_and_finished_site_winds_down():
    cancelled = _readings("br-cps-warehouse", date(2026, 2, 10), date(2026, 3, 10))
    assert max(r.observed_at_utc.date() for r in cancelled) == date(2026, 2, 20)
    finished = _readings("au-bne-solar", date(2025, 6, 1), DEMO_AS_OF)
    assert max(r.observed_at_utc.date() for r in finished) < DEMO_AS_OF
    eq = [r.value for r in finished if r.kind == "equipment_runtime_h"]
    assert sum(eq[:300]) > 5 * sum(eq[-300:])


def test_demo_loads_through_the_ingestion_path_once(demo_engine):
    sites = [SITES["in-pnq-factory"]]
    first = load_simulated_readings(demo_engine, sites, date(2026, 6, 1), date(2026, 7, 10), seed=1)
    again = load_simulated_readings(demo_engine, sites, date(2026, 6, 1), date(2026, 7, 10), seed=1)
    assert first.accepted > 3000
    assert first.rejected == 0
    assert (again.accepted, again.duplicate) == (0, first.accepted)
    assert rs.count_readings(demo_engine, source="sim") == first.accepted
    (late,) = site_daily_features(demo_engine, "in-pnq-factory", date(2026, 7, 10), date(2026, 7, 10))
    assert late.equipment_hours == 0.0
    assert late.workforce == 2.0


def test_stored_readings_of_a_stalled_site_read_idle_work(demo_engine):
    # in-pnq-factory stops on 15 June; two months of its working days are stored before that.
    load_simulated_readings(demo_engine, [SITES["in-pnq-factory"]], date(2026, 4, 15), date(2026, 7, 31), seed=1)
    work = site_work(demo_engine, "in-pnq-factory", date(2026, 7, 31), days=30)
    assert [w.day for w in work] == [date(2026, 7, 2) + timedelta(days=k) for k in range(30)]
    assert all(w.level is not None and w.level < 0.1 for w in work)
    before = site_work(demo_engine, "in-pnq-factory", date(2026, 6, 10), days=10)
    assert all(w.level is not None and w.level > 0.5 for w in before)
    assert site_work(demo_engine, "es-sev-solar", date(2026, 7, 31)) == []  # no sensors stored
    # The reference year read for those levels, returned too: the stop is dated where it began.
    dated = site_work(demo_engine, "in-pnq-factory", date(2026, 7, 31), days=30, with_history=True)
    assert len(dated) == 30 + 365
    assert dated[-30:] == work
    levels = {w.day: w.level for w in dated}
    assert levels[date(2026, 4, 20)] is None  # a few days of readings are no reference yet
    assert all(levels[date(2026, 6, 1) + timedelta(days=k)] > 0.5 for k in range(10))
    assert all(levels[date(2026, 6, 25) + timedelta(days=k)] < 0.1 for k in range(10))
