"""Labelled change data sets behind one interface: pairs of ``(before, after, label)`` plus a name."""

from __future__ import annotations

from pathlib import Path

from models.datasets.base import RGB_BANDS, S2_ALL_BANDS, S2_BANDS, ChangeDataset, ChangePair
from models.datasets.oscd import OSCDDataset
from models.datasets.pngpairs import DSIFNDataset, PngPairDataset, SztakiDataset
from models.datasets.sim import SimDataset
from models.errors import DatasetError

#: Format names accepted by ``open_dataset`` (and the CLI).
FORMATS = ("oscd", "levir", "dsifn", "sztaki", "sim")

__all__ = [
    "FORMATS",
    "RGB_BANDS",
    "S2_ALL_BANDS",
    "S2_BANDS",
    "ChangeDataset",
    "ChangePair",
    "DSIFNDataset",
    "OSCDDataset",
    "PngPairDataset",
    "SimDataset",
    "SztakiDataset",
    "open_dataset",
]


def open_dataset(
    fmt: str, root: Path, *, names: list[str] | None = None, bands: tuple[str, ...] | None = None
) -> ChangeDataset:
    """Open a labelled folder in one of the ``FORMATS`` layouts.

    Args:
        fmt: Layout name.
        root: Folder.
        names: Optional subset of pair names.
        bands: Sentinel-2 band subset (``oscd`` and ``sim`` only; default ``S2_BANDS``).

    Raises:
        DatasetError: Unknown format, or the folder does not follow the layout.
    """
    root = Path(root)
    if fmt == "oscd":
        return OSCDDataset(root, bands or S2_BANDS, names)
    if fmt == "sim":
        return SimDataset(root, bands or S2_BANDS, names)
    if fmt == "levir":
        return PngPairDataset(root, names)
    if fmt == "dsifn":
        return DSIFNDataset(root, names)
    if fmt == "sztaki":
        return SztakiDataset(root, names)
    raise DatasetError(f"unknown data set format {fmt!r}; known: {', '.join(FORMATS)}")
