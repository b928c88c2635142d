import numpy as np
import pytest

from models.metrics import Confusion, ThresholdHistogram, confusion


def test_confusion_scores_known_counts():
    pred = np.array([[1, 1, 0, 0]], bool)
    label = np.array([[1, 0, 1, 0]], np.uint8)
    c = confusion(pred, label)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 1)
    s = c.scores()
    assert s["precision"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(0.5)
    assert s["iou"] == pytest.approx(1 / 3)


def test_confusion_ignores_invalid_pixels_and_pools_by_addition():
    pred = np.array([[1, 1]], bool)
    label = np.array([[1, 0]], np.uint8)
    c = confusion(pred, label, np.array([[True, False]]))
    assert (c.tp, c.fp) == (1, 0)
    assert (c + c).tp == 2


def test_scores_are_zero_without_positives():
    assert Confusion(tn=10).scores() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "iou": 0.0}


def test_best_threshold_separates_two_populations():
    probability = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], np.float32)
    label = np.array([0, 0, 0, 1, 1, 1], np.uint8)
    hist = ThresholdHistogram.empty()
    hist.add(probability, label)
    threshold, f1 = hist.best_threshold()
    assert 0.3 < threshold <= 0.7
    assert f1 == pytest.approx(1.0)


def test_mean_threshold_weighs_data_sets_equally():
    from models.metrics import best_mean_threshold

    big, small = ThresholdHistogram.empty(), ThresholdHistogram.empty()
    # Big set: change at 0.35 and 0.6, no change at 0.1. Small set: no change at 0.4, change at 0.9.
    big.add(np.repeat(np.array([0.1, 0.35, 0.6], np.float32), 1000), np.repeat(np.array([0, 1, 1], np.uint8), 1000))
    small.add(np.array([0.4] * 10 + [0.9], np.float32), np.array([0] * 10 + [1], np.uint8))
    pooled = ThresholdHistogram(big.positive + small.positive, big.negative + small.negative)
    assert pooled.best_threshold()[0] < 0.35
    threshold, mean_f1 = best_mean_threshold([big, small])
    assert 0.4 < threshold <= 0.6
    assert mean_f1 == pytest.approx((2 / 3 + 1) / 2)
