"""The provider interface: scene references and the ``SceneProvider`` protocol."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import xarray as xr

from geo import BBox, Grid
from imagery.errors import MissingBandError
from imagery.sentinel2 import BAND_ALIASES

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BandAsset:
    """Where one band of a scene lives and how to turn its values into reflectance.

    Attributes:
        href: Path or URL of the raster file.
        index: 1-based band index inside the file (several bands may share a file).
        scale: Multiplier of stored values (L2A: 1e-4).
        offset: Added after scaling (L2A baseline >= 04.00: -0.1).
        nodata: Stored value meaning "no data" (None: the file's own, if any).
    """

    href: str
    index: int = 1
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None


@dataclass(frozen=True, slots=True)
class SceneRef:
    """One scene found by a provider; enough to read it later without searching again.

    Attributes:
        provider: Provider name ("local", "stac", "sentinelhub").
        scene_id: The provider's scene (item) id.
        acquired_at_utc: Sensing time, timezone-aware UTC.
        bbox_wgs84: (west, south, east, north) in degrees.
        cloud_pct: Provider-reported cloud cover of the whole scene, 0-100 (None if unknown).
        gsd_m: Ground sampling distance in metres (None if unknown).
        assets: Band name -> :class:`BandAsset`.
        processing_baseline: Sentinel-2 processing baseline ("04.00"), None for other sensors.
        properties: Every other item property, kept as given.
        parts: For a scene merged from several tiles of one satellite pass, the tiles, in the
            order their pixels win (least cloudy first); empty for a single item. ``assets``
            are then the first tile's.
    """

    provider: str
    scene_id: str
    acquired_at_utc: datetime
    bbox_wgs84: BBox
    cloud_pct: float | None
    gsd_m: float | None
    assets: Mapping[str, BandAsset]
    processing_baseline: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    parts: tuple[SceneRef, ...] = ()

    @property
    def hrefs(self) -> dict[str, str]:
        """Band name -> file path or URL."""
        return {band: a.href for band, a in self.assets.items()}

    def asset(self, band: str) -> BandAsset:
        """The asset of a band, trying its aliases (``B04`` is ``red`` in Earth Search).

        Raises:
            MissingBandError: when the scene has no such band.
        """
        if band in self.assets:
            return self.assets[band]
        for alias in BAND_ALIASES.get(band, ()):
            if alias in self.assets:
                return self.assets[alias]
        raise MissingBandError(f"scene {self.scene_id} has no band {band!r} (has {sorted(self.assets)})")

    def missing_bands(self, bands: Sequence[str]) -> list[str]:
        """The requested bands this scene lacks."""
        missing = []
        for band in bands:
            try:
                self.asset(band)
            except MissingBandError:
                missing.append(band)
        return missing


@runtime_checkable
class SceneProvider(Protocol):
    """Anything that can list scenes over an area and read one onto a grid."""

    #: Short name stored in SceneRecords and cache keys ("local", "stac", "sentinelhub").
    name: str

    def search(self, bbox_wgs84: BBox, start: date | datetime, end: date | datetime) -> list[SceneRef]:
        """Scenes intersecting a WGS84 bbox, sensed between ``start`` and ``end`` (inclusive), oldest first."""
        ...

    def read(self, scene: SceneRef, grid: Grid, bands: Sequence[str]) -> xr.DataArray:
        """Read bands of a scene onto a grid.

        Returns:
            (band, y, x) float32 on ``grid``: surface reflectance (harmonised, NaN = no data) for
            spectral bands; the ESA class (0 = no data) for a band named ``"SCL"``.
        """
        ...


@runtime_checkable
class BufferedSceneProvider(SceneProvider, Protocol):
    """A provider that can also decode bands straight into caller-owned buffers.

    The datacube uses it, when a provider offers it, to fill its (time, y, x) arrays in place:
    no labelled DataArray per scene and no copies. Values are as :meth:`SceneProvider.read`.
    """

    def read_into(
        self, scene: SceneRef, grid: Grid, bands: Sequence[str], out: Sequence[npt.NDArray[np.float32]]
    ) -> None:
        """Read bands of a scene onto a grid into ``out``: one C-contiguous (y, x) float32 buffer per band."""
        ...


def read_bands_into(
    provider: SceneProvider, scene: SceneRef, grid: Grid, bands: Sequence[str], out: Sequence[npt.NDArray[np.float32]]
) -> None:
    """Decode ``bands`` of a scene into ``out`` (one (y, x) float32 buffer per band).

    Uses the provider's buffered path when it has one, else copies from :meth:`SceneProvider.read`.
    """
    if isinstance(provider, BufferedSceneProvider):
        provider.read_into(scene, grid, bands, out)
        return
    data = provider.read(scene, grid, bands).values
    for k, buf in enumerate(out):
        buf[...] = data[k]
