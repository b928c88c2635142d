"""A provider over a local static STAC catalog of GeoTIFFs (the simulated archive, or any other)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr

from geo import BBox, Grid
from imagery.errors import CatalogInvalidError, SceneUnavailableError
from imagery.providers.base import SceneRef
from imagery.providers.reading import read_scene, read_scene_into
from imagery.providers.stacitem import scene_ref_from_item

logger = logging.getLogger(__name__)


def as_utc_bounds(start: date | datetime, end: date | datetime) -> tuple[datetime, datetime]:
    """A closed UTC interval from days (whole days, inclusive) or datetimes (naive ones read as UTC)."""

    def conv(d: date | datetime, end_of_day: bool) -> datetime:
        if isinstance(d, datetime):
            return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
        return datetime.combine(d, time.max if end_of_day else time.min, tzinfo=UTC)

    return conv(start, False), conv(end, True)


def bbox_intersects(a: BBox, b: BBox) -> bool:
    """Whether two (west, south, east, north) boxes share any area (no antimeridian wrap)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class LocalArchiveProvider:
    """Scenes from a static STAC catalog on disk (``root/catalog.json``), read with rasterio.

    The catalog is walked once (children and items, following relative links) and indexed in
    memory; the index is rebuilt when ``catalog.json`` changes. Items may be Sentinel-2 L2A
    (one COG per band) or very-high-resolution RGB(N) images (one file, several ``eo:bands``).

    Args:
        root: Archive directory holding ``catalog.json`` (or the path of the catalog file).
        collections: Only index these collection ids (default all).
    """

    name = "local"

    def __init__(self, root: Path | str, *, collections: Sequence[str] | None = None) -> None:
        root = Path(root)
        self.catalog_path = root if root.suffix == ".json" else root / "catalog.json"
        self.collections = set(collections) if collections else None
        self._index: list[SceneRef] | None = None
        self._index_mtime: float | None = None
        self._lock = threading.Lock()

    def search(self, bbox_wgs84: BBox, start: date | datetime, end: date | datetime) -> list[SceneRef]:
        """Scenes whose bbox intersects ``bbox_wgs84`` and whose time is in ``[start, end]``, oldest first.

        Raises:
            SceneUnavailableError: there is no catalog at the root.
            CatalogInvalidError: the catalog JSON is malformed.
        """
        t0, t1 = as_utc_bounds(start, end)
        hits = [
            s for s in self._scenes() if t0 <= s.acquired_at_utc <= t1 and bbox_intersects(s.bbox_wgs84, bbox_wgs84)
        ]
        return sorted(hits, key=lambda s: (s.acquired_at_utc, s.scene_id))

    def read(self, scene: SceneRef, grid: Grid, bands: Sequence[str]) -> xr.DataArray:
        """Read bands onto a grid: (band, y, x) float32 reflectance, ``"SCL"`` as classes (see SceneProvider)."""
        return read_scene(scene, grid, bands)

    def read_into(
        self, scene: SceneRef, grid: Grid, bands: Sequence[str], out: Sequence[npt.NDArray[np.float32]]
    ) -> None:
        """:meth:`read` into caller-owned (y, x) float32 buffers, one per band (see BufferedSceneProvider)."""
        read_scene_into(scene, grid, bands, out)

    def _scenes(self) -> list[SceneRef]:
        with self._lock:
            try:
                mtime = self.catalog_path.stat().st_mtime
            except FileNotFoundError as exc:
                raise SceneUnavailableError(f"no STAC catalog at {self.catalog_path}") from exc
            if self._index is None or mtime != self._index_mtime:
                self._index = self._walk()
                self._index_mtime = mtime
                logger.debug("indexed %d scenes under %s", len(self._index), self.catalog_path)
            return self._index

    def _walk(self) -> list[SceneRef]:
        scenes: list[SceneRef] = []
        seen: set[Path] = set()
        stack: list[tuple[Path, str | None]] = [(self.catalog_path.resolve(), None)]
        while stack:
            path, collection = stack.pop()
            if path in seen:
                continue
            seen.add(path)
            doc = _load_json(path)
            kind = doc.get("type")
            if kind == "Feature":
                if self.collections is not None and (doc.get("collection") or collection) not in self.collections:
                    continue
                try:
                    scenes.append(scene_ref_from_item(doc, provider=self.name, base_href=str(path)))
                except CatalogInvalidError as exc:
                    logger.warning("skipping bad STAC item %s: %s", path, exc)
                continue
            if kind == "Collection":
                collection = str(doc.get("id"))
                if self.collections is not None and collection not in self.collections:
                    continue
            for link in doc.get("links", []):
                if link.get("rel") in ("child", "item") and isinstance(link.get("href"), str):
                    stack.append(((path.parent / link["href"]).resolve(), collection))
        return scenes


def _load_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SceneUnavailableError(f"STAC document {path} is missing") from exc
    except json.JSONDecodeError as exc:
        raise CatalogInvalidError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CatalogInvalidError(f"{path} is not a STAC object")
    return doc
