"""Change inference on in-memory arrays: tiled, overlap-blended, batched, memory-bounded.

Pure: takes ``(band, y, x)`` float32 reflectance arrays and returns an ``(y, x)`` float32
probability map. Reading scenes and writing georeferenced COGs is the callers' job.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models.cdnet import STRIDE, fuse_conv_bn
from models.checkpoint import ModelCard, check_compatible, load_checkpoint
from models.errors import InputShapeError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]


def _starts(length: int, tile: int, step: int) -> list[int]:
    """Tile origins covering ``[0, length)``; the last tile is flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _window(tile: int, overlap: int) -> npt.NDArray[np.float32]:
    """``(tile, tile)`` blending weights: 1 in the core, a raised-cosine ramp over ``overlap`` at each edge.

    The ramp never reaches 0, so image corners covered by a single tile keep a weight.
    """
    ramp = np.ones(tile, np.float32)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        edge = 0.5 - 0.5 * np.cos(np.pi * t)
        ramp[:overlap] = edge
        ramp[-overlap:] = np.minimum(ramp[-overlap:], edge[::-1])
    return np.outer(ramp, ramp)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "replicate"
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def predict_logits(
    net: nn.Module,
    before: FloatArray,
    after: FloatArray,
    *,
    tile_size: int = 256,
    overlap: int = 32,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
) -> FloatArray:
    """Blended change logits for one normalised pair.

    Args:
        net: Network mapping two ``(N, C, h, w)`` tensors to ``(N, 1, h, w)`` logits.
        before: ``(C, H, W)`` normalised float32, no NaN.
        after: ``(C, H, W)`` normalised float32, no NaN.
        tile_size: Tile edge in pixels (rounded up to a multiple of 16). Images no larger run in one pass.
        overlap: Pixels shared by neighbouring tiles; seams are blended with a raised-cosine window.
        batch_size: Tiles per forward pass; bounds memory to about ``batch_size`` tiles of activations.
        device: Torch device.

    Returns:
        ``(H, W)`` float32 logits.
    """
    tile = int(np.ceil(tile_size / STRIDE) * STRIDE)
    overlap = max(0, min(overlap, tile // 2))
    _, height, width = before.shape
    net.eval()
    with torch.inference_mode():
        if height <= tile and width <= tile:
            a, h, w = _pad_to_multiple(torch.from_numpy(before)[None], STRIDE)
            b, _, _ = _pad_to_multiple(torch.from_numpy(after)[None], STRIDE)
            out = net(a.to(device), b.to(device))[0, 0, :h, :w]
            return np.ascontiguousarray(out.float().cpu().numpy())
        # Images smaller than a tile along one axis: pad that axis up to the tile (then crop).
        pad_h, pad_w = max(0, tile - height), max(0, tile - width)
        if pad_h or pad_w:
            pads = ((0, 0), (0, pad_h), (0, pad_w))
            before = np.pad(before, pads, mode="edge")
            after = np.pad(after, pads, mode="edge")
        full_h, full_w = before.shape[1:]
        weight = _window(tile, overlap)
        acc = np.zeros((full_h, full_w), np.float32)
        norm = np.zeros((full_h, full_w), np.float32)
        origins = [(y, x) for y in _starts(full_h, tile, tile - overlap) for x in _starts(full_w, tile, tile - overlap)]
        for chunk in _chunks(origins, batch_size):
            a = torch.from_numpy(np.stack([before[:, y : y + tile, x : x + tile] for y, x in chunk]))
            b = torch.from_numpy(np.stack([after[:, y : y + tile, x : x + tile] for y, x in chunk]))
            logits = net(a.to(device), b.to(device))[:, 0].float().cpu().numpy()
            for (y, x), tile_logits in zip(chunk, logits, strict=True):
                acc[y : y + tile, x : x + tile] += tile_logits * weight
                norm[y : y + tile, x : x + tile] += weight
        return np.ascontiguousarray((acc / norm)[:height, :width])


def _chunks(items: list[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


class ChangeDetector:
    """A loaded change-detection checkpoint, ready to turn reflectance pairs into change probability.

    Example:
        >>> detector = ChangeDetector.load("s2", bands=("B02", "B03", "B04", "B08", "B11", "B12"), gsd_m=10)
        >>> probability = detector.predict(before, after)  # (H, W) float32 in [0, 1], NaN where invalid
        >>> change = probability >= detector.threshold
    """

    def __init__(
        self,
        net: nn.Module,
        card: ModelCard,
        *,
        tile_size: int = 256,
        overlap: int = 32,
        batch_size: int = 4,
        threads: int | None = None,
        device: str | None = None,
        fuse: bool = True,
    ) -> None:
        """Wrap a network and its card.

        Args:
            net: The network (weights loaded).
            card: Its checkpoint card (bands, normalisation, threshold).
            tile_size: Tile edge for large inputs, pixels.
            overlap: Overlap between tiles, pixels.
            batch_size: Tiles per forward pass (memory bound).
            threads: Torch intra-op threads (None: leave torch's setting alone).
            device: ``"cpu"``, ``"cuda"``; None picks CUDA when available.
            fuse: Fold BatchNorm into the convolutions of a private copy of ``net`` (faster on CPU;
                the caller's ``net`` is left untouched, so training can go on).
        """
        self.card = card
        self.tile_size = tile_size
        self.overlap = overlap
        self.batch_size = batch_size
        self.threads = threads
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        net = fuse_conv_bn(copy.deepcopy(net)) if fuse else net
        self.net = net.to(self.device).eval()

    @classmethod
    def load(
        cls,
        name_or_path: str | Path,
        *,
        bands: tuple[str, ...] | list[str] | None = None,
        gsd_m: float | None = None,
        weights_dir: Path | None = None,
        **kwargs: int | str | None,
    ) -> ChangeDetector:
        """Load a checkpoint by name (``s2``, ``vhr-rgb``) or path, refusing one that does not fit the imagery.

        Args:
            name_or_path: Checkpoint name under ``models/weights`` or a ``.pt`` / ``.json`` path.
            bands: Band names of the imagery, in channel order; checked against the card when given.
            gsd_m: Ground sample distance of the imagery, metres; checked when given.
            weights_dir: Where names are looked up (default: the packaged ``models/weights``).
            **kwargs: Passed to ``ChangeDetector`` (tile_size, overlap, batch_size, threads, device).

        Raises:
            CheckpointNotFoundError: No such checkpoint.
            CheckpointMismatchError: Bands or ground sample distance do not match.
        """
        net, card = load_checkpoint(name_or_path, weights_dir=weights_dir)
        check_compatible(card, bands=bands, gsd_m=gsd_m)
        return cls(net, card, **kwargs)  # type: ignore[arg-type]

    @property
    def threshold(self) -> float:
        """Probability threshold chosen on validation data (stored in the card)."""
        return self.card.threshold

    @property
    def bands(self) -> tuple[str, ...]:
        """Band names the checkpoint expects, in channel order."""
        return tuple(self.card.bands)

    def predict(
        self,
        before: FloatArray,
        after: FloatArray,
        valid: npt.NDArray[np.bool_] | None = None,
    ) -> FloatArray:
        """Change probability for one co-registered pair.

        Args:
            before: ``(C, H, W)`` float32 reflectance at date 1, bands in ``self.bands`` order.
            after: ``(C, H, W)`` float32 reflectance at date 2, same grid.
            valid: Optional ``(H, W)`` bool, False for pixels to ignore (cloud, nodata). Non-finite
                input pixels are invalid too. Invalid pixels are filled with the band mean on both
                dates before the network (no spurious difference) and come back NaN.

        Returns:
            ``(H, W)`` float32 probability of change in [0, 1]; NaN where invalid.

        Raises:
            InputShapeError: Shapes differ or the band count does not match the checkpoint.
        """
        if before.ndim != 3 or before.shape != after.shape:
            raise InputShapeError(f"before and after must be (band, y, x) of one shape: {before.shape}, {after.shape}")
        if before.shape[0] != len(self.card.bands):
            raise InputShapeError(
                f"imagery has {before.shape[0]} bands, checkpoint {self.card.name!r} expects "
                f"{len(self.card.bands)} ({', '.join(self.card.bands)})"
            )
        ok = np.asarray(np.isfinite(before).all(axis=0) & np.isfinite(after).all(axis=0), dtype=bool)
        if valid is not None:
            if valid.shape != ok.shape:
                raise InputShapeError(f"valid mask {valid.shape} does not match the image grid {ok.shape}")
            ok &= valid.astype(bool)
        norm = self.card.normalization
        a, b = norm.apply_pair(before, after, ok)
        # Invalid pixels -> 0 after normalisation = the training mean, identical on both dates.
        a[:, ~ok] = 0.0
        b[:, ~ok] = 0.0
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            logits = predict_logits(
                self.net,
                a,
                b,
                tile_size=self.tile_size,
                overlap=self.overlap,
                batch_size=self.batch_size,
                device=self.device,
            )
        finally:
            if self.threads:
                torch.set_num_threads(previous)
        probability = (1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))).astype(np.float32)
        probability[~ok] = np.nan
        return probability
