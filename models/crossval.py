"""Leave-one-group-out cross-validation of a training config (e.g. leave one OSCD city out).

With only a handful of labelled cities, one fixed split says little: a city's F1 depends more on
the city than on the model. ``crossval`` trains one model per fold: fold *k* tests on group *k*,
validates (early stopping and the threshold) on the next group, and trains on all others. Every
held-out group is thus scored by a model that never saw it and whose threshold was not chosen on
it. The pooled figure adds the confusion counts of all folds' test pairs.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.checkpoint import ModelCard
from models.errors import ConfigError
from models.evaluate import evaluate_pairs
from models.inference import ChangeDetector
from models.metrics import Confusion
from models.train import DataSpec, TrainConfig, _open, train

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class FoldResult:
    """One fold: which group was held out, the threshold its validation group chose, and the test counts."""

    fold: int
    test: str
    val: str
    threshold: float
    epochs_run: int
    model: Confusion
    baseline: Confusion
    index_baseline: Confusion | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with counts (so folds can be pooled later) and scores."""
        d: dict[str, Any] = {
            "fold": self.fold,
            "test": self.test,
            "val": self.val,
            "threshold": self.threshold,
            "epochs_run": self.epochs_run,
            "counts": _counts(self.model),
            "baseline_counts": _counts(self.baseline),
            **self.model.scores(),
        }
        d.update({f"baseline_{k}": v for k, v in self.baseline.scores().items()})
        if self.index_baseline is not None:
            d["index_baseline_counts"] = _counts(self.index_baseline)
            d.update({f"index_baseline_{k}": v for k, v in self.index_baseline.scores().items()})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FoldResult:
        """Inverse of ``to_dict``."""
        index = d.get("index_baseline_counts")
        return cls(
            int(d["fold"]),
            str(d["test"]),
            str(d["val"]),
            float(d["threshold"]),
            int(d["epochs_run"]),
            Confusion(**d["counts"]),
            Confusion(**d["baseline_counts"]),
            Confusion(**index) if index else None,
        )


@dataclass(slots=True)
class CrossValReport:
    """All folds of one cross-validation."""

    config: str
    folds: list[FoldResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Pooled precision / recall / F1 / IoU over all held-out groups, the baselines', and the mean per-group F1."""
        model, baseline = Confusion(), Confusion()
        index: Confusion | None = None
        for f in self.folds:
            model += f.model
            baseline += f.baseline
            if f.index_baseline is not None:
                index = f.index_baseline if index is None else index + f.index_baseline
        out: dict[str, Any] = {**model.scores(), "pairs": len(self.folds)}
        out["mean_group_f1"] = sum(f.model.scores()["f1"] for f in self.folds) / max(1, len(self.folds))
        out.update({f"baseline_{k}": v for k, v in baseline.scores().items()})
        if index is not None:
            out.update({f"index_baseline_{k}": v for k, v in index.scores().items()})
        out["per_group"] = [f.to_dict() for f in self.folds]
        out["config"] = self.config
        return out


def _counts(c: Confusion) -> dict[str, int]:
    return {"tp": c.tp, "fp": c.fp, "fn": c.fn, "tn": c.tn}


def groups_of(config: TrainConfig, data_index: int) -> list[str]:
    """The groups (pair names) of one data set, in the order folds use: every name in its splits."""
    spec = config.data[data_index]
    names = [*spec.train, *spec.val, *spec.test]
    if any(any(ch in n for ch in "*?[") for n in names):
        ds = _open(spec, config.bands)
        names = sorted(ds.names)
    if len(names) < 3:
        raise ConfigError([f"data[{data_index}]: cross-validation needs at least 3 groups, got {names}"])
    return names


def fold_config(config: TrainConfig, data_index: int, fold: int, groups: list[str], val_groups: int = 2) -> TrainConfig:
    """The config of fold ``fold``: test on ``groups[fold]``, validate on the next ``val_groups``, train on the rest.

    The validation groups are pooled for early stopping and the threshold: one city's best
    threshold proved a poor guide for another's (0.02 to 0.98 across the OSCD folds).

    Other data sets of the config keep their own training pairs but are not validated or tested
    on, so the held-out group alone decides early stopping, threshold and score.
    """
    if not 0 <= fold < len(groups):
        raise ConfigError([f"fold: {fold} not in 0..{len(groups) - 1}"])
    if not 1 <= val_groups <= len(groups) - 2:
        raise ConfigError([f"val_groups: {val_groups} leaves no training group among {len(groups)}"])
    test = groups[fold]
    val = [groups[(fold + 1 + i) % len(groups)] for i in range(val_groups)]
    data: list[DataSpec] = []
    for i, spec in enumerate(config.data):
        if i == data_index:
            train_names = [g for g in groups if g != test and g not in val]
            data.append(DataSpec(spec.format, spec.root, train_names, val, [test], spec.sample_weight))
        else:
            data.append(DataSpec(spec.format, spec.root, list(spec.train), [], [], spec.sample_weight))
    out = copy.copy(config)
    out.data = data
    out.name = f"{config.name}-fold{fold}-{test}"
    out.run_dir = config.run_dir / "crossval"
    return out


def run_fold(
    config: TrainConfig,
    data_index: int,
    fold: int,
    *,
    val_groups: int = 2,
    device: str = "cpu",
    show_progress: bool = False,
) -> FoldResult:
    """Train fold ``fold`` from scratch (no resume) and score its held-out group with the validation threshold."""
    groups = groups_of(config, data_index)
    cfg = fold_config(config, data_index, fold, groups, val_groups)
    result = train(cfg, resume=False, show_progress=show_progress, save=False)
    if result.network is None:  # pragma: no cover - train always returns it
        raise RuntimeError("training returned no network")
    card: ModelCard = result.card
    detector = ChangeDetector(result.network, card, tile_size=config.tile_size, device=device)
    spec = cfg.data[data_index]
    test_pairs = list(_open(spec, config.bands, spec.test))
    report = evaluate_pairs(detector, test_pairs)
    model, baseline, index = report.pooled()
    out = FoldResult(
        fold,
        spec.test[0],
        "+".join(spec.val),
        card.threshold,
        int(card.training.get("epochs_run", 0)),
        model,
        baseline,
        index,
    )
    logger.info("fold %d (%s): F1 %.3f at threshold %.3f", fold, out.test, model.scores()["f1"], card.threshold)
    return out


def crossval(
    config: TrainConfig,
    data_index: int = 0,
    folds: list[int] | None = None,
    *,
    val_groups: int = 2,
    show_progress: bool = False,
) -> CrossValReport:
    """Run the given folds (default all) one after another and return the report."""
    groups = groups_of(config, data_index)
    report = CrossValReport(config.source)
    for k in folds if folds is not None else range(len(groups)):
        report.folds.append(run_fold(config, data_index, k, val_groups=val_groups, show_progress=show_progress))
    return report


def merge_fold_files(paths: list[Path], config: str = "") -> CrossValReport:
    """Pool fold results written as JSON (one ``FoldResult.to_dict()`` per file) by separate processes."""
    import json

    report = CrossValReport(config)
    for p in sorted(paths):
        report.folds.append(FoldResult.from_dict(json.loads(Path(p).read_text())))
    report.folds.sort(key=lambda f: f.fold)
    return report
