"""Labelled change data sets behind one interface: pairs of ``(before, after, label)`` plus a name."""

from __future__ import annotations

from pathlib import Path

from models.datasets.arrays import NpzDataset, write_pair_npz
from models.datasets.base import RGB_BANDS, S2_ALL_BANDS, S2_BANDS, ChangeDataset, ChangePair
from models.errors import DatasetError

#: Format names accepted by ``open_dataset`` (and the CLI).
FORMATS = ("oscd", "levir", "dsifn", "sztaki", "sim", "npz")

__all__ = [
    "FORMATS",
    "RGB_BANDS",
    "S2_ALL_BANDS",
    "S2_BANDS",
    "ChangeDataset",
    "ChangePair",
    "NpzDataset",
    "open_dataset",
    "write_pair_npz",
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
    # Readers import their decoders (GDAL, Pillow) on first use: a box with only numpy and torch
    # can still train from an ``npz`` export.
    if fmt == "oscd":
        from models.datasets.oscd import OSCDDataset

        return OSCDDataset(root, bands or S2_BANDS, names)
    if fmt == "sim":
        from models.datasets.sim import SimDataset

        return SimDataset(root, bands or S2_BANDS, names)
    if fmt in ("levir", "dsifn", "sztaki"):
        from models.datasets.pngpairs import DSIFNDataset, PngPairDataset, SztakiDataset

        reader = {"levir": PngPairDataset, "dsifn": DSIFNDataset, "sztaki": SztakiDataset}[fmt]
        return reader(root, names)
    if fmt == "npz":
        ds = NpzDataset(root, names)
        if bands is not None and tuple(b.upper() for b in bands) != tuple(b.upper() for b in ds.bands):
            raise DatasetError(f"npz pairs under {root} hold bands {list(ds.bands)}, not {list(bands)}")
        return ds
    raise DatasetError(f"unknown data set format {fmt!r}; known: {', '.join(FORMATS)}")
