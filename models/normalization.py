"""Per-band radiometric normalisation (z-score), stored in the checkpoint card.

Two modes:

* fixed (``per_image=False``): one mean / std per band, fitted on the training pairs;
* per image (``per_image=True``): each date is standardised with its own per-band mean / std over
  its valid pixels (as in Daudt et al.'s OSCD code). This removes most of the season, sun-angle
  and atmosphere difference between two acquisitions and between cities, which otherwise
  dominates ``|after - before|``; on the shared OSCD cities it lifts even plain CVA from F1 0.14
  to 0.20. The statistics come from the whole array handed to ``ChangeDetector.predict``, never
  from a tile, so tiling does not change them. Inputs should cover more than the change itself
  (a site plus a buffer), or the statistics move with the construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import InputShapeError


@dataclass(frozen=True, slots=True)
class Normalization:
    """``(x - mean) / std`` per band; values in the units of the training reflectance."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    #: Standardise each image with its own statistics instead of ``mean`` / ``std``.
    per_image: bool = False

    def apply(
        self, image: npt.NDArray[np.floating], valid: npt.NDArray[np.bool_] | None = None
    ) -> npt.NDArray[np.float32]:
        """Normalise a ``(C, H, W)`` array; C must equal ``len(mean)``.

        Args:
            image: ``(C, H, W)`` reflectance.
            valid: ``(H, W)`` pixels to take per-image statistics from (default: all finite ones).

        Returns:
            ``(C, H, W)`` float32 (non-finite inputs stay non-finite).
        """
        if image.ndim != 3 or image.shape[0] != len(self.mean):
            raise InputShapeError(f"image {image.shape} is not (band, y, x) with {len(self.mean)} bands")
        if self.per_image:
            ok = np.isfinite(image).all(axis=0)
            if valid is not None:
                ok &= valid
            if ok.sum() >= 2:
                pixels = image[:, ok].astype(np.float64)
                mean = pixels.mean(axis=1).reshape(-1, 1, 1)
                std = pixels.std(axis=1).reshape(-1, 1, 1) + 1e-6
                standardised: npt.NDArray[np.float32] = ((image - mean) / std).astype(np.float32)
                return standardised
        mean = np.asarray(self.mean, np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(-1, 1, 1)
        return ((image - mean) / std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"mean": list(self.mean), "std": list(self.std), "per_image": self.per_image}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        """Inverse of ``to_dict``."""
        return cls(
            tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]), bool(d.get("per_image", False))
        )


def fit_normalization(images: Iterable[npt.NDArray[np.floating]], *, per_image: bool = False) -> Normalization:
    """Per-band mean and standard deviation over every finite pixel of ``(C, H, W)`` images (both dates).

    With ``per_image`` the fitted values are kept for reference and as the fallback for an
    image with fewer than two valid pixels.
    """
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
    return Normalization(tuple(float(v) for v in mean), tuple(float(v) for v in std), per_image)
