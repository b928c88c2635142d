"""Train a change-detection checkpoint from a YAML or JSON config.

One config = one reproducible checkpoint: data sets with explicit train / val / test pair lists,
network hyperparameters, optimiser schedule, seed. The loop samples change-rich patches, minimises
BCE + Dice with AdamW (linear warm-up, cosine decay), validates on whole validation pairs each
epoch (F1 at the F1-best threshold), stops early, and checkpoints every epoch so an interrupted
run resumes where it stopped. At the end the best weights are scored, with the CVA baseline, on
the validation and held-out test pairs, and saved with their card. When several data sets are
validated together, early stopping and the threshold use the mean of their F1 scores.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import logging
import math
import os
import platform
import random
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor
from torch.utils.data import DataLoader

from models.cdnet import ArchitectureSpec, build_network, count_parameters
from models.checkpoint import WEIGHTS_DIR, ModelCard, save_checkpoint
from models.datasets import FORMATS, ChangeDataset, ChangePair, open_dataset
from models.errors import ConfigError
from models.evaluate import evaluate_pairs
from models.inference import ChangeDetector
from models.metrics import ThresholdHistogram, best_mean_threshold
from models.normalization import MODES, Normalization, NormalizationMode, fit_normalization
from models.sampling import AugmentConfig, PatchSampler, TrainingPair

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class DataSpec:
    """One data set of a training config, with its split."""

    format: str
    root: Path
    #: Pair names or shell-style patterns (``"site-a/*"``), matched against the folder's pair names.
    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    #: Multiplies the patch-sampling weight (valid area) of this data set's training pairs.
    sample_weight: float = 1.0


@dataclass(slots=True)
class TrainConfig:
    """Everything that defines a training run (see ``models/configs/*.yaml``)."""

    name: str
    bands: list[str]
    gsd_m: float
    data: list[DataSpec]
    architecture: ArchitectureSpec = field(default_factory=lambda: ArchitectureSpec("sitenet", {}))
    gsd_tolerance: float = 1.25
    patch_size: int = 64
    batch_size: int = 16
    steps_per_epoch: int = 100
    epochs: int = 20
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    patience: int = 5
    positive_fraction: float = 0.5
    #: ``fixed``, ``per_image`` or ``reference`` (see ``models.normalization``).
    normalization: str = "fixed"
    #: Older configs' switch: True means ``normalization: per_image``.
    per_image_normalization: bool = False
    dice_weight: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    threads: int = 1
    #: DataLoader worker processes sampling patches (0 = in the training process).
    workers: int = 0
    #: Stop starting new epochs after this many seconds of training (0 = no limit); the best
    #: epoch so far is kept, as with early stopping.
    time_limit_s: float = 0.0
    tile_size: int = 256
    output_dir: Path = WEIGHTS_DIR
    run_dir: Path = Path("runs")
    notes: str = ""
    source: str = ""


class _ConfigLoader(yaml.SafeLoader):
    """YAML loader whose numbers follow YAML 1.2: ``0_2`` (a DSIFN pair name) stays a string."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9]*)$"), list("-+0123456789")
)
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read and validate a YAML / JSON training config; relative data roots resolve against the cwd.

    Args:
        path: Config file.
        overrides: Top-level keys replacing the file's (tests use this for tiny runs).

    Raises:
        ConfigError: Listing every problem found.
    """
    text = Path(path).read_text()
    raw = json.loads(text) if Path(path).suffix == ".json" else yaml.load(text, Loader=_ConfigLoader)
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: top level must be a mapping"])
    raw.update(overrides or {})
    problems: list[str] = []
    for key in ("name", "bands", "gsd_m", "data"):
        if key not in raw:
            problems.append(f"{key}: required")
    data: list[DataSpec] = []
    for i, entry in enumerate(raw.get("data") or []):
        fmt = entry.get("format")
        if fmt not in FORMATS:
            problems.append(f"data[{i}].format: {fmt!r} not one of {', '.join(FORMATS)}")
        if "root" not in entry:
            problems.append(f"data[{i}].root: required")
        # Names are strings even when YAML reads them as numbers (``0_2`` is the int 2 in YAML 1.1).
        spec = DataSpec(
            str(fmt),
            Path(os.path.expanduser(str(entry.get("root", "")))),
            [str(n) for n in entry.get("train", [])],
            [str(n) for n in entry.get("val", [])],
            [str(n) for n in entry.get("test", [])],
            float(entry.get("sample_weight", 1.0)),
        )
        overlap = (
            (set(spec.train) & set(spec.val)) | (set(spec.train) & set(spec.test)) | (set(spec.val) & set(spec.test))
        )
        if overlap:
            problems.append(f"data[{i}]: pairs in more than one split: {sorted(overlap)}")
        data.append(spec)
    if raw.get("data") is not None and not any(d.train for d in data):
        problems.append("data: no training pairs")
    if raw.get("data") is not None and not any(d.val for d in data):
        problems.append("data: no validation pairs (the threshold is chosen on them)")
    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        problems.append(f"unknown keys: {', '.join(unknown)}")
    mode = raw.get("normalization", "fixed")
    if mode not in MODES:
        problems.append(f"normalization: {mode!r} not one of {', '.join(MODES)}")
    elif raw.get("per_image_normalization") and mode != "per_image" and "normalization" in raw:
        problems.append(f"per_image_normalization: true contradicts normalization: {mode}")
    if int(raw.get("patch_size", 64)) % 16:
        problems.append("patch_size: must be a multiple of 16")
    if problems:
        raise ConfigError(problems)
    arch = raw.get("architecture") or {}
    params = dict(arch.get("params", {}))
    params.setdefault("in_channels", len(raw["bands"]))
    kwargs = {k: v for k, v in raw.items() if k in known and k not in ("data", "architecture", "augment")}
    for key in ("output_dir", "run_dir"):
        if key in kwargs:
            kwargs[key] = Path(kwargs[key])
    return TrainConfig(
        data=data,
        architecture=ArchitectureSpec(str(arch.get("name", "sitenet")), params),
        augment=AugmentConfig(**(raw.get("augment") or {})),
        source=str(path),
        **kwargs,
    )


def bce_dice_loss(logits: Tensor, target: Tensor, valid: Tensor, dice_weight: float = 1.0) -> Tensor:
    """Masked binary cross-entropy plus soft Dice of the change class.

    Args:
        logits: ``(N, 1, H, W)``.
        target: ``(N, 1, H, W)`` 0/1 float.
        valid: ``(N, 1, H, W)`` 0/1 float; invalid pixels contribute nothing.
        dice_weight: Weight of the Dice term.

    Returns:
        Scalar loss.
    """
    n_valid = valid.sum().clamp_min(1.0)
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * valid).sum() / n_valid
    p = torch.sigmoid(logits) * valid
    t = target * valid
    dice = 1.0 - (2.0 * (p * t).sum() + 1.0) / (p.sum() + t.sum() + 1.0)
    return bce + dice_weight * dice


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(slots=True)
class TrainResult:
    """What a training run produced."""

    weights: Path
    card: ModelCard
    history: list[dict[str, float]]
    #: The best network, on the CPU, in eval mode.
    network: torch.nn.Module | None = None


def _open(spec: DataSpec, bands: list[str], patterns: list[str] | None = None) -> ChangeDataset:
    s2 = spec.format in ("oscd", "sim", "npz")
    ds = open_dataset(spec.format, spec.root, bands=tuple(bands) if s2 else None)
    if patterns is None:
        return ds
    names = [n for n in ds.names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in ds.names)]
    if unmatched:
        raise ConfigError([f"{spec.format} at {spec.root}: no pair matches {unmatched}"])
    ds.names = names
    return ds


@dataclass(slots=True)
class _Split:
    by_format: dict[str, list[ChangePair]] = field(default_factory=dict)
    pairs: list[ChangePair] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def _load_split(config: TrainConfig, split: str) -> _Split:
    """Pairs of one split: grouped by format (for metrics), and flat with sampling weights (for training)."""
    out = _Split()
    problems = []
    for spec in config.data:
        patterns = getattr(spec, split)
        if not patterns:
            continue
        ds = _open(spec, config.bands, patterns)
        if [b.upper() for b in ds.bands] != [b.upper() for b in config.bands]:
            problems.append(f"{spec.format} at {spec.root}: bands {ds.bands} != config bands {config.bands}")
            continue
        pairs = list(ds)
        # An npz export is grouped (metrics, macro-F1 threshold) under the layout it came from.
        key = getattr(ds, "source_format", None) or spec.format
        out.by_format.setdefault(key, []).extend(pairs)
        out.pairs.extend(pairs)
        out.weights.extend([spec.sample_weight] * len(pairs))
    if problems:
        raise ConfigError(problems)
    return out


def _mode(config: TrainConfig) -> NormalizationMode:
    if config.per_image_normalization:
        return "per_image"
    return cast(NormalizationMode, config.normalization)


def _to_training(pair: ChangePair, norm: Normalization) -> TrainingPair:
    ok = np.asarray(np.isfinite(pair.before).all(0) & np.isfinite(pair.after).all(0), dtype=bool)
    if pair.valid is not None:
        ok &= pair.valid
    before, after = norm.apply_pair(pair.before, pair.after, ok)
    before[:, ~ok] = 0.0
    after[:, ~ok] = 0.0
    return TrainingPair(pair.name, before, after, pair.label, ok)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code may use the legacy global RNG
    torch.manual_seed(seed)


def _card(config: TrainConfig, norm: Normalization, threshold: float) -> ModelCard:
    return ModelCard(
        name=config.name,
        architecture=config.architecture,
        bands=list(config.bands),
        gsd_m=config.gsd_m,
        gsd_tolerance=config.gsd_tolerance,
        normalization=norm,
        threshold=threshold,
        notes=config.notes,
    )


def _validate(detector: ChangeDetector, split: _Split) -> tuple[float, float]:
    """Threshold maximising the mean over validation data sets of their pooled F1, and that mean F1."""
    histograms = []
    for pairs in split.by_format.values():
        hist = ThresholdHistogram.empty()
        for pair in pairs:
            hist.add(detector.predict(pair.before, pair.after, pair.valid), pair.label, pair.valid)
        histograms.append(hist)
    return best_mean_threshold(histograms)


def train(config: TrainConfig, *, resume: bool = True, show_progress: bool = True, save: bool = True) -> TrainResult:
    """Run a training config end to end and save the checkpoint with its card.

    Args:
        config: The validated config.
        resume: Continue from ``run_dir/<name>.last.pt`` when it exists.
        show_progress: Show a rich progress bar (set False in tests and batch jobs).
        save: Write the final checkpoint to ``config.output_dir``.

    Returns:
        Paths, card and per-epoch history.
    """
    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    _seed_everything(config.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    # Data: whole pairs in memory (the shared sets are small), normalisation fitted on train only.
    train_split = _load_split(config, "train")
    val_split = _load_split(config, "val")
    test_split = _load_split(config, "test")
    train_pairs = train_split.pairs
    norm = fit_normalization([img for p in train_pairs for img in (p.before, p.after)], mode=_mode(config))
    sampler = PatchSampler(
        [_to_training(p, norm) for p in train_pairs],
        patch_size=config.patch_size,
        length=config.steps_per_epoch * config.batch_size,
        positive_fraction=config.positive_fraction,
        augment=config.augment,
        seed=config.seed,
        pair_weights=train_split.weights,
    )

    net = build_network(config.architecture).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * config.steps_per_epoch

    def factor(step: int) -> float:
        # With a time limit the cosine also follows the share of the time spent, whichever is
        # further along, so a run cut short by its budget still ends at a low learning rate.
        # (That makes such runs depend on the machine's speed; without a limit they are exact.)
        f = lr_factor(step, config.warmup_steps, total_steps)
        if config.time_limit_s and step >= config.warmup_steps:
            spent = min(1.0, (time.perf_counter() - started) / config.time_limit_s)
            f = min(f, 0.5 * (1.0 + math.cos(math.pi * spent)))
        return f

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    state: dict[str, Any] = {"epoch": 0, "best_f1": -1.0, "best_threshold": 0.5, "bad_epochs": 0, "history": []}
    best_weights = copy.deepcopy(net.state_dict())
    last_path = config.run_dir / f"{config.name}.last.pt"
    if resume and last_path.is_file():
        saved = torch.load(last_path, map_location=device, weights_only=False)
        net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        best_weights = saved["best_weights"]
        state = saved["state"]
        torch.set_rng_state(saved["torch_rng"])
        logger.info("resumed %s at epoch %d", config.name, state["epoch"])

    provisional = _card(config, norm, 0.5)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  val F1 {task.fields[f1]:.3f}"),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task(config.name, total=total_steps, loss=float("nan"), f1=float("nan"))
        progress.update(task, completed=state["epoch"] * config.steps_per_epoch)
        while state["epoch"] < config.epochs and state["bad_epochs"] < config.patience:
            if config.time_limit_s and time.perf_counter() - started > config.time_limit_s:
                logger.info(
                    "%s: time limit %.0f s reached after %d epochs", config.name, config.time_limit_s, state["epoch"]
                )
                state["stopped"] = "time_limit"
                break
            epoch = state["epoch"]
            sampler.set_epoch(epoch)
            loader = DataLoader(
                sampler,
                batch_size=config.batch_size,
                shuffle=False,
                num_workers=config.workers,
                pin_memory=device == "cuda",
            )
            net.train()
            losses = []
            for before, after, label, valid in loader:
                logits = net(before.to(device), after.to(device))
                loss = bce_dice_loss(logits, label.to(device), valid.to(device), config.dice_weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                progress.update(task, advance=1, loss=float(np.mean(losses[-20:])))
            # Validation on whole pairs, exactly as inference will run.
            detector = ChangeDetector(net, provisional, tile_size=config.tile_size, device=device)
            threshold, f1 = _validate(detector, val_split)
            mean_loss = float(np.mean(losses)) if losses else float("nan")
            state["history"].append({"epoch": epoch, "loss": mean_loss, "val_f1": f1, "val_threshold": threshold})
            if f1 > state["best_f1"]:
                state.update(best_f1=f1, best_threshold=threshold, bad_epochs=0)
                best_weights = copy.deepcopy(net.state_dict())
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            progress.update(task, f1=f1)
            logger.info("epoch %d loss %.4f val F1 %.3f (threshold %.3f)", epoch, mean_loss, f1, threshold)
            config.run_dir.mkdir(parents=True, exist_ok=True)
            tmp = last_path.with_suffix(".tmp")
            torch.save(
                {
                    "net": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "best_weights": best_weights,
                    "state": state,
                    "torch_rng": torch.get_rng_state(),
                },
                tmp,
            )
            tmp.replace(last_path)

    # Final: best weights, validation threshold, honest scores on every evaluation set.
    net.load_state_dict(best_weights)
    net = net.cpu().eval()
    card = _card(config, norm, float(state["best_threshold"]))
    detector = ChangeDetector(net, card, tile_size=config.tile_size, device="cpu")
    for split, loaded in (("val", val_split), ("test", test_split)):
        for fmt, pairs in loaded.by_format.items():
            report = evaluate_pairs(detector, pairs)
            card.metrics[f"{fmt}:{split}"] = {**report.summary(), "per_pair": [p.to_dict() for p in report.pairs]}
    card.training_data = [
        {
            "format": spec.format,
            "root": str(spec.root),
            "train": spec.train,
            "val": spec.val,
            "test": spec.test,
            "licence": _open(spec, config.bands).licence,
            **_exported_from(spec, config.bands),
        }
        for spec in config.data
    ]
    card.training = {
        "command": f"sitewatch model train --config {config.source}",
        "argv": shlex.join(sys.argv),
        "config": config.source,
        "seed": config.seed,
        "epochs_run": state["epoch"],
        "best_val_f1": state["best_f1"],
        "history": state["history"],
        "wall_s": round(time.perf_counter() - started, 1),
        "threads": config.threads,
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "parameters": count_parameters(net),
    }
    if state.get("stopped"):
        card.training["stopped"] = state["stopped"]
    weights = save_checkpoint(net, card, config.output_dir) if save else Path()
    return TrainResult(weights, card, state["history"], net)


def _exported_from(spec: DataSpec, bands: list[str]) -> dict[str, str]:
    """For an ``npz`` export, the layout it was exported from (recorded in the card)."""
    ds = _open(spec, bands)
    source = getattr(ds, "source_format", None)
    return {"exported_from": str(source)} if source else {}
