"""Readers for very-high-resolution photo pairs: LEVIR-CD / DSIFN (A/, B/, label/) and SZTAKI AirChange."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from models.datasets.base import RGB_BANDS, ChangeDataset, ChangePair
from models.errors import DatasetError

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _read_rgb(path: Path) -> npt.NDArray[np.float32]:
    """``(3, H, W)`` float32 in [0, 1]."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def _read_label(path: Path) -> npt.NDArray[np.uint8]:
    """``(H, W)`` uint8 0/1 from a 0/255 mask (antialiased greys binarised at > 127)."""
    with Image.open(path) as im:
        gray = np.asarray(im.convert("L"))
    return (gray > 127).astype(np.uint8)


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in _IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


class PngPairDataset(ChangeDataset):
    """LEVIR-CD layout: ``A/<name>.png`` (date 1), ``B/<name>.png`` (date 2), ``label/<name>.png`` (0/255)."""

    format = "levir"
    licence = "LEVIR-CD: research / non-commercial use only (Google Earth imagery); cite Chen & Shi 2020"

    def __init__(self, root: Path, names: list[str] | None = None, gsd_m: float = 0.5) -> None:
        """Open the folder.

        Args:
            root: Folder holding ``A/``, ``B/`` and ``label/``.
            names: File stems to use (default: every stem present in all three folders).
            gsd_m: Ground sample distance in metres (LEVIR-CD: 0.5).

        Raises:
            DatasetError: Layout missing or no complete pair.
        """
        self.root = Path(root)
        folders = [self.root / d for d in ("A", "B", "label")]
        missing = [str(f) for f in folders if not f.is_dir()]
        if missing:
            raise DatasetError(f"{self.format} layout needs A/, B/, label/; missing: {missing}")
        stems = sorted(
            p.stem
            for p in folders[0].iterdir()
            if p.suffix.lower() in _IMAGE_SUFFIXES and _find(folders[1], p.stem) and _find(folders[2], p.stem)
        )
        if names is not None:
            absent = [n for n in names if n not in stems]
            if absent:
                raise DatasetError(f"pairs not found under {self.root}: {absent}")
            stems = list(names)
        if not stems:
            raise DatasetError(f"no complete A/B/label pair under {self.root}")
        super().__init__(stems, RGB_BANDS, gsd_m)

    def _read(self, name: str) -> ChangePair:
        a, b, lab = (_find(self.root / d, name) for d in ("A", "B", "label"))
        if a is None or b is None or lab is None:
            raise DatasetError(f"pair {name!r} incomplete under {self.root}")
        return _pair(name, _read_rgb(a), _read_rgb(b), _read_label(lab))


class DSIFNDataset(PngPairDataset):
    """DSIFN-CD: same layout as LEVIR-CD; Google Earth, resolution not stated per tile (~0.5-2 m)."""

    format = "dsifn"
    licence = "DSIFN-CD: no licence stated; research / non-commercial use only (Google Earth imagery)"

    def __init__(self, root: Path, names: list[str] | None = None, gsd_m: float = 1.0) -> None:
        """Open the folder (see ``PngPairDataset``)."""
        super().__init__(root, names, gsd_m)


class SztakiDataset(ChangeDataset):
    """SZTAKI AirChange: any folder (at any depth) holding ``im1.*``, ``im2.*`` and ``gt.*``; 1.5 m aerial.

    Pair names are the folder paths relative to the root, e.g. ``Tiszadob/3`` or ``Archieve``.
    """

    format = "sztaki"
    licence = "SZTAKI AirChange: free for scientific use (research only); cite Benedek & Sziranyi 2008/2009"

    def __init__(self, root: Path, names: list[str] | None = None, gsd_m: float = 1.5) -> None:
        """Open the folder.

        Raises:
            DatasetError: No pair folder found, or a requested name is absent.
        """
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"SZTAKI folder not found: {self.root}")
        found = sorted(
            str(p.parent.relative_to(self.root)).replace("\\", "/")
            for p in self.root.rglob("im1.*")
            if _find(p.parent, "im2") and _find(p.parent, "gt")
        )
        if names is not None:
            absent = [n for n in names if n not in found]
            if absent:
                raise DatasetError(f"pairs not found under {self.root}: {absent}")
            found = list(names)
        if not found:
            raise DatasetError(f"no folder with im1.*, im2.*, gt.* under {self.root}")
        super().__init__(found, RGB_BANDS, gsd_m)

    def _read(self, name: str) -> ChangePair:
        folder = self.root / name
        a, b, lab = _find(folder, "im1"), _find(folder, "im2"), _find(folder, "gt")
        if a is None or b is None or lab is None:
            raise DatasetError(f"{folder}: needs im1.*, im2.*, gt.*")
        return _pair(name, _read_rgb(a), _read_rgb(b), _read_label(lab))


def _pair(
    name: str, before: npt.NDArray[np.float32], after: npt.NDArray[np.float32], label: npt.NDArray[np.uint8]
) -> ChangePair:
    if before.shape != after.shape or before.shape[1:] != label.shape:
        raise DatasetError(f"pair {name!r}: shapes differ: {before.shape}, {after.shape}, label {label.shape}")
    return ChangePair(name, before, after, label)
