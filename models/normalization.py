"""Per-band radiometric normalisation (z-score), stored in the checkpoint card.

Three modes (``Normalization.mode``):

* ``fixed`` (``per_image=False``): one mean / std per band, fitted on the training pairs;
* ``per_image`` (``per_image=True``): each date is standardised with its own per-band mean / std
  over its valid pixels (as in Daudt et al.'s OSCD code). This removes most of the season,
  sun-angle and atmosphere difference between two acquisitions and between cities, which otherwise
  dominates ``|after - before|``; on the shared OSCD cities it lifts even plain CVA from F1 0.14
  to 0.20. But the statistics move with the content: when construction fills much of a small site
  window, the after image's mean and spread shift and unchanged pixels look changed (on
  SiteWatch's simulated site windows this model scored F1 0.31 against 0.56 for CVA);
* ``reference`` (``reference=True``): *both* dates are standardised with the per-band mean / std
  of the *before* image's valid pixels. SiteWatch passes the pre-construction baseline as
  ``before`` (``models.estimate.SceneEstimator.observe``), so construction in the after image no
  longer moves the statistics, while the offset between processing levels (OSCD's L1C against
  SiteWatch's L2A) and between places is still removed. Season and illumination differences
  between the two dates are left in, for the network to learn to ignore.

Pairs are normalised with ``apply_pair``; ``apply`` handles one image in the fixed and per-image
modes. The statistics come from the whole arrays handed to ``ChangeDetector.predict``, never from a
tile, so tiling does not change them. Inputs should cover more than the change itself (a site plus
a buffer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from models.errors import InputShapeError

NormalizationMode = Literal["fixed", "per_image", "reference"]
MODES: tuple[NormalizationMode, ...] = ("fixed", "per_image", "reference")


@dataclass(frozen=True, slots=True)
class Normalization:
    """``(x - mean) / std`` per band; values in the units of the training reflectance."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    #: Standardise each image with its own statistics instead of ``mean`` / ``std``.
    per_image: bool = False
    #: Standardise both dates of a pair with the statistics of the before image.
    reference: bool = False

    def __post_init__(self) -> None:
        if self.per_image and self.reference:
            raise ValueError("a normalisation is per_image or reference, not both")

    @property
    def mode(self) -> NormalizationMode:
        """``fixed``, ``per_image`` or ``reference``."""
        return "reference" if self.reference else "per_image" if self.per_image else "fixed"

    def _check(self, image: npt.NDArray[np.floating]) -> None:
        if image.ndim != 3 or image.shape[0] != len(self.mean):
            raise InputShapeError(f"image {image.shape} is not (band, y, x) with {len(self.mean)} bands")

    def _statistics(
        self, image: npt.NDArray[np.floating], valid: npt.NDArray[np.bool_] | None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``(C, 1, 1)`` mean and std of the image's valid finite pixels; the fitted ones below two pixels."""
        ok = np.isfinite(image).all(axis=0)
        if valid is not None:
            ok &= valid
        if ok.sum() >= 2:
            pixels = image[:, ok].astype(np.float64)
            return pixels.mean(axis=1).reshape(-1, 1, 1), pixels.std(axis=1).reshape(-1, 1, 1) + 1e-6
        return (
            np.asarray(self.mean, np.float64).reshape(-1, 1, 1),
            np.asarray(self.std, np.float64).reshape(-1, 1, 1),
        )

    def _fixed(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        return np.asarray(self.mean, np.float32).reshape(-1, 1, 1), np.asarray(self.std, np.float32).reshape(-1, 1, 1)

    def apply(
        self, image: npt.NDArray[np.floating], valid: npt.NDArray[np.bool_] | None = None
    ) -> npt.NDArray[np.float32]:
        """Normalise one ``(C, H, W)`` image on its own; C must equal ``len(mean)``.

        In ``reference`` mode this standardises the image with its own statistics (what
        ``apply_pair`` does to the before image); normalise pairs with ``apply_pair``.

        Args:
            image: ``(C, H, W)`` reflectance.
            valid: ``(H, W)`` pixels to take per-image statistics from (default: all finite ones).

        Returns:
            ``(C, H, W)`` float32 (non-finite inputs stay non-finite).
        """
        self._check(image)
        mean, std = self._statistics(image, valid) if self.per_image or self.reference else self._fixed()
        return ((image - mean) / std).astype(np.float32)

    def apply_pair(
        self,
        before: npt.NDArray[np.floating],
        after: npt.NDArray[np.floating],
        valid: npt.NDArray[np.bool_] | None = None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Normalise a co-registered ``(C, H, W)`` pair as the mode says.

        Args:
            before: ``(C, H, W)`` reflectance at date 1 (the reference in ``reference`` mode).
            after: ``(C, H, W)`` reflectance at date 2, same grid.
            valid: ``(H, W)`` pixels to take statistics from (default: all finite ones of each
                image; in ``reference`` mode, of the before image only).

        Returns:
            ``(before, after)`` float32, each ``(C, H, W)``.
        """
        self._check(before)
        self._check(after)
        if before.shape != after.shape:
            raise InputShapeError(f"before {before.shape} and after {after.shape} differ")
        if not self.reference:
            return self.apply(before, valid), self.apply(after, valid)
        mean, std = self._statistics(before, valid)
        return ((before - mean) / std).astype(np.float32), ((after - mean) / std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``mode`` is written for readers; ``per_image`` / ``reference`` are the truth)."""
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "per_image": self.per_image,
            "reference": self.reference,
            "mode": self.mode,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        """Inverse of ``to_dict``; cards written before ``reference`` existed load unchanged."""
        return cls(
            tuple(float(v) for v in d["mean"]),
            tuple(float(v) for v in d["std"]),
            bool(d.get("per_image", False)),
            bool(d.get("reference", False)),
        )


def fit_normalization(
    images: Iterable[npt.NDArray[np.floating]], *, mode: NormalizationMode = "fixed"
) -> Normalization:
    """Per-band mean and standard deviation over every finite pixel of ``(C, H, W)`` images (both dates).

    In the ``per_image`` and ``reference`` modes the fitted values are kept for reference and as
    the fallback for an image with fewer than two valid pixels.
    """
    if mode not in MODES:
        raise ValueError(f"normalisation mode {mode!r} not one of {', '.join(MODES)}")
    total: npt.NDArray[np.float64] | None = None
    total_sq: npt.NDArray[np.float64] | None = None
    count: npt.NDArray[np.float64] | None = None
    for image in images:
        x = image.reshape(image.shape[0], -1).astype(np.float64)
        ok = np.isfinite(x)
        x = np.where(ok, x, 0.0)
        s, s2, n = x.sum(1), (x * x).sum(1), ok.sum(1).astype(np.float64)
        total = s if total is None else total + s
        total_sq = s2 if total_sq is None else total_sq + s2
        count = n if count is None else count + n
    if total is None or total_sq is None or count is None or (count == 0).any():
        raise ValueError("cannot fit a normalisation on no pixels")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0)) + 1e-6
    return Normalization(
        tuple(float(v) for v in mean), tuple(float(v) for v in std), mode == "per_image", mode == "reference"
    )
