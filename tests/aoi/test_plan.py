from datetime import date

import pytest
from shapely.geometry import box

from aoi import Milestone, Phase, Plan
from aoi.demo import DEMO_AS_OF, Fate, demo_portfolio, fate_curve

FP = box(0, 0, 0.001, 0.001)


def _plan() -> Plan:
    return Plan(
        (
            Phase("clearing", 0.25, date(2025, 1, 1), date(2025, 1, 31), FP),
            Phase("build", 0.75, date(2025, 2, 1), date(2025, 12, 31), FP),
        )
    )


def test_planned_percent_is_weighted_and_bounded():
    plan = _plan()
    assert plan.planned_percent(date(2024, 12, 31)) == 0
    assert plan.planned_percent(date(2025, 1, 31)) == pytest.approx(25)
    assert plan.planned_percent(date(2026, 1, 1)) == pytest.approx(100)
    mid = plan.planned_percent(date(2025, 7, 2))
    assert 25 < mid < 100


def test_date_for_percent_inverts_the_curve():
    plan = _plan()
    for pct in (10, 25, 60, 100):
        d = plan.date_for_percent(pct)
        assert d is not None
        assert plan.planned_percent(d) >= pct - 1e-9
        assert plan.planned_percent(date.fromordinal(d.toordinal() - 1)) < pct
    assert plan.date_for_percent(101) is None


def test_milestones_override_phase_curve():
    plan = Plan(_plan().phases, (Milestone(date(2025, 6, 30), 50.0), Milestone(date(2025, 12, 31), 100.0)))
    assert plan.planned_percent(date(2025, 6, 30)) == pytest.approx(50)
    assert plan.planned_percent(date(2025, 3, 31)) == pytest.approx(
        50 * (date(2025, 3, 31) - date(2024, 12, 31)).days / 181
    )


def test_demo_has_six_fates_in_several_zones_and_hemispheres():
    from geo import grid_for

    sites = demo_portfolio().sites
    assert {s.properties["fate"] for s in sites} == {f.value for f in Fate}
    crs = {grid_for(s.boundary_wgs84).crs for s in sites}
    assert len(crs) == 6
    assert any(c.startswith("EPSG:327") for c in crs)
    straddler = [s for s in sites if s.boundary_wgs84.bounds[0] < 12 < s.boundary_wgs84.bounds[2]]
    assert len(straddler) == 1


def test_demo_fate_curves_tell_their_story_at_as_of():
    by_fate = {s.properties["fate"]: s for s in demo_portfolio().sites}

    def gap(fate: str) -> float:
        s = by_fate[fate]
        curve = fate_curve(s)
        assert curve is not None
        return curve.percent(DEMO_AS_OF) - s.plan.planned_percent(DEMO_AS_OF)

    assert abs(gap("on_track")) < 3
    assert gap("late") < -15
    assert gap("stalled") < -15
    assert gap("ahead") > 10
    assert gap("cancelled") < -50
    assert fate_curve(by_fate["finished"]).percent(DEMO_AS_OF) == pytest.approx(100)  # type: ignore[union-attr]
    stalled = fate_curve(by_fate["stalled"])
    assert stalled is not None
    assert stalled.percent(DEMO_AS_OF) == stalled.percent(date(2026, 7, 1))
