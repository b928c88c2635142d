import itertools
from datetime import date

import numpy as np
import pytest

from aoi.demo import demo_portfolio
from imagery.simulate import (
    SimulationOptions,
    acquisition_dates,
    footprint_labels,
    simulate_scenes,
    site_grid,
)
from tests.imagery.conftest import small_site

CLEAR = SimulationOptions(clear_prob=1.0, overcast_prob=0.0)


def test_same_seed_gives_identical_bytes_and_other_seed_differs():
    site = small_site()
    a = list(simulate_scenes(site, date(2025, 5, 1), date(2025, 5, 20), seed=5))
    b = list(simulate_scenes(site, date(2025, 5, 1), date(2025, 5, 20), seed=5))
    c = list(simulate_scenes(site, date(2025, 5, 1), date(2025, 5, 20), seed=6))
    assert [s.scene_id for s in a] == [s.scene_id for s in b]
    for x, y in zip(a, b, strict=True):
        assert all(x.dn[k].tobytes() == y.dn[k].tobytes() for k in x.dn)
        assert x.scl.tobytes() == y.scl.tobytes()
    assert any(x.dn["B04"].tobytes() != z.dn["B04"].tobytes() for x, z in zip(a, c, strict=True))


def test_scene_of_a_day_does_not_depend_on_requested_range():
    site = small_site()
    long = {s.scene_id: s for s in simulate_scenes(site, date(2025, 4, 1), date(2025, 6, 1), seed=1)}
    short = list(simulate_scenes(site, date(2025, 5, 10), date(2025, 5, 20), seed=1))
    assert short
    for s in short:
        assert s.dn["B08"].tobytes() == long[s.scene_id].dn["B08"].tobytes()


def test_revisit_is_five_days():
    days = acquisition_dates("x", date(2025, 1, 1), date(2025, 12, 31))
    assert {(b - a).days for a, b in itertools.pairwise(days)} == {5}
    assert 72 <= len(days) <= 74


def test_digital_numbers_carry_boa_offset_from_baseline_04():
    site = small_site()
    before = next(simulate_scenes(site, date(2022, 1, 10), date(2022, 1, 20), seed=2, options=CLEAR))
    after = next(simulate_scenes(site, date(2022, 1, 26), date(2022, 2, 5), seed=2, options=CLEAR))
    assert (before.processing_baseline, before.offset_dn) == ("03.01", 0)
    assert (after.processing_baseline, after.offset_dn) == ("04.00", 1000)
    # Same surface (winter, no works yet): harmonised reflectance agrees, raw DN differ by ~1000.
    r_before = before.dn["B11"].astype(float) / 1e4
    r_after = (after.dn["B11"].astype(float) - 1000) / 1e4
    assert abs(np.median(r_after) - np.median(r_before)) < 0.02
    assert np.median(after.dn["B11"]) - np.median(before.dn["B11"]) > 800


def test_change_mask_grows_inside_footprints_as_works_progress():
    site = small_site()
    grid = site_grid(site)
    inside = footprint_labels(site, grid) > 0
    scenes = list(simulate_scenes(site, date(2025, 2, 1), date(2025, 10, 1), seed=3))
    counts = [int(s.change.sum()) for s in scenes]
    assert counts[0] == 0
    assert counts[-1] == int(inside.sum())
    assert all(b >= a for a, b in itertools.pairwise(counts))
    assert not any((s.change & ~inside).any() for s in scenes)
    assert scenes[-1].true_percent == pytest.approx(100.0)
    assert scenes[len(scenes) // 2].phase_fractions[0] > 0


def test_finished_hall_is_roofed_with_bright_spectrum():
    site = small_site()
    grid = site_grid(site)
    hall = footprint_labels(site, grid) == 2
    last = list(simulate_scenes(site, date(2025, 9, 20), date(2025, 10, 1), seed=3, options=CLEAR))[-1]
    swir = (last.dn["B11"].astype(float) - last.offset_dn) / 1e4
    ndvi = (last.dn["B08"].astype(float) - last.dn["B04"]) / (last.dn["B08"].astype(float) + last.dn["B04"] - 2000)
    assert np.median(ndvi[hall]) < 0.2  # no longer vegetation
    assert np.median(swir[hall]) > 0.05


def test_cancelled_site_regrows_vegetation():
    site = demo_portfolio().site("br-cps-warehouse")
    at_event = list(simulate_scenes(site, date(2026, 2, 15), date(2026, 2, 20), seed=1))[-1]
    later = list(simulate_scenes(site, date(2026, 6, 1), date(2026, 6, 10), seed=1))[-1]
    assert at_event.change.sum() > 100
    assert later.change.sum() == 0
    assert later.true_percent == 0.0


def test_vegetation_season_follows_hemisphere():
    def summer_minus_winter(lat: float) -> float:
        site = small_site(lat=lat)
        jan = next(simulate_scenes(site, date(2024, 1, 10), date(2024, 1, 20), seed=4, options=CLEAR))
        jul = next(simulate_scenes(site, date(2024, 7, 10), date(2024, 7, 20), seed=4, options=CLEAR))

        def ndvi(s):
            nir, red = s.dn["B08"].astype(float), s.dn["B04"].astype(float)
            return float(np.median((nir - red) / (nir + red)))

        return ndvi(jul) - ndvi(jan)

    assert summer_minus_winter(48.0) > 0.1
    assert summer_minus_winter(-34.0) < -0.1


def test_clouds_are_bright_and_labelled_in_scl():
    site = small_site()
    opts = SimulationOptions(clear_prob=0.0, overcast_prob=0.0)
    scenes = list(simulate_scenes(site, date(2025, 6, 1), date(2025, 7, 30), seed=8, options=opts))
    cloudy = [s for s in scenes if 10 < s.cloud_pct < 90]
    assert cloudy
    s = cloudy[0]
    blue = (s.dn["B02"].astype(float) - s.offset_dn) / 1e4
    assert blue[s.scl == 9].mean() > 0.3 > blue[s.scl == 4].mean()


def test_site_without_fate_follows_its_plan():
    site = small_site(props={})
    for s in simulate_scenes(site, date(2025, 3, 1), date(2025, 8, 1), seed=1):
        assert s.true_percent == pytest.approx(site.plan.planned_percent(s.acquired_at_utc.date()))
