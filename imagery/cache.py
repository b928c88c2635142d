"""A scene cache on disk: each fetched scene stored once per grid as a COG, reused across restarts.

Key: provider + scene id + grid key (:meth:`geo.Grid.key`). The file is
``root/<provider>/<grid key>/<scene id>.tif``: float32 reflectance per band (band
descriptions are the band names, NaN = no data) and ``SCL`` as a float band. Writes go to a
temporary name and are renamed, so a half-written file is never taken for a complete one; a
cached file that cannot be read is deleted and treated as a miss.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from rasterio.errors import RasterioError

from geo import Grid
from imagery.cog import write_cog
from imagery.providers.base import SceneRef
from imagery.providers.reading import scene_array

logger = logging.getLogger(__name__)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


class SceneCache:
    """Scenes already read onto a grid, as COGs under ``root``.

    Args:
        root: Cache directory (created on first write).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_for(self, provider: str, scene_id: str, grid: Grid) -> Path:
        """Where a scene on a grid is (or would be) cached."""
        return self.root / _safe(provider) / _safe(grid.key()) / f"{_safe(scene_id)}.tif"

    def bands_in(self, scene: SceneRef, grid: Grid) -> list[str]:
        """The bands already cached for a scene on a grid (empty when not cached or unreadable)."""
        path = self.path_for(scene.provider, scene.scene_id, grid)
        if not path.exists():
            return []
        try:
            with rasterio.open(path) as src:
                return [d or "" for d in src.descriptions]
        except RasterioError:
            self._drop(path, "unreadable")
            return []

    def get(self, scene: SceneRef, grid: Grid, bands: Sequence[str]) -> xr.DataArray | None:
        """The cached bands of a scene on a grid, (band, y, x) float32, or None on a miss.

        A file missing any requested band is a miss; a corrupt file is deleted and is a miss.
        """
        path = self.path_for(scene.provider, scene.scene_id, grid)
        if not path.exists():
            return None
        try:
            with rasterio.open(path) as src:
                names = list(src.descriptions)
                if any(b not in names for b in bands):
                    return None
                if (src.width, src.height) != (grid.width, grid.height):
                    self._drop(path, "grid mismatch")
                    return None
                data = src.read([names.index(b) + 1 for b in bands], out_dtype="float32")
        except RasterioError as exc:
            self._drop(path, f"unreadable: {exc}")
            return None
        return scene_array(data, grid, bands, scene)

    def put(self, scene: SceneRef, grid: Grid, data: xr.DataArray) -> Path:
        """Store (band, y, x) data of a scene on a grid, merged with bands already cached."""
        path = self.path_for(scene.provider, scene.scene_id, grid)
        names = [str(b) for b in data["band"].values]
        arr = np.asarray(data.values, dtype=np.float32)
        extra = [b for b in self.bands_in(scene, grid) if b and b not in names]
        if extra:
            old = self.get(scene, grid, extra)
            if old is not None:
                arr = np.concatenate([arr, np.asarray(old.values, dtype=np.float32)])
                names += extra
        tags = {"provider": scene.provider, "scene_id": scene.scene_id, "grid_key": grid.key()}
        write_cog(path, arr, grid, nodata=float("nan"), band_names=names, tags=tags)
        return path

    def _drop(self, path: Path, why: str) -> None:
        logger.warning("dropping cached scene %s (%s)", path, why)
        path.unlink(missing_ok=True)
