"""Pictures people look at: true colour and change overlays as 8-bit RGB(A). Pure numpy."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Reflectance mapped to full brightness; 0.3 keeps bright roofs and concrete from clipping.
TRUECOLOR_MAX = 0.3


def truecolor(
    red: npt.ArrayLike, green: npt.ArrayLike, blue: npt.ArrayLike, *, gamma: float = 1.6
) -> npt.NDArray[np.uint8]:
    """An (y, x, 3) uint8 image from surface reflectance bands, with a fixed stretch.

    The stretch is fixed (not per image) so pictures of different dates compare honestly.
    No-data (NaN) pixels are black.
    """
    rgb = np.stack([np.asarray(b, dtype=np.float32) for b in (red, green, blue)], axis=-1)
    scaled = np.clip(np.nan_to_num(rgb, nan=0.0) / TRUECOLOR_MAX, 0.0, 1.0) ** (1.0 / gamma)
    out: npt.NDArray[np.uint8] = (scaled * 255.0 + 0.5).astype(np.uint8)
    return out


def change_overlay(probability: npt.ArrayLike, threshold: float) -> npt.NDArray[np.uint8]:
    """An (y, x, 4) RGBA overlay: changed pixels in orange, opacity rising with the probability.

    Orange (#E66100) reads on vegetation and soil alike and is safe for the common colour
    vision deficiencies. Invalid (NaN) pixels are transparent.
    """
    p = np.asarray(probability, dtype=np.float32)
    rgba = np.zeros((*p.shape, 4), dtype=np.uint8)
    changed = np.nan_to_num(p, nan=0.0) >= threshold
    rgba[changed] = (230, 97, 0, 0)
    rgba[changed, 3] = (120 + 135 * np.clip(p[changed], 0, 1)).astype(np.uint8)
    return rgba
