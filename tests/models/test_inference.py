import numpy as np
import pytest
import torch

from models.cdnet import build_network
from models.errors import InputShapeError
from models.inference import ChangeDetector, _window
from models.normalization import Normalization
from tests.models.conftest import planted_pair, tiny_card


@pytest.fixture
def detector():
    torch.manual_seed(0)
    card = tiny_card()
    return ChangeDetector(build_network(card.architecture), card, device="cpu")


def test_predict_returns_probability_map(detector):
    pair, _ = planted_pair("p", size=40)
    probability = detector.predict(pair.before, pair.after)
    assert probability.shape == (40, 40)
    assert probability.dtype == np.float32
    assert (probability >= 0).all()
    assert (probability <= 1).all()


@pytest.mark.parametrize("mode", ["fixed", "per_image", "reference"])
def test_tiled_equals_untiled_away_from_seams(detector, mode):
    # Per-image and reference statistics come from the whole arrays, so tiling must not move them.
    detector.card.normalization = Normalization(
        (0.35,) * 3, (0.1,) * 3, per_image=mode == "per_image", reference=mode == "reference"
    )
    rng = np.random.default_rng(1)
    before = rng.random((3, 320, 320)).astype(np.float32)
    after = (0.5 * rng.random((3, 320, 320)) + 0.3).astype(np.float32)
    detector.tile_size = 512
    whole = detector.predict(before, after)
    detector.tile_size, detector.overlap, detector.batch_size = 192, 64, 2
    tiled = detector.predict(before, after)
    # Tiles start at 0 and 128 (flush end); seams blend over rows/cols 128-192. Far from any
    # tile edge (inside the single-tile core, beyond the receptive field) the outputs agree.
    core = (slice(40, 100), slice(40, 100))
    assert np.allclose(tiled[core], whole[core], atol=1e-4)
    assert np.allclose(tiled, whole, atol=0.15)


def test_invalid_pixels_come_back_nan_and_do_not_leak(detector):
    pair, _ = planted_pair("p", size=48)
    valid = np.ones((48, 48), bool)
    valid[:8] = False
    after = pair.after.copy()
    after[0, 40, 40] = np.nan
    probability = detector.predict(pair.before, after, valid)
    assert np.isnan(probability[:8]).all()
    assert np.isnan(probability[40, 40])
    assert np.isfinite(probability[8:40]).all()


def test_predict_refuses_wrong_band_count_and_shapes(detector):
    with pytest.raises(InputShapeError, match="expects 3"):
        detector.predict(np.zeros((4, 16, 16), np.float32), np.zeros((4, 16, 16), np.float32))
    with pytest.raises(InputShapeError):
        detector.predict(np.zeros((3, 16, 16), np.float32), np.zeros((3, 16, 17), np.float32))


def test_predict_handles_odd_sizes_and_thin_strips(detector):
    rng = np.random.default_rng(2)
    a = rng.random((3, 37, 300)).astype(np.float32)
    detector.tile_size, detector.overlap = 64, 16
    assert detector.predict(a, a[:, :, ::-1].copy()).shape == (37, 300)


def test_blend_window_is_positive_and_flat_in_the_core():
    w = _window(64, 16)
    assert w.min() > 0
    assert np.all(w[16:48, 16:48] == 1)


def test_thread_count_is_restored(detector):
    before = torch.get_num_threads()
    detector.threads = 1
    pair, _ = planted_pair("p")
    detector.predict(pair.before, pair.after)
    assert torch.get_num_threads() == before
