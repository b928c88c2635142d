"""Reader for SiteWatch's simulated archive (COG scenes per site plus true construction masks).

Layout::

    ROOT/<site_id>/<scene_id>/{B02,B03,B04,B08,B11,B12,SCL}.tif   uint16 DN (SCL uint8)
    ROOT/<site_id>/<scene_id>/<scene_id>.json                      STAC item (datetime, offsets)
    ROOT/truth/<site_id>/change_<YYYYMMDD>.tif                     uint8 0/1 new construction vs pre-construction
    ROOT/truth/<site_id>/progress.csv                              (not read here)

Each truth mask gives one pair: the site's earliest (nearly) clear scene against the scene
acquired on the mask's date (or the closest one). Truth masks are cumulative against the
pre-construction state, so the pair's label is the truth at date 2 minus the truth at date 1.
Pixels flagged by SCL as no data (0), defective (1), shadow (3) or cloud (8, 9, 10) on either
date, or with DN 0 (nodata), are marked invalid.
Reflectance follows the STAC raster extension (``DN * scale + offset``), so the +1000 DN offset
of processing baseline 04.00 is undone.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio

from models.datasets.base import S2_BANDS, ChangeDataset, ChangePair
from models.errors import DatasetError

logger = logging.getLogger(__name__)

#: Scene classification values treated as unusable: no data, saturated / defective, cloud shadow,
#: cloud medium / high probability, thin cirrus (ESA L2A SCL classes).
SCL_INVALID = (0, 1, 3, 8, 9, 10)
_TRUTH_RE = re.compile(r"change_(\d{8})\.tif$")


@dataclass(frozen=True, slots=True)
class _Scene:
    scene_id: str
    folder: Path
    acquired: date
    item: dict[str, Any]


class SimDataset(ChangeDataset):
    """Pairs from the simulated archive; names are ``<site_id>/<YYYYMMDD>`` (the date-2 truth date)."""

    format = "sim"
    licence = "SiteWatch simulated data (internal, synthetic; no third-party licence)"

    def __init__(
        self,
        root: Path,
        bands: tuple[str, ...] = S2_BANDS,
        names: list[str] | None = None,
        *,
        min_clear_before: float = 0.8,
        min_clear_after: float = 0.2,
    ) -> None:
        """Index the archive (reads the STAC items and the SCL layers, not the bands).

        Args:
            root: Archive root.
            bands: Bands to read, in channel order.
            names: Optional subset of pair names.
            min_clear_before: Date 1 is the site's earliest scene with at least this clear share
                (SCL); when none qualifies, the clearest scene.
            min_clear_after: Pairs whose date-2 scene is clearer than this only are kept.

        Raises:
            DatasetError: No ``truth/`` folder, or no pair could be formed.
        """
        self.root = Path(root)
        truth = self.root / "truth"
        if not truth.is_dir():
            raise DatasetError(f"simulated archive has no truth/ folder: {self.root}")
        #: pair name -> (date-1 scene, date-2 scene, truth at date 2, truth at date 1 or None)
        self._pairs: dict[str, tuple[_Scene, _Scene, Path, Path | None]] = {}
        for site_dir in sorted(p for p in truth.iterdir() if p.is_dir()):
            scenes = self._scenes(self.root / site_dir.name)
            if not scenes:
                logger.warning("no scenes for site %s", site_dir.name, extra={"site_id": site_dir.name})
                continue
            clear = {s.scene_id: _clear_fraction(s.folder) for s in scenes}
            first = next((s for s in scenes if clear[s.scene_id] >= min_clear_before), None)
            first = first or max(scenes, key=lambda s: clear[s.scene_id])
            masks = {}
            for mask in sorted(site_dir.glob("change_*.tif")):
                match = _TRUTH_RE.search(mask.name)
                if match:
                    masks[date(int(match.group(1)[:4]), int(match.group(1)[4:6]), int(match.group(1)[6:]))] = mask
            for when, mask in masks.items():
                if when <= first.acquired:
                    continue
                after = min(scenes, key=lambda s: abs((s.acquired - when).days))
                if after.acquired <= first.acquired or clear[after.scene_id] < min_clear_after:
                    continue
                self._pairs[f"{site_dir.name}/{when:%Y%m%d}"] = (first, after, mask, masks.get(first.acquired))
        found = sorted(self._pairs)
        if names is not None:
            absent = [n for n in names if n not in self._pairs]
            if absent:
                raise DatasetError(f"pairs not found under {self.root}: {absent}")
            found = list(names)
        if not found:
            raise DatasetError(f"no (scene, truth) pair could be formed under {self.root}")
        super().__init__(found, tuple(b.upper() for b in bands), 10.0)

    @staticmethod
    def _scenes(site: Path) -> list[_Scene]:
        scenes: list[_Scene] = []
        if not site.is_dir():
            return scenes
        for folder in sorted(p for p in site.iterdir() if p.is_dir()):
            item_path = folder / f"{folder.name}.json"
            if not item_path.is_file():
                continue
            item = json.loads(item_path.read_text())
            stamp = item.get("properties", {}).get("datetime") or item.get("properties", {}).get("start_datetime")
            if not stamp:
                continue
            scenes.append(_Scene(folder.name, folder, date.fromisoformat(str(stamp)[:10]), item))
        return sorted(scenes, key=lambda s: (s.acquired, s.scene_id))

    def _read_scene(self, scene: _Scene) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """``(C, H, W)`` reflectance and ``(H, W)`` validity of one scene."""
        planes = []
        valid = np.ones((0, 0), dtype=bool)
        for band in self.bands:
            path = scene.folder / f"{band}.tif"
            if not path.is_file():
                raise DatasetError(f"{scene.folder}: {band}.tif missing")
            with rasterio.open(path) as src:
                dn = src.read(1)
            scale, offset = reflectance_scaling(scene.item, band)
            plane_valid = dn > 0
            valid = plane_valid if valid.size == 0 else valid & plane_valid
            planes.append((dn.astype(np.float32) * scale + offset).astype(np.float32))
        image = np.stack(planes)
        scl_path = scene.folder / "SCL.tif"
        if scl_path.is_file():
            with rasterio.open(scl_path) as src:
                scl = src.read(1)
            valid &= ~np.isin(scl, SCL_INVALID)
        return image, valid

    def _read(self, name: str) -> ChangePair:
        first, after_scene, mask, mask_before = self._pairs[name]
        before, valid1 = self._read_scene(first)
        after, valid2 = self._read_scene(after_scene)
        with rasterio.open(mask) as src:
            built = src.read(1) > 0
        if mask_before is not None:
            # Truth is cumulative (vs pre-construction); the pair's change is what was built since date 1.
            with rasterio.open(mask_before) as src:
                built &= ~(src.read(1) > 0)
        label = built.astype(np.uint8)
        if before.shape != after.shape or label.shape != before.shape[1:]:
            raise DatasetError(f"pair {name}: grids differ: {before.shape}, {after.shape}, label {label.shape}")
        return ChangePair(name, before, after, label, valid1 & valid2)


def _clear_fraction(folder: Path) -> float:
    """Share of pixels of a scene that SCL does not flag (1.0 when the scene has no SCL)."""
    path = folder / "SCL.tif"
    if not path.is_file():
        return 1.0
    with rasterio.open(path) as src:
        scl = src.read(1)
    return float((~np.isin(scl, SCL_INVALID)).mean())


def reflectance_scaling(item: dict[str, Any], band: str) -> tuple[float, float]:
    """``(scale, offset)`` so that ``reflectance = DN * scale + offset`` for one band of a STAC item.

    Reads the raster extension (``raster:bands[0].scale/offset``) of the band's asset first, then
    item properties. An offset given without a scale, or with ``|offset| >= 1``, is taken in DN
    (the Sentinel-2 ``BOA_ADD_OFFSET`` convention, e.g. -1000): reflectance = (DN + offset) / 10000.
    """
    assets = {k.upper(): v for k, v in item.get("assets", {}).items()}
    raster = (assets.get(band.upper(), {}).get("raster:bands") or [{}])[0]
    props = item.get("properties", {})
    scale = raster.get("scale")
    offset = raster.get("offset")
    if offset is None:
        for key, value in props.items():
            if key.lower().endswith(("offset", "offset_dn")) and isinstance(value, int | float):
                offset = value
                break
    if scale is None:
        scale = props.get("scale")
    offset = float(offset or 0.0)
    if scale is None or float(scale) == 1.0 or abs(offset) >= 1.0:
        # DN-unit offset: (DN + offset) / 10000.
        return 1e-4, offset * 1e-4
    return float(scale), offset
