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


def _site_window(seed: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Before, after without construction and after with a bright slab over 60 % of the window."""
    rng = np.random.default_rng(seed)
    before = (0.1 + 0.05 * rng.random((3, 40, 40))).astype(np.float32)
    after = (before + 0.01 * rng.standard_normal((3, 40, 40))).astype(np.float32)
    built = np.zeros((40, 40), bool)
    built[:24] = True
    filled = after.copy()
    filled[:, built] = 0.35
    return before, after, filled


def test_reference_normalization_of_the_after_image_ignores_construction_filling_it():
    before, after, filled = _site_window()
    unchanged = np.ones((40, 40), bool)
    unchanged[:24] = False
    norm = Normalization((0.0,) * 3, (1.0,) * 3, reference=True)
    b0, a0 = norm.apply_pair(before, after)
    b1, a1 = norm.apply_pair(before, filled)
    assert np.array_equal(b0, b1)
    assert np.allclose(a0[:, unchanged], a1[:, unchanged], atol=1e-5)
    # Per-image statistics move with the construction: the same unchanged pixels shift by > 1 sigma.
    per_image = Normalization((0.0,) * 3, (1.0,) * 3, per_image=True)
    _, p0 = per_image.apply_pair(before, after)
    _, p1 = per_image.apply_pair(before, filled)
    assert np.abs(p0[:, unchanged] - p1[:, unchanged]).mean() > 1.0


def test_reference_normalization_takes_statistics_from_valid_before_pixels_only():
    before, after, _ = _site_window()
    before[:, 0, 0] = 1000.0
    valid = np.ones((40, 40), bool)
    valid[0, 0] = False
    b, a = Normalization((0.0,) * 3, (1.0,) * 3, reference=True).apply_pair(before, after, valid)
    ok = before[:, valid]
    expected = (after[:, 5, 5] - ok.mean(axis=1)) / (ok.std(axis=1) + 1e-6)
    assert a[:, 5, 5] == pytest.approx(expected, abs=1e-4)
    assert b[:, valid].mean(axis=1) == pytest.approx([0.0] * 3, abs=1e-5)


def test_reference_normalization_cancels_a_level_offset_on_both_dates():
    # An L1C-vs-L2A style gain and offset common to both dates disappears, the change does not.
    before, _, filled = _site_window()
    norm = Normalization((0.0,) * 3, (1.0,) * 3, reference=True)
    b0, a0 = norm.apply_pair(before, filled)
    b1, a1 = norm.apply_pair(1.2 * before + 0.05, 1.2 * filled + 0.05)
    assert np.allclose(b0, b1, atol=1e-3)
    assert np.allclose(a0, a1, atol=1e-3)
    assert (a0[:, :24] - b0[:, :24]).mean() > 3.0


def test_old_cards_keep_their_mode_and_new_ones_round_trip():
    old = {"mean": [0.1, 0.2], "std": [0.01, 0.02], "per_image": True}
    norm = Normalization.from_dict(old)
    assert (norm.mode, norm.per_image, norm.reference) == ("per_image", True, False)
    assert Normalization.from_dict({"mean": [1], "std": [2]}).mode == "fixed"
    new = Normalization((1.0, 2.0), (3.0, 4.0), reference=True)
    assert new.to_dict()["mode"] == "reference"
    assert Normalization.from_dict(new.to_dict()) == new
    assert fit_normalization([np.ones((2, 3, 3))], mode="reference").reference is True
    with pytest.raises(ValueError, match="not both"):
        Normalization((1.0,), (1.0,), per_image=True, reference=True)
    with pytest.raises(ValueError, match="not one of"):
        fit_normalization([np.ones((2, 3, 3))], mode="global")  # type: ignore[arg-type]
