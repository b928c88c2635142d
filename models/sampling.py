"""Patch sampling and augmentation for training on pairs where change covers only 1-4 % of pixels.

Uniform patches would mostly teach "no change". ``PatchSampler`` centres a fixed share of the
patches on a random change pixel (with a random offset so the change is not always central) and
draws the rest uniformly. Each patch is reproducible from ``(seed, epoch, index)``.

Augmentations (all applied identically to both dates and the label, except the jitter):

* horizontal / vertical flips (torchvision transforms v2 functional ops) and 90-degree rotations;
* date swap: the label stays "change". A symmetric change model answers "is this pixel different
  between the dates?", so demolition looks like construction reversed. ``SiteNet`` is symmetric by
  construction (its fusion uses ``|a - b|`` and ``a + b``), so for it the swap is an exact no-op;
  it is kept for asymmetric architectures. The direction of change (new construction versus
  removal) is left to spectral indices downstream (``models.baseline.spectral_indices``);
* radiometric jitter: an independent per-band gain and bias on each date (in normalised units),
  standing in for illumination, atmosphere and sensor differences between acquisitions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AugmentConfig:
    """Which augmentations to apply.

    Attributes:
        flips: Random horizontal and vertical flips.
        rot90: Random rotation by a multiple of 90 degrees.
        date_swap: Swap the dates with probability 0.5 (label unchanged).
        jitter: Per-band, per-date gain range (1 +- jitter) and bias range (+- 2 * jitter), in
            normalised units; 0 = off.
    """

    flips: bool = True
    rot90: bool = True
    date_swap: bool = True
    jitter: float = 0.05


@dataclass(frozen=True, slots=True)
class TrainingPair:
    """A normalised pair in memory: ``(C, H, W)`` float32 dates, ``(H, W)`` uint8 label and bool validity."""

    name: str
    before: npt.NDArray[np.float32]
    after: npt.NDArray[np.float32]
    label: npt.NDArray[np.uint8]
    valid: npt.NDArray[np.bool_]


def _pad_to(pair: TrainingPair, size: int) -> TrainingPair:
    """Pad a pair smaller than ``size`` with invalid pixels (value 0 = the training mean)."""
    _, h, w = pair.before.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if not (ph or pw):
        return pair
    img = ((0, 0), (0, ph), (0, pw))
    return TrainingPair(
        pair.name,
        np.pad(pair.before, img),
        np.pad(pair.after, img),
        np.pad(pair.label, img[1:]),
        np.pad(pair.valid, img[1:]),
    )


class PatchSampler(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Map-style dataset of ``length`` random patches per epoch.

    Items: ``(before (C, P, P) float32, after (C, P, P) float32, label (1, P, P) float32, valid (1, P, P) float32)``.
    """

    def __init__(
        self,
        pairs: list[TrainingPair],
        *,
        patch_size: int,
        length: int,
        positive_fraction: float = 0.5,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        pair_weights: list[float] | None = None,
    ) -> None:
        if not pairs:
            raise ValueError("PatchSampler needs at least one pair")
        self.pairs = [_pad_to(p, patch_size) for p in pairs]
        self.patch_size = patch_size
        self.length = length
        self.positive_fraction = positive_fraction
        self.augment = augment or AugmentConfig()
        self.seed = seed
        self.epoch = 0
        # Pairs are drawn in proportion to their valid area (times an optional per-pair weight);
        # change pixels are indexed once.
        areas = np.array([p.valid.sum() for p in self.pairs], np.float64)
        if pair_weights is not None:
            areas *= np.asarray(pair_weights, np.float64)
        self._pair_weights = areas / areas.sum()
        self._positives = [np.flatnonzero(p.label.ravel() & p.valid.ravel()) for p in self.pairs]
        self._with_change = np.array([len(ix) > 0 for ix in self._positives])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (patches differ per epoch, reproducibly)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def _origin(self, rng: np.random.Generator) -> tuple[int, int, int]:
        size = self.patch_size
        positive = rng.random() < self.positive_fraction and self._with_change.any()
        if positive:
            weights = self._pair_weights * self._with_change
            k = int(rng.choice(len(self.pairs), p=weights / weights.sum()))
            h, w = self.pairs[k].label.shape
            flat = int(self._positives[k][rng.integers(len(self._positives[k]))])
            cy, cx = divmod(flat, w)
            y = cy - int(rng.integers(size // 8, size - size // 8))
            x = cx - int(rng.integers(size // 8, size - size // 8))
        else:
            k = int(rng.choice(len(self.pairs), p=self._pair_weights))
            h, w = self.pairs[k].label.shape
            y = int(rng.integers(0, h - size + 1))
            x = int(rng.integers(0, w - size + 1))
        return k, int(np.clip(y, 0, h - size)), int(np.clip(x, 0, w - size))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        k, y, x = self._origin(rng)
        p, s = self.pairs[k], self.patch_size
        before = torch.from_numpy(p.before[:, y : y + s, x : x + s].copy())
        after = torch.from_numpy(p.after[:, y : y + s, x : x + s].copy())
        label = torch.from_numpy(p.label[None, y : y + s, x : x + s].astype(np.float32))
        valid = torch.from_numpy(p.valid[None, y : y + s, x : x + s].astype(np.float32))
        return augment_patch(before, after, label, valid, self.augment, rng)


def augment_patch(
    before: torch.Tensor,
    after: torch.Tensor,
    label: torch.Tensor,
    valid: torch.Tensor,
    config: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply the configured augmentations to one ``(C, P, P)`` pair with its ``(1, P, P)`` label and validity."""
    stack = [before, after, label, valid]
    # Geometry: the same flip / rotation for both dates and the masks.
    if config.flips and rng.random() < 0.5:
        stack = [TF.horizontal_flip(t) for t in stack]
    if config.flips and rng.random() < 0.5:
        stack = [TF.vertical_flip(t) for t in stack]
    if config.rot90:
        quarter_turns = int(rng.integers(4))
        if quarter_turns:
            stack = [torch.rot90(t, quarter_turns, dims=(-2, -1)) for t in stack]
    before, after, label, valid = stack
    if config.date_swap and rng.random() < 0.5:
        before, after = after, before
    if config.jitter > 0:
        c = before.shape[0]
        for_each = []
        for image in (before, after):
            gain = torch.from_numpy(rng.uniform(1 - config.jitter, 1 + config.jitter, (c, 1, 1)).astype(np.float32))
            bias = torch.from_numpy(rng.uniform(-2 * config.jitter, 2 * config.jitter, (c, 1, 1)).astype(np.float32))
            for_each.append(image * gain + bias)
        before, after = for_each
    return before.contiguous(), after.contiguous(), label.contiguous(), valid.contiguous()
