"""SentinelHubProvider against a local Sentinel Hub (token, Catalog and Process APIs) driven by sentinelhub-py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pytest_httpserver import HTTPServer

from geo import Grid
from imagery.cube import load_datacube
from imagery.errors import MissingBandError, ProviderAuthError, ProviderUnavailableError, SceneUnavailableError
from imagery.providers.base import BandAsset, SceneProvider, SceneRef
from imagery.providers.local import LocalArchiveProvider
from imagery.providers.sentinelhub import SentinelHubProvider, _passes, evalscript_for
from tests.imagery.conftest import TINY_END, TINY_START
from tests.imagery.sentinelhub_fake import FakeSentinelHub

BANDS = ["B02", "B03", "B04", "B08", "B11", "B12", "SCL"]


@pytest.fixture
def sentinel_hub(http_server: HTTPServer, tiny_archive: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSentinelHub:
    # oauthlib refuses a plain-http token URL unless told this is a local test server.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    return FakeSentinelHub(http_server, tiny_archive).install()


def provider_for(fake: FakeSentinelHub, secret: str = "s3cret", **kwargs: object) -> SentinelHubProvider:
    options: dict[str, object] = {"timeout_s": 5.0, "retries": 1, "backoff_s": 0.01, "page_size": 3, **kwargs}
    return SentinelHubProvider("sitewatch", secret, fake.base_url, **options)  # type: ignore[arg-type]


@pytest.mark.integration
def test_sentinelhub_search_returns_scenes_across_catalog_pages(
    sentinel_hub: FakeSentinelHub, tiny_archive: Path, tiny_grid: Grid
):
    provider = provider_for(sentinel_hub)
    assert isinstance(provider, SceneProvider)

    scenes = provider.search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)

    local = LocalArchiveProvider(tiny_archive).search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)
    assert [(s.scene_id, s.acquired_at_utc, s.cloud_pct) for s in scenes] == [
        (s.scene_id, s.acquired_at_utc, s.cloud_pct) for s in local
    ]
    assert all(s.provider == "sentinelhub" and s.missing_bands(BANDS) == [] for s in scenes)
    first, second = sentinel_hub.catalog_requests
    assert first["collections"] == ["sentinel-2-l2a"]
    assert first["limit"] == 3
    assert "next" not in first
    assert second["next"] == 3
    assert first["datetime"].startswith("2025-06-01T00:00:00")
    assert first["datetime"].split("/")[1].startswith("2025-06-20")
    np.testing.assert_allclose(first["bbox"], tiny_grid.bbox_wgs84)
    assert sentinel_hub.token_requests == 1


@pytest.mark.integration
def test_sentinelhub_read_returns_local_pixels_on_the_site_grid(
    sentinel_hub: FakeSentinelHub, tiny_archive: Path, tiny_grid: Grid
):
    provider = provider_for(sentinel_hub)
    scene = provider.search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)[2]
    local = LocalArchiveProvider(tiny_archive)
    local_scene = next(
        s for s in local.search(tiny_grid.bbox_wgs84, TINY_START, TINY_END) if s.scene_id == scene.scene_id
    )

    da = provider.read(scene, tiny_grid, BANDS)

    np.testing.assert_array_equal(da.values, local.read(local_scene, tiny_grid, BANDS).values)
    assert da.dims == ("band", "y", "x")
    assert list(da.band.values) == BANDS
    assert np.isfinite(da.sel(band="B08").values).all()
    assert (da.sel(band="SCL").values > 0).all()
    (body,) = sentinel_hub.process_requests
    assert body["input"]["bounds"]["properties"]["crs"].endswith(tiny_grid.crs.split(":")[1])
    np.testing.assert_allclose(body["input"]["bounds"]["bbox"], tiny_grid.bounds)
    assert (body["output"]["width"], body["output"]["height"]) == (tiny_grid.width, tiny_grid.height)
    data = body["input"]["data"][0]
    assert data["type"] == "sentinel-2-l2a"
    assert data["processing"]["harmonizeValues"] is True
    assert 'sampleType: "FLOAT32"' in body["evalscript"]


@pytest.mark.integration
def test_sentinelhub_wrong_secret_raises_auth_error_naming_the_settings(sentinel_hub: FakeSentinelHub, tiny_grid: Grid):
    with pytest.raises(ProviderAuthError) as info:
        provider_for(sentinel_hub, secret="wrong").search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)
    message = str(info.value)
    assert "SITEWATCH_SENTINELHUB_CLIENT_ID" in message
    assert "SITEWATCH_SENTINELHUB_CLIENT_SECRET" in message
    assert "401" in message
    assert "invalid_client" in message
    assert sentinel_hub.catalog_requests == []


@pytest.mark.integration
@pytest.mark.parametrize(("status", "error"), [(403, ProviderAuthError), (500, SceneUnavailableError)])
def test_sentinelhub_process_failure_maps_to_our_errors(
    sentinel_hub: FakeSentinelHub, tiny_grid: Grid, status: int, error: type[Exception]
):
    provider = provider_for(sentinel_hub)
    scene = provider.search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)[0]
    sentinel_hub.process_status = status
    with pytest.raises(error, match=f"HTTP {status}") as info:
        provider.read(scene, tiny_grid, ["SCL"])
    assert f"{sentinel_hub.base_url}/api/v1/process" in str(info.value)


@pytest.mark.integration
def test_sentinelhub_plain_http_token_url_needs_the_test_switch(
    sentinel_hub: FakeSentinelHub, tiny_grid: Grid, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT")
    with pytest.raises(ProviderUnavailableError, match="not https"):
        provider_for(sentinel_hub).search(tiny_grid.bbox_wgs84, TINY_START, TINY_END)


@pytest.mark.integration
def test_load_datacube_through_sentinelhub_matches_local(
    sentinel_hub: FakeSentinelHub, tiny_archive: Path, tiny_grid: Grid
):
    remote, remote_records = load_datacube(provider_for(sentinel_hub), tiny_grid, TINY_START, TINY_END, site_id="t")
    local, local_records = load_datacube(
        LocalArchiveProvider(tiny_archive), tiny_grid, TINY_START, TINY_END, site_id="t"
    )
    assert [(r.scene_id, r.used) for r in remote_records] == [(r.scene_id, r.used) for r in local_records]
    for var in ("B04", "B11", "valid"):
        np.testing.assert_array_equal(remote[var].values, local[var].values)


def test_evalscript_returns_requested_bands_with_scl_as_classes():
    script = evalscript_for(["B04", "SCL"])
    assert 'bands: ["B04", "SCL", "dataMask"]' in script
    assert 'units: ["REFLECTANCE", "DN", "DN"]' in script
    assert "return [s.B04, s.SCL];" in script
    assert "return [NaN, 0];" in script
    assert "bands: 2" in script


def _ref(scene_id: str, when: datetime, cloud: float) -> SceneRef:
    return SceneRef("sentinelhub", scene_id, when, (11.0, 48.0, 11.1, 48.1), cloud, 10.0, {"B04": BandAsset("x/B04")})


def test_items_of_one_pass_merge_into_one_scene():
    t = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
    refs = [
        _ref("T32UPU", t + timedelta(seconds=4), 20.0),
        _ref("T32UNU", t, 5.0),
        _ref("later", t + timedelta(days=5), 1.0),
    ]
    scenes = _passes(refs)
    assert [s.scene_id for s in scenes] == ["T32UNU", "later"]
    assert scenes[0].properties["sitewatch:items"] == ["T32UNU", "T32UPU"]
    assert scenes[0].cloud_pct == 20.0


def test_read_unknown_band_raises_missing_band_before_any_request():
    provider = SentinelHubProvider("id", "secret", "http://127.0.0.1:9")
    scene = _ref("x", datetime(2025, 6, 2, tzinfo=UTC), 0.0)
    with pytest.raises(MissingBandError):
        provider.read(scene, Grid("EPSG:32632", Affine(10, 0, 500_000, 0, -10, 5_300_000), 2, 2), ["B08"])
