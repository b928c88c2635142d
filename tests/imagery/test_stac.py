"""StacApiProvider against a local STAC API and COG server (pystac-client and GDAL /vsicurl/ for real)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pytest_httpserver import HTTPServer

from geo import Grid
from imagery.cube import load_datacube
from imagery.errors import ProviderAuthError, ProviderUnavailableError, SceneUnavailableError
from imagery.providers.base import SceneProvider
from imagery.providers.local import LocalArchiveProvider
from imagery.providers.stac import StacApiProvider
from tests.imagery.conftest import TINY_END, TINY_START
from tests.imagery.stac_api_fake import FakeStacApi

pytestmark = pytest.mark.integration

BANDS = ["B02", "B03", "B04", "B08", "B11", "B12", "SCL"]


@pytest.fixture
def stac_api(http_server: HTTPServer, tiny_archive: Path) -> FakeStacApi:
    return FakeStacApi(http_server, tiny_archive).install()


def provider_for(api: FakeStacApi, **kwargs: object) -> StacApiProvider:
    options: dict[str, object] = {"timeout_s": 5.0, "retries": 2, "backoff_s": 0.01, **kwargs}
    return StacApiProvider(api.url, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_stac_search_returns_local_scenes_across_pages(
    stac_api: FakeStacApi, tiny_archive: Path, tiny_grid: Grid, method: str
):
    provider = provider_for(stac_api, page_size=3, method=method)
    assert isinstance(provider, SceneProvider)

    scenes = provider.search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)

    local = LocalArchiveProvider(tiny_archive).search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)
    assert len(local) == 4
    assert [s.scene_id for s in scenes] == [s.scene_id for s in local]  # L1C twins filtered, oldest first
    assert [s.acquired_at_utc for s in scenes] == [s.acquired_at_utc for s in local]
    assert [s.cloud_pct for s in scenes] == [s.cloud_pct for s in local]
    assert scenes[0].cloud_pct == 0.0
    assert scenes[-1].cloud_pct == 100.0
    assert all(s.provider == "stac" for s in scenes)
    red = scenes[0].asset("B04")
    assert red.href.startswith(stac_api.url)
    assert red.href.endswith("/B04.tif")
    assert (red.scale, red.offset) == (local[0].asset("B04").scale, local[0].asset("B04").offset)
    # Paged: 4 matching items at 3 per page is two requests, the second carrying the next token.
    assert [m for m, _ in stac_api.searches] == [method, method]
    assert str(stac_api.searches[1][1]["token"]) == "3"


def test_stac_search_narrows_to_dates(stac_api: FakeStacApi, tiny_grid: Grid):
    scenes = provider_for(stac_api).search(tiny_grid.bbox_wgs84, date(2025, 6, 7), date(2025, 6, 12))
    assert [s.acquired_at_utc.day for s in scenes] == [7, 12]


def test_stac_search_without_matches_returns_empty_list(stac_api: FakeStacApi, tiny_grid: Grid):
    provider = provider_for(stac_api)
    assert provider.search(tiny_grid.bbox_wgs84, date(2030, 1, 1), date(2030, 1, 31)) == []
    assert provider.search((100.0, -10.0, 100.1, -9.9), TINY_START, TINY_END) == []


def test_stac_read_over_http_matches_local_read(stac_api: FakeStacApi, tiny_archive: Path, tiny_grid: Grid):
    scene = provider_for(stac_api).search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)[1]
    local_scene = next(
        s
        for s in LocalArchiveProvider(tiny_archive).search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)
        if s.scene_id == scene.scene_id
    )

    remote = provider_for(stac_api).read(scene, tiny_grid, BANDS)
    local = LocalArchiveProvider(tiny_archive).read(local_scene, tiny_grid, BANDS)

    assert remote.dims == ("band", "y", "x")
    assert remote.shape == (7, tiny_grid.height, tiny_grid.width)
    np.testing.assert_array_equal(remote.values, local.values)
    assert np.isfinite(remote.sel(band="B04").values).all()
    # GDAL read the COGs with range requests, answered 206 Partial Content.
    gets = [r for r in stac_api.cog_requests if r[0] == "GET"]
    assert len(gets) >= len(BANDS)
    assert all(rng is not None and rng.startswith("bytes=") and status == 206 for _, _, rng, status in gets)


def test_stac_read_of_missing_cog_raises_scene_unavailable(stac_api: FakeStacApi, tiny_grid: Grid):
    provider = provider_for(stac_api, retries=0)
    scene = provider.search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)[0]
    rel = scene.asset("B08").href.split("/cogs/", 1)[1]
    stac_api.missing_cogs.add(rel)
    with pytest.raises(SceneUnavailableError, match=r"B08\.tif"):
        provider.read(scene, tiny_grid, ["B08"])


@pytest.mark.parametrize("fault", [503, 1.0], ids=["http-503", "timeout"])
def test_stac_search_retries_a_failed_request_then_succeeds(
    stac_api: FakeStacApi, tiny_grid: Grid, fault: int | float, caplog: pytest.LogCaptureFixture
):
    stac_api.faults.append(fault)
    provider = provider_for(stac_api, timeout_s=0.3, retries=2)

    scenes = provider.search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)

    assert len(scenes) == 4
    assert "retry 1 of 2" in caplog.text


def test_stac_search_persistent_500_raises_unavailable_with_url_and_status(stac_api: FakeStacApi, tiny_grid: Grid):
    stac_api.always_fail = 500
    provider = provider_for(stac_api, retries=2, backoff_s=0.01)

    with pytest.raises(ProviderUnavailableError) as info:
        provider.search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)

    message = str(info.value)
    assert stac_api.url in message
    assert "HTTP 500" in message
    assert "3 time(s)" in message


def test_stac_search_401_raises_auth_error_without_retrying(stac_api: FakeStacApi, tiny_grid: Grid):
    stac_api.faults.extend([401, 401, 401])
    with pytest.raises(ProviderAuthError, match="HTTP 401"):
        provider_for(stac_api).search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)
    assert stac_api.faults == [401, 401]


def test_stac_provider_unreachable_raises_unavailable():
    provider = StacApiProvider("http://127.0.0.1:9/stac", timeout_s=0.5, retries=1, backoff_s=0.0)
    with pytest.raises(ProviderUnavailableError, match=r"127\.0\.0\.1:9/stac.*no response"):
        provider.search((11.0, 48.0, 11.1, 48.1), TINY_START, TINY_END)


def test_load_datacube_through_stac_matches_local(stac_api: FakeStacApi, tiny_archive: Path, tiny_grid: Grid):
    remote, remote_records = load_datacube(provider_for(stac_api), tiny_grid, TINY_START, TINY_END, site_id="tiny")
    local, local_records = load_datacube(
        LocalArchiveProvider(tiny_archive), tiny_grid, TINY_START, TINY_END, site_id="tiny"
    )

    assert [(r.scene_id, r.used, r.cloud_pct) for r in remote_records] == [
        (r.scene_id, r.used, r.cloud_pct) for r in local_records
    ]
    assert remote.sizes["time"] >= 1
    assert remote.attrs["provider"] == "stac"
    for var in ("B02", "B04", "B08", "B11", "valid"):
        np.testing.assert_array_equal(remote[var].values, local[var].values)


def _split_into_tiles(archive: Path, grid: Grid, out: Path, cloud_west: float, cloud_east: float) -> str:
    """Copy the archive's second scene as two items of one pass: a west and an east tile, overlapping.

    The west tile holds columns [0, 60 %), the east one [40 %, 100 %); in the overlap the east
    tile's B04 is a marker (DN 5000), so a test can see which tile won. Returns the scene id.
    """
    import json

    import rasterio
    from affine import Affine

    from imagery.cog import write_cog

    item_path = sorted(archive.glob("*/*/*.json"))[1]
    doc = json.loads(item_path.read_text())
    w = grid.width
    tiles = {"W": (0, int(0.6 * w), cloud_west, 0), "E": (int(0.4 * w), w, cloud_east, 3)}
    for name, (c0, c1, cloud, seconds) in tiles.items():
        tile_grid = Grid(grid.crs, grid.transform @ Affine.translation(c0, 0), c1 - c0, grid.height)
        tile_id = f"{doc['id']}_T{name}"
        tile_dir = out / "site" / tile_id
        for band in doc["assets"]:
            with rasterio.open(item_path.parent / f"{band}.tif") as src:
                data = src.read(1)[:, c0:c1]
            if name == "E" and band == "B04":
                data[:, : int(0.6 * w) - c0] = 5000
            write_cog(tile_dir / f"{band}.tif", data, tile_grid, nodata=0, categorical=band == "SCL")
        when = datetime.fromisoformat(doc["properties"]["datetime"].replace("Z", "+00:00"))
        props = dict(doc["properties"], datetime=(when + timedelta(seconds=seconds)).isoformat())
        props["eo:cloud_cover"] = cloud
        tile = dict(doc, id=tile_id, bbox=list(tile_grid.bbox_wgs84), properties=props)
        (tile_dir / f"{tile_id}.json").write_text(json.dumps(tile))
    return str(doc["id"])


@pytest.mark.parametrize(("cloud_west", "cloud_east"), [(5.0, 30.0), (30.0, 5.0)])
def test_stac_merges_two_tiles_of_one_pass_least_cloudy_first(
    http_server: HTTPServer, tiny_archive: Path, tiny_grid: Grid, tmp_path: Path, cloud_west: float, cloud_east: float
):
    scene_id = _split_into_tiles(tiny_archive, tiny_grid, tmp_path, cloud_west, cloud_east)
    api = FakeStacApi(http_server, tmp_path).install()
    scenes = provider_for(api).search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)
    assert [s.scene_id for s in scenes] == [f"{scene_id}_TE+{scene_id}_TW"]
    merged = scenes[0]
    assert [p.cloud_pct for p in merged.parts] == sorted([cloud_west, cloud_east])
    assert merged.cloud_pct == pytest.approx(17.5)
    unmerged = provider_for(api, merge_tiles=False).search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)
    assert len(unmerged) == 2

    original = next(
        s for s in LocalArchiveProvider(tiny_archive).search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)
        if s.scene_id == scene_id
    )  # fmt: skip
    full = LocalArchiveProvider(tiny_archive).read(original, tiny_grid, BANDS)
    mosaic = provider_for(api).read(merged, tiny_grid, BANDS)
    overlap = slice(int(0.4 * tiny_grid.width), int(0.6 * tiny_grid.width))
    # Every pixel is covered by one tile or the other: the mosaic has no holes.
    assert np.isfinite(mosaic.sel(band="B04").values).all()
    assert (mosaic.sel(band="SCL").values > 0).all()
    # Outside the overlap, and in it for every band but the marked one, the mosaic is the scene.
    np.testing.assert_array_equal(mosaic.sel(band="B08").values, full.sel(band="B08").values)
    np.testing.assert_array_equal(mosaic.sel(band="SCL").values, full.sel(band="SCL").values)
    b04 = mosaic.sel(band="B04").values
    np.testing.assert_array_equal(b04[:, : overlap.start], full.sel(band="B04").values[:, : overlap.start])
    marker = (5000 - 1000) / 10000
    if cloud_west < cloud_east:  # the west tile wins the overlap: no marker there
        np.testing.assert_array_equal(b04[:, overlap], full.sel(band="B04").values[:, overlap])
    else:
        np.testing.assert_allclose(b04[:, overlap], marker, atol=1e-6)
