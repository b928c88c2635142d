"""Reader for the OSCD folder layout (Onera Satellite Change Detection, Sentinel-2 L1C)."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import Resampling, reproject

from models.datasets.base import S2_ALL_BANDS, S2_BANDS, ChangeDataset, ChangePair
from models.errors import DatasetError

logger = logging.getLogger(__name__)

_BAND_RE = re.compile(r"_(B\d\d|B8A)\.tif$", re.IGNORECASE)


class OSCDDataset(ChangeDataset):
    """OSCD cities: ``<city>/imgs_1/*_Bxx.tif``, ``<city>/imgs_2/*_Bxx.tif``, ``<city>/cm/<city>-cm.tif``.

    Every band of both dates is resampled (bilinear) onto the imgs_1 B02 10 m grid, which is also the
    grid of the change mask (1 = no change, 2 = change in the files; 0/1 here). L1C TOA reflectance
    is DN / 10000 (OSCD predates the 2022 offset of -1000).
    """

    format = "oscd"
    licence = "OSCD labels CC BY-NC-SA 4.0 (non-commercial); images modified Copernicus Sentinel data"

    def __init__(self, root: Path, bands: tuple[str, ...] = S2_BANDS, names: list[str] | None = None) -> None:
        """Open the folder.

        Args:
            root: Folder holding one sub-folder per city.
            bands: Sentinel-2 band names to read, in output channel order.
            names: Cities to use (default: every city folder with a change mask).

        Raises:
            DatasetError: Missing folder, unknown band or no city found.
        """
        self.root = Path(root)
        unknown = [b for b in bands if b.upper() not in S2_ALL_BANDS]
        if unknown:
            raise DatasetError(f"unknown Sentinel-2 band(s) {unknown}; known: {', '.join(S2_ALL_BANDS)}")
        if not self.root.is_dir():
            raise DatasetError(f"OSCD folder not found: {self.root}")
        found = sorted(p.name for p in self.root.iterdir() if (p / "cm").is_dir() and (p / "imgs_1").is_dir())
        if names is not None:
            missing = [n for n in names if n not in found]
            if missing:
                raise DatasetError(f"OSCD cities not found under {self.root}: {missing}")
            found = list(names)
        if not found:
            raise DatasetError(f"no OSCD city (folder with imgs_1/, imgs_2/, cm/) under {self.root}")
        super().__init__(found, tuple(b.upper() for b in bands), 10.0)

    def dates(self, name: str) -> tuple[str, str]:
        """``(date_1, date_2)`` as YYYYMMDD from the city's dates.txt."""
        text = (self.root / name / "dates.txt").read_text()
        found = dict(re.findall(r"(date_[12])\s*:\s*(\d{8})", text))
        return found.get("date_1", ""), found.get("date_2", "")

    def _band_files(self, folder: Path) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for path in folder.glob("*.tif"):
            match = _BAND_RE.search(path.name)
            if match:
                files[match.group(1).upper()] = path
        missing = [b for b in self.bands if b not in files]
        if missing:
            raise DatasetError(f"{folder}: band file(s) missing for {missing}")
        return files

    def _read(self, name: str) -> ChangePair:
        city = self.root / name
        files1 = self._band_files(city / "imgs_1")
        files2 = self._band_files(city / "imgs_2")
        ref_file = self._band_files(city / "imgs_1").get("B02") or files1[self.bands[0]]
        with rasterio.open(ref_file) as ref:
            grid = (ref.height, ref.width, ref.transform, ref.crs)
        before = np.stack([_read_onto(files1[b], grid) for b in self.bands])
        after = np.stack([_read_onto(files2[b], grid) for b in self.bands])
        masks = list((city / "cm").glob("*-cm.tif")) or list((city / "cm").glob("*.tif"))
        if not masks:
            raise DatasetError(f"{city / 'cm'}: no change mask tif")
        # OSCD masks carry no georeference by design (pixel-aligned with imgs_1): silence that warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(masks[0]) as src:
                raw = src.read(1)
        if raw.shape != before.shape[1:]:
            raise DatasetError(f"{masks[0]}: mask {raw.shape} does not match the imgs_1 grid {before.shape[1:]}")
        # Files hold 1 = no change, 2 = change (some OSCD copies use 0/1): change is the top value.
        label = (raw == 2) if raw.max() == 2 else (raw == 1)
        return ChangePair(name, before, after, label.astype(np.uint8))


def _read_onto(path: Path, grid: tuple[int, int, rasterio.Affine, rasterio.crs.CRS]) -> npt.NDArray[np.float32]:
    """Read one single-band file as reflectance (DN / 10000), resampled bilinearly onto ``grid``."""
    height, width, transform, crs = grid
    with rasterio.open(path) as src:
        if src.height == height and src.width == width and src.transform.almost_equals(transform):
            data = src.read(1).astype(np.float32)
        else:
            data = np.zeros((height, width), np.float32)
            reproject(
                source=src.read(1).astype(np.float32),
                destination=data,
                src_transform=src.transform,
                src_crs=src.crs,
                dst_transform=transform,
                dst_crs=crs,
                resampling=Resampling.bilinear,
            )
    reflectance: npt.NDArray[np.float32] = data / np.float32(10000.0)
    return reflectance
