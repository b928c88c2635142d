"""Fixtures for imagery tests: tiny simulated archives, planted GeoTIFFs and an in-memory provider."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from pytest_httpserver import HTTPServer
from shapely.geometry import box

from aoi.demo import demo_portfolio
from aoi.model import Phase, Plan, Site
from geo import Grid
from imagery.archive import write_archive
from imagery.errors import MissingBandError
from imagery.providers.base import BandAsset, SceneRef
from imagery.providers.reading import scene_array
from imagery.simulate import site_grid

#: A short period (about 9 scenes) inside the works of the demo "de-rgb-hall" site.
ARCHIVE_START = date(2025, 9, 1)
ARCHIVE_END = date(2025, 10, 15)


@pytest.fixture(scope="session")
def hall_site() -> Site:
    return demo_portfolio().site("de-rgb-hall")


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory, hall_site: Site) -> Path:
    """A simulated archive of one demo site over six weeks (read-only: copy before changing it)."""
    root = tmp_path_factory.mktemp("archive")
    write_archive(root, [hall_site], ARCHIVE_START, ARCHIVE_END, seed=11)
    return root


@pytest.fixture(scope="session")
def hall_grid(hall_site: Site) -> Grid:
    return site_grid(hall_site)


def small_site(site_id: str = "tiny", lat: float = 48.0, props: dict[str, object] | None = None) -> Site:
    """A 300 m x 300 m site with one groundwork phase and one building phase."""
    lon = 11.0
    dlon, dlat = 300 / (111_320 * np.cos(np.radians(lat))), 300 / 110_540
    boundary = box(lon, lat, lon + dlon, lat + dlat)
    pad = box(lon + dlon * 0.1, lat + dlat * 0.1, lon + dlon * 0.9, lat + dlat * 0.9)
    hall = box(lon + dlon * 0.2, lat + dlat * 0.2, lon + dlon * 0.6, lat + dlat * 0.6)
    plan = Plan(
        (
            Phase("earthworks", 0.3, date(2025, 3, 1), date(2025, 5, 1), pad),
            Phase("hall", 0.7, date(2025, 4, 1), date(2025, 9, 1), hall),
        )
    )
    return Site(site_id, "Tiny hall", "L-1", "DE-BY", boundary, plan, props or {})


#: Period of the tiny archive served over HTTP: four scenes of a 51 x 52 px site.
TINY_START = date(2025, 6, 1)
TINY_END = date(2025, 6, 20)


@pytest.fixture(scope="session")
def tiny_site() -> Site:
    return small_site()


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory, tiny_site: Site) -> Path:
    """A simulated archive of a 300 m site over three weeks (read-only), for the HTTP servers."""
    root = tmp_path_factory.mktemp("tiny-archive")
    write_archive(root, [tiny_site], TINY_START, TINY_END, seed=3)
    return root


@pytest.fixture(scope="session")
def tiny_grid(tiny_site: Site) -> Grid:
    return site_grid(tiny_site)


@pytest.fixture(scope="session")
def _session_http_server() -> Iterator[HTTPServer]:
    # Threaded, so a deliberately slow answer does not hold up the client's retry.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def http_server(_session_http_server: HTTPServer) -> Iterator[HTTPServer]:
    """A werkzeug server on 127.0.0.1 with no handlers; each test installs its own."""
    _session_http_server.clear()
    yield _session_http_server
    _session_http_server.clear()


UTM33 = "EPSG:32633"


def utm_grid(width: int = 20, height: int = 20, res: float = 10.0) -> Grid:
    return Grid(UTM33, Affine(res, 0, 500_000, 0, -res, 5_300_000), width, height)


def write_tif(path: Path, data: np.ndarray, grid: Grid | None, *, nodata: float | None = 0, crs: str | None = UTM33):
    arr = data[None] if data.ndim == 2 else data
    profile = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "transform": grid.transform if grid else Affine.identity(),
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
    return path


@dataclass
class ArrayProvider:
    """An in-memory provider: scenes are (band, y, x) reflectance arrays on one grid."""

    grid: Grid
    scenes: list[tuple[SceneRef, dict[str, np.ndarray]]] = field(default_factory=list)
    name: str = "memory"
    reads: int = 0
    fail: dict[str, Exception] = field(default_factory=dict)

    def add(self, day: int, bands: dict[str, np.ndarray], cloud_pct: float | None = None) -> SceneRef:
        sid = f"MEM_{day:03d}"
        ref = SceneRef(
            provider=self.name,
            scene_id=sid,
            acquired_at_utc=datetime(2025, 1, 1, 10, tzinfo=UTC) + timedelta(days=day),
            bbox_wgs84=self.grid.bbox_wgs84,
            cloud_pct=cloud_pct,
            gsd_m=10.0,
            assets={b: BandAsset(f"mem://{sid}/{b}") for b in bands},
        )
        self.scenes.append((ref, bands))
        return ref

    def search(self, bbox_wgs84, start, end) -> list[SceneRef]:
        return [r for r, _ in self.scenes]

    def read(self, scene: SceneRef, grid: Grid, bands: Sequence[str]) -> xr.DataArray:
        self.reads += 1
        if scene.scene_id in self.fail:
            raise self.fail[scene.scene_id]
        data = dict(next(b for r, b in self.scenes if r.scene_id == scene.scene_id))
        missing = [b for b in bands if b not in data]
        if missing:
            raise MissingBandError(str(missing))
        stack = np.stack([data[b] for b in bands]).astype(np.float32)
        return scene_array(stack, grid, bands, scene)


@pytest.fixture
def array_provider() -> ArrayProvider:
    return ArrayProvider(utm_grid())
