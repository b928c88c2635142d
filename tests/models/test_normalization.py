import numpy as np
import pytest

from models.errors import InputShapeError
from models.normalization import Normalization, fit_normalization


def test_fixed_normalization_uses_fitted_statistics():
    rng = np.random.default_rng(0)
    images = [rng.normal(5.0, 2.0, (2, 50, 50)).astype(np.float32) for _ in range(3)]
    norm = fit_normalization(images)
    assert norm.mean == pytest.approx((5.0, 5.0), abs=0.05)
    assert norm.std == pytest.approx((2.0, 2.0), abs=0.05)
    out = norm.apply(images[0])
    assert out.dtype == np.float32
    assert abs(float(out.mean())) < 0.1


def test_per_image_normalization_cancels_a_global_brightness_shift():
    rng = np.random.default_rng(1)
    image = rng.random((3, 20, 20)).astype(np.float32)
    norm = Normalization((0.0,) * 3, (1.0,) * 3, per_image=True)
    assert np.allclose(norm.apply(image), norm.apply(1.5 * image + 0.2), atol=1e-4)


def test_per_image_statistics_ignore_invalid_pixels():
    image = np.ones((1, 4, 4), np.float32)
    image[0, 0, 1] = 3.0
    image[0, 0, 0] = 1000.0
    valid = np.ones((4, 4), bool)
    valid[0, 0] = False
    out = Normalization((0.0,), (1.0,), per_image=True).apply(image, valid)
    assert out[0, 3, 3] == pytest.approx(-0.2673, abs=1e-3)  # mean 17/15, std 0.4989 over 15 pixels


def test_normalization_round_trips_through_dict_and_checks_band_count():
    norm = Normalization((1.0, 2.0), (3.0, 4.0), per_image=True)
    assert Normalization.from_dict(norm.to_dict()) == norm
    assert Normalization.from_dict({"mean": [1], "std": [2]}).per_image is False
    with pytest.raises(InputShapeError):
        norm.apply(np.zeros((3, 2, 2), np.float32))
