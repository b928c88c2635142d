import dask.array as da
import numpy as np
import pytest

from imagery.cloudmask import (
    cloud_fraction,
    cloud_skip_reason,
    persistent_bright_mask,
    unmask_persistent,
    valid_fraction,
    valid_mask,
)

T, H, W = 12, 20, 20
ROOF = (slice(5, 9), slice(5, 9))


def _roof_and_moving_cloud():
    """SCL and B11 stacks: a roof appears on day 3 and SCL calls it cloud on 8 of 9 days; a small cloud drifts."""
    scl = np.full((T, H, W), 4, np.uint8)
    swir = np.full((T, H, W), 0.18, np.float32)
    for t in range(T):
        if t >= 3:
            swir[t][ROOF] = 0.40 + 0.01 * (t % 2)
            scl[t][ROOF] = 5 if t == 7 else 9
        r = (2 * t) % 14
        scl[t, r : r + 3, 12:15] = 9  # a cloud that moves: never the same pixels twice running
        swir[t, r : r + 3, 12:15] = 0.35
    return scl, swir


def test_valid_mask_excludes_configured_classes():
    scl = np.array([[0, 3, 4, 5], [8, 9, 10, 6]], np.uint8)
    assert valid_mask(scl).tolist() == [[False, False, True, True], [False, False, False, True]]
    assert valid_mask(scl, excluded={0, 6}).tolist() == [[False, True, True, True], [True, True, True, False]]


def test_cloud_fraction_ignores_no_data_and_respects_region():
    scl = np.array([[0, 0, 9, 4], [3, 4, 4, 4]], np.uint8)
    assert cloud_fraction(scl) == pytest.approx(2 / 6)
    region = np.array([[True, True, False, False], [False, False, False, False]])
    assert cloud_fraction(scl, region) is None
    assert valid_fraction(scl, np.array([[False, False, True, True], [False, True, False, False]])) == pytest.approx(
        2 / 3
    )


def test_skip_reason_names_cloud_share_and_threshold():
    assert cloud_skip_reason(10.0, 60.0) is None
    assert "72.0% > max_cloud_pct 60%" in cloud_skip_reason(72.0, 60.0)
    assert "all cloud" in cloud_skip_reason(100.0, 99.0)
    assert cloud_skip_reason(None, 60.0) == "no data over the site"


def test_planted_roof_that_scl_calls_cloud_is_unmasked_and_moving_cloud_is_not():
    scl, swir = _roof_and_moving_cloud()
    clear = np.ones(T, bool)
    persistent = persistent_bright_mask(scl, swir, clear)
    expected = np.zeros((H, W), bool)
    expected[ROOF] = True
    assert np.array_equal(persistent, expected)
    valid = unmask_persistent(valid_mask(scl), scl, persistent, clear)
    assert valid[3:, 5:9, 5:9].all()
    assert not valid[0, 0:3, 12:15].any()


def test_persistent_label_on_dark_surface_stays_masked():
    scl, swir = _roof_and_moving_cloud()
    swir[:, 5:9, 5:9] = 0.05  # same labels, but dark in SWIR: not concrete or metal
    assert not persistent_bright_mask(scl, swir, np.ones(T, bool)).any()


def test_cloudy_scenes_neither_count_nor_get_unmasked():
    scl, swir = _roof_and_moving_cloud()
    clear = np.ones(T, bool)
    clear[3:10] = False  # an overcast spell: only days 10-11 count, too few
    assert not persistent_bright_mask(scl, swir, clear).any()
    persistent = np.zeros((H, W), bool)
    persistent[ROOF] = True
    valid = unmask_persistent(valid_mask(scl), scl, persistent, clear)
    assert not valid[4][ROOF].any()
    assert valid[10][ROOF].all()


def test_persistent_check_runs_lazily_on_dask():
    scl, swir = _roof_and_moving_cloud()
    lazy = persistent_bright_mask(
        da.from_array(scl, chunks=(1, 10, 10)), da.from_array(swir, chunks=(1, 10, 10)), np.ones(T, bool)
    )
    assert isinstance(lazy, da.Array)
    assert np.array_equal(lazy.compute(), persistent_bright_mask(scl, swir, np.ones(T, bool)))
