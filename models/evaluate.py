"""Score a change detector and the CVA baseline on labelled pairs, pooled and per pair.

The model's threshold comes from its card (chosen on validation pairs at training time); it is
never tuned here, so test scores are honest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.baseline import cva_change_probability, index_change_probability
from models.datasets.base import ChangePair
from models.inference import ChangeDetector
from models.metrics import Confusion, confusion

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PairScore:
    """Confusion counts of one pair for the model and the baselines."""

    name: str
    model: Confusion
    baseline: Confusion
    index_baseline: Confusion | None = None

    def to_dict(self) -> dict[str, Any]:
        """Scores of this pair (model unprefixed, baselines prefixed)."""
        d: dict[str, Any] = {"name": self.name, **self.model.scores()}
        d.update({f"baseline_{k}": v for k, v in self.baseline.scores().items()})
        if self.index_baseline is not None:
            d.update({f"index_baseline_{k}": v for k, v in self.index_baseline.scores().items()})
        return d


@dataclass(slots=True)
class EvaluationReport:
    """Per-pair and pixel-pooled scores of one evaluation set."""

    threshold: float
    pairs: list[PairScore] = field(default_factory=list)

    def pooled(self) -> tuple[Confusion, Confusion, Confusion | None]:
        """Pixel-aggregated confusion of the model, CVA baseline and index baseline (None if unavailable)."""
        model, baseline = Confusion(), Confusion()
        index: Confusion | None = None
        for p in self.pairs:
            model += p.model
            baseline += p.baseline
            if p.index_baseline is not None:
                index = p.index_baseline if index is None else index + p.index_baseline
        return model, baseline, index

    def summary(self) -> dict[str, Any]:
        """Pooled scores: ``precision, recall, f1, iou, pairs, threshold, baseline_*`` (+ ``index_baseline_*``)."""
        model, baseline, index = self.pooled()
        out: dict[str, Any] = {**model.scores(), "pairs": len(self.pairs), "threshold": self.threshold}
        out.update({f"baseline_{k}": v for k, v in baseline.scores().items()})
        if index is not None:
            out.update({f"index_baseline_{k}": v for k, v in index.scores().items()})
        return out


def evaluate_pairs(
    detector: ChangeDetector,
    pairs: Iterable[ChangePair],
    *,
    threshold: float | None = None,
    on_pair: Callable[[PairScore], None] | None = None,
) -> EvaluationReport:
    """Score the detector and the baselines on every pair.

    Args:
        detector: Loaded detector; its bands must be the pairs' bands.
        pairs: Labelled pairs (read lazily).
        threshold: Probability threshold; default the card's (validation-chosen) threshold.
        on_pair: Called after each pair (progress display at the door).

    Returns:
        The report; ``summary()`` gives the pooled figures.
    """
    t = detector.threshold if threshold is None else threshold
    report = EvaluationReport(threshold=t)
    for pair in pairs:
        valid = pair.valid
        probability = detector.predict(pair.before, pair.after, valid)
        scored = np.isfinite(probability)
        model = confusion(np.nan_to_num(probability, nan=0.0) >= t, pair.label, scored)
        cva = cva_change_probability(pair.before, pair.after, valid)
        baseline = confusion(np.nan_to_num(cva, nan=0.0) >= 0.5, pair.label, scored)
        index = None
        if {"B04", "B08"} <= {b.upper() for b in detector.bands}:
            # The production fallback (progress without a fitting checkpoint), scored on the same pixels.
            s2_bands = [b.upper() for b in detector.bands]
            index_p = index_change_probability(pair.before, pair.after, valid, bands=s2_bands)
            index = confusion(np.nan_to_num(index_p) >= 0.5, pair.label, scored)
        score = PairScore(pair.name, model, baseline, index)
        report.pairs.append(score)
        logger.debug("scored pair %s: f1 %.3f", pair.name, model.scores()["f1"])
        if on_pair is not None:
            on_pair(score)
    return report
