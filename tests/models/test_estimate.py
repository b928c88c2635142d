from datetime import UTC, datetime

import numpy as np
import pytest

from models.baseline import cva_change_probability
from models.estimate import (
    CLEARED,
    CONCRETE_S2,
    FRESH_SOIL_S2,
    SLAB,
    STRUCTURE,
    UNTOUCHED,
    BuildLadder,
    SceneEstimator,
    SiteLayers,
    baseline_composite,
    pixel_stages,
)

GRASS = np.array([0.03, 0.065, 0.04, 0.38, 0.19, 0.09], dtype=np.float32)
WHITE_ROOF = np.array([0.42, 0.44, 0.45, 0.47, 0.42, 0.36], dtype=np.float32)


def _paint(shape, spectrum):
    return np.broadcast_to(spectrum[:, None, None], (6, *shape)).copy()


@pytest.fixture
def scene():
    """40x40 grass; a 20x20 pad (groundwork) holding a 10x10 building footprint.

    In the 'after' image the pad is bare soil, the building's left half a slab, its right half roofed.
    """
    shape = (40, 40)
    before = _paint(shape, GRASS)
    after = before.copy()
    after[:, 10:30, 10:30] = FRESH_SOIL_S2[:, None, None]
    after[:, 15:25, 15:20] = CONCRETE_S2[:, None, None]
    after[:, 15:25, 20:25] = WHITE_ROOF[:, None, None]
    pad = np.zeros(shape, bool)
    pad[10:30, 10:30] = True
    hall = np.zeros(shape, bool)
    hall[15:25, 15:25] = True
    layers = SiteLayers((pad, hall), (True, False), (0.3, 0.7), np.ones(shape, bool))
    return before, after, layers


def test_stages_tell_soil_slab_and_roof_apart(scene):
    _before, after, layers = scene
    changed = np.zeros(layers.site_mask.shape, bool)
    changed[10:30, 10:30] = True
    stage, soil = pixel_stages(after, changed, layers.groundwork_only)
    assert stage[0, 0] == UNTOUCHED
    assert stage[12, 12] == CLEARED
    assert stage[20, 17] == SLAB
    assert stage[20, 22] == STRUCTURE
    np.testing.assert_allclose(soil, FRESH_SOIL_S2, atol=1e-6)


def test_scene_estimate_weights_phases_and_stages(scene):
    before, after, layers = scene
    est = SceneEstimator(cva_change_probability, 0.5, "baseline:cva")
    when = datetime(2026, 1, 1, tzinfo=UTC)
    obs, prob = est.observe("s", "S1", when, before, after, np.ones((40, 40), bool), layers)
    assert obs.phase_fractions[0] == pytest.approx(1.0)  # the pad is cleared everywhere
    # hall on the pad: all of it at least slab, half roofed -> the ladder puts it at 0.45 + 0.5 * 0.55
    assert obs.phase_fractions[1] == pytest.approx(0.725, abs=0.01)
    assert obs.percent == pytest.approx(100 * (0.3 * 1.0 + 0.7 * 0.725), abs=1)
    assert obs.outside_change_fraction == pytest.approx(0.0)
    assert prob.shape == (40, 40)


def test_clouds_over_the_footprints_give_no_estimate_with_reason(scene):
    before, after, layers = scene
    valid = np.ones((40, 40), bool)
    valid[10:30, 10:25] = False  # most of the pad and the hall under cloud
    obs, _ = SceneEstimator(cva_change_probability, 0.5, "b").observe(
        "s", "S1", datetime(2026, 1, 1, tzinfo=UTC), before, after, valid, layers
    )
    assert obs.percent is None
    assert "too little of the footprints seen" in obs.reason


def test_baseline_composite_is_median_of_valid_dates():
    images = np.stack([np.full((6, 2, 2), v, np.float32) for v in (0.1, 0.2, 0.9)])
    valid = np.ones((3, 2, 2), bool)
    valid[2] = False  # the bright (cloudy) date is masked out
    valid[:, 0, 0] = False  # never clear
    comp = baseline_composite(images, valid)
    assert comp[0, 1, 1] == pytest.approx(0.15)
    assert np.isnan(comp[0, 0, 0])


@pytest.mark.parametrize("f", [0.0, 0.2, 0.5, 0.7, 1.0])
def test_ladder_inversion_recovers_the_done_share(f):
    ladder = BuildLadder()
    cleared, slab, roof = (float(x[0]) for x in ladder.shares(np.array([f])))
    assert ladder.invert(cleared, slab, roof) == pytest.approx(f, abs=0.01)


def test_ladder_claims_no_invisible_progress_on_a_pad():
    assert BuildLadder().invert(None, 0.0, 0.0) == 0.0
