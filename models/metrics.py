"""Pixel metrics of the change class: confusion counts, precision / recall / F1 / IoU, threshold choice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Number of probability bins used to pick a threshold (resolution 1 / THRESHOLD_BINS).
THRESHOLD_BINS = 200


@dataclass(slots=True)
class Confusion:
    """Pixel counts of the change class (positive = change). Adding two gives the pooled counts."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    def scores(self) -> dict[str, float]:
        """Precision, recall, F1 and IoU of the change class (0 where undefined, e.g. no positives)."""
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        union = self.tp + self.fp + self.fn
        iou = self.tp / union if union else 0.0
        return {"precision": p, "recall": r, "f1": f1, "iou": iou}


def confusion(
    prediction: npt.NDArray[np.bool_], label: npt.NDArray[np.integer], valid: npt.NDArray[np.bool_] | None = None
) -> Confusion:
    """Confusion counts of an ``(H, W)`` binary prediction against an ``(H, W)`` 0/1 label.

    Pixels outside ``valid`` (and NaN predictions, when passed as float) are not counted.
    """
    if prediction.shape != label.shape:
        raise ValueError(f"prediction {prediction.shape} and label {label.shape} differ in shape")
    keep = np.ones(label.shape, dtype=bool) if valid is None else valid.astype(bool)
    pred = prediction.astype(bool) & keep
    truth = label.astype(bool) & keep
    tp = int((pred & truth).sum())
    fp = int((pred & ~truth).sum())
    fn = int((~pred & truth).sum())
    return Confusion(tp, fp, fn, int(keep.sum()) - tp - fp - fn)


@dataclass(slots=True)
class ThresholdHistogram:
    """Accumulates probability histograms of change and no-change pixels to pick the F1-best threshold."""

    positive: npt.NDArray[np.int64]
    negative: npt.NDArray[np.int64]

    @classmethod
    def empty(cls) -> ThresholdHistogram:
        """A histogram with no pixels yet."""
        return cls(np.zeros(THRESHOLD_BINS, np.int64), np.zeros(THRESHOLD_BINS, np.int64))

    def add(
        self,
        probability: npt.NDArray[np.floating],
        label: npt.NDArray[np.integer],
        valid: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """Add one ``(H, W)`` probability map in [0, 1] and its 0/1 label (NaN pixels ignored)."""
        keep = np.isfinite(probability)
        if valid is not None:
            keep &= valid
        bins = np.clip((probability[keep] * THRESHOLD_BINS).astype(np.int64), 0, THRESHOLD_BINS - 1)
        truth = label[keep].astype(bool)
        self.positive += np.bincount(bins[truth], minlength=THRESHOLD_BINS)
        self.negative += np.bincount(bins[~truth], minlength=THRESHOLD_BINS)

    def f1_curve(self) -> npt.NDArray[np.float64]:
        """Pooled F1 when predicting change for ``probability >= k / THRESHOLD_BINS``, for each k."""
        # Counts of pixels at or above each bin edge.
        tp = np.cumsum(self.positive[::-1])[::-1].astype(np.float64)
        fp = np.cumsum(self.negative[::-1])[::-1].astype(np.float64)
        fn = self.positive.sum() - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            f1: npt.NDArray[np.float64] = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        return f1

    def best_threshold(self) -> tuple[float, float]:
        """The threshold maximising pooled F1, and that F1."""
        return best_mean_threshold([self])


def best_mean_threshold(histograms: list[ThresholdHistogram]) -> tuple[float, float]:
    """The threshold maximising the mean of several sets' pooled F1 (macro F1), and that mean.

    Used when validation pools unlike data sets: one large aerial pair would otherwise decide the
    threshold for 0.5 m building tiles too.
    """
    curve = np.mean([h.f1_curve() for h in histograms], axis=0)
    k = int(np.argmax(curve))
    return k / THRESHOLD_BINS, float(curve[k])
