import numpy as np
import pytest

from models.baseline import (
    cva_change_probability,
    cva_magnitude,
    index_change_probability,
    spectral_indices,
)
from models.errors import InputShapeError
from models.metrics import confusion
from tests.models.conftest import planted_pair


def test_cva_finds_a_planted_square():
    pair, _ = planted_pair("p", size=64, square=12)
    probability = cva_change_probability(pair.before, pair.after)
    assert probability.dtype == np.float32
    assert probability.shape == (64, 64)
    assert 0.0 <= probability.min()
    assert probability.max() <= 1.0
    scores = confusion(probability >= 0.5, pair.label).scores()
    assert scores["f1"] > 0.95


def test_cva_returns_nan_on_invalid_and_nonfinite_pixels():
    pair, _ = planted_pair("p")
    before = pair.before.copy()
    before[0, 0, 0] = np.nan
    valid = np.ones((32, 32), bool)
    valid[5, 5] = False
    probability = cva_change_probability(before, pair.after, valid)
    assert np.isnan(probability[0, 0])
    assert np.isnan(probability[5, 5])
    assert np.isfinite(probability[10:, 10:]).all()


def test_cva_of_identical_dates_is_no_change():
    pair, _ = planted_pair("p")
    assert (cva_change_probability(pair.before, pair.before) == 0).all()
    assert np.allclose(cva_magnitude(pair.before, pair.before), 0)


def test_cva_rejects_mismatched_shapes():
    with pytest.raises(InputShapeError):
        cva_change_probability(np.zeros((3, 8, 8), np.float32), np.zeros((3, 8, 9), np.float32))


def test_construction_index_flags_vegetation_replaced_by_bare_soil():
    bands = ("B02", "B03", "B04", "B08", "B11", "B12")
    vegetation = np.array([0.03, 0.06, 0.03, 0.40, 0.20, 0.10], np.float32)
    soil = np.array([0.12, 0.15, 0.18, 0.22, 0.30, 0.25], np.float32)
    before = np.broadcast_to(vegetation[:, None, None], (6, 32, 32)).copy()
    after = before.copy()
    after[:, 8:16, 8:16] = soil[:, None, None]
    rng = np.random.default_rng(0)
    after += 0.002 * rng.standard_normal(after.shape).astype(np.float32)
    indices = spectral_indices(before, bands)
    assert set(indices) == {"ndvi", "ndbi", "bsi"}
    probability = index_change_probability(before, after, bands=bands)
    label = np.zeros((32, 32), np.uint8)
    label[8:16, 8:16] = 1
    assert confusion(probability >= 0.5, label).scores()["f1"] > 0.95


def test_index_change_leaves_an_unchanged_field_below_half():
    bands = ("B02", "B03", "B04", "B08", "B11", "B12")
    meadow = np.array([0.04, 0.07, 0.05, 0.30, 0.22, 0.12], np.float32)
    before = np.broadcast_to(meadow[:, None, None], (6, 8, 8)).copy()
    after = before * 1.03  # a slightly brighter day: same material, same NDVI
    assert np.nanmax(index_change_probability(before, after, bands=bands)) < 0.5
