import json
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geo import Grid
from imagery.errors import (
    ImageryError,
    MissingBandError,
    NoOverlapError,
    ProviderAuthError,
    SceneCorruptError,
    SceneUnavailableError,
)
from imagery.providers.base import BufferedSceneProvider, SceneProvider
from imagery.providers.local import LocalArchiveProvider
from imagery.providers.raster import read_band
from tests.imagery.conftest import ARCHIVE_END, ARCHIVE_START, UTM33, utm_grid, write_tif


def test_local_provider_satisfies_the_protocol(archive: Path):
    assert isinstance(LocalArchiveProvider(archive), SceneProvider)


def test_search_filters_by_dates_and_bbox(archive: Path, hall_grid: Grid):
    p = LocalArchiveProvider(archive)
    everything = p.search(hall_grid.bbox_wgs84, ARCHIVE_START, ARCHIVE_END)
    assert len(everything) == len(list(archive.glob("de-rgb-hall/*/*.json")))
    times = [s.acquired_at_utc for s in everything]
    assert times == sorted(times)
    assert all(t.tzinfo is not None for t in times)
    first_day = times[0].date()
    assert [s.scene_id for s in p.search(hall_grid.bbox_wgs84, first_day, first_day)] == [everything[0].scene_id]
    assert p.search((0.0, 0.0, 0.1, 0.1), ARCHIVE_START, ARCHIVE_END) == []
    assert p.search(hall_grid.bbox_wgs84, date(2030, 1, 1), date(2030, 2, 1)) == []


def test_search_without_catalog_raises_unavailable(tmp_path: Path):
    with pytest.raises(SceneUnavailableError):
        LocalArchiveProvider(tmp_path).search((0, 0, 1, 1), date(2025, 1, 1), date(2025, 2, 1))


def test_read_harmonises_baseline_04_offset(archive: Path, hall_grid: Grid):
    p = LocalArchiveProvider(archive)
    scene = p.search(hall_grid.bbox_wgs84, ARCHIVE_START, ARCHIVE_END)[0]
    da = p.read(scene, hall_grid, ["B08", "SCL"])
    assert da.dims == ("band", "y", "x")
    assert da.dtype == np.float32
    with rasterio.open(scene.assets["B08"].href) as src:
        dn = src.read(1).astype(np.float64)
    np.testing.assert_allclose(da.sel(band="B08").values, (dn - 1000) / 10000, atol=1e-6)
    assert set(np.unique(da.sel(band="SCL").values)) <= set(range(12))


def test_read_into_fills_cube_slices_exactly_like_read(archive: Path, hall_grid: Grid):
    p = LocalArchiveProvider(archive)
    assert isinstance(p, BufferedSceneProvider)
    scene = p.search(hall_grid.bbox_wgs84, ARCHIVE_START, ARCHIVE_END)[1]
    # A grid sticking 5 px out of the files on the left: those pixels have no data.
    shifted = Grid(hall_grid.crs, hall_grid.transform @ Affine.translation(-5, 0), hall_grid.width, hall_grid.height)
    cube = np.full((2, 3, *shifted.shape), -1.0, np.float32)
    p.read_into(scene, shifted, ["B04", "B11", "SCL"], list(cube[1]))
    assert (cube[0] == -1.0).all()  # the neighbouring slice is untouched
    expected = p.read(scene, shifted, ["B04", "B11", "SCL"]).values
    np.testing.assert_array_equal(cube[1], expected)
    assert np.isnan(cube[1, 0, :, :5]).all()
    assert not np.isnan(cube[1, 0, :, 5:]).any()
    assert (cube[1, 2, :, :5] == 0).all()  # SCL no data
    with rasterio.open(scene.assets["B04"].href) as src:
        dn = src.read(1).astype(np.float64)
    np.testing.assert_allclose(cube[1, 0, :, 5:], (dn[:, : shifted.width - 5] - 1000) / 10000, atol=1e-6)


def test_read_into_refuses_a_buffer_of_the_wrong_shape(archive: Path, hall_grid: Grid):
    p = LocalArchiveProvider(archive)
    scene = p.search(hall_grid.bbox_wgs84, ARCHIVE_START, ARCHIVE_END)[0]
    with pytest.raises(ValueError, match="out: expected float32"):
        p.read_into(scene, hall_grid, ["B04"], [np.empty((3, 3), np.float32)])


def test_read_onto_coarser_grid_in_other_crs(archive: Path, hall_grid: Grid):
    p = LocalArchiveProvider(archive)
    scene = p.search(hall_grid.bbox_wgs84, ARCHIVE_START, ARCHIVE_END)[0]
    native = p.read(scene, hall_grid, ["B11"]).values[0]
    left, bottom, right, top = hall_grid.bounds
    # The same area on a 20 m grid in the neighbouring UTM zone (32): reprojected, averaged.
    from rasterio.warp import transform_bounds

    l2, b2, r2, t2 = transform_bounds(UTM33, "EPSG:32632", left, bottom, right, top)
    other = Grid(
        "EPSG:32632", Affine(20, 0, l2 + 100, 0, -20, t2 - 100), int((r2 - l2 - 200) // 20), int((t2 - b2 - 200) // 20)
    )
    warped = p.read(scene, other, ["B11"]).values[0]
    assert not np.isnan(warped).any()
    assert abs(np.nanmean(warped) - np.nanmean(native)) < 0.02


def test_vhr_rgbn_item_of_any_gsd_is_averaged_onto_grid(tmp_path: Path):
    # A 1 m RGBN image with a bright 20 m x 20 m roof aligned on the 10 m grid.
    grid = utm_grid(10, 10)
    fine = Grid(UTM33, Affine(1, 0, 500_000, 0, -1, 5_300_000), 100, 100)
    img = np.full((4, 100, 100), 50, np.uint16)
    img[:, 30:50, 40:60] = 2000
    write_tif(tmp_path / "vhr.tif", img, fine, nodata=None)
    item = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "VHR_1",
        "geometry": None,
        "bbox": list(grid.bbox_wgs84),
        "properties": {"datetime": "2025-05-01T10:00:00Z", "gsd": 1.0},
        "links": [],
        "assets": {
            "image": {
                "href": "./vhr.tif",
                "roles": ["data"],
                "eo:bands": [{"name": n} for n in ("red", "green", "blue", "nir")],
                "raster:bands": [{"scale": 1e-4, "offset": 0.0}] * 4,
            }
        },
    }
    (tmp_path / "VHR_1.json").write_text(json.dumps(item))
    cat = {"type": "Catalog", "id": "c", "stac_version": "1.1.0", "description": "d",
           "links": [{"rel": "item", "href": "./VHR_1.json"}]}  # fmt: skip
    (tmp_path / "catalog.json").write_text(json.dumps(cat))
    p = LocalArchiveProvider(tmp_path)
    [scene] = p.search(grid.bbox_wgs84, date(2025, 5, 1), date(2025, 5, 1))
    assert scene.gsd_m == 1.0
    assert scene.asset("nir").index == 4
    da = p.read(scene, grid, ["nir", "red"])
    nir = da.sel(band="nir").values
    assert np.allclose(nir[3:5, 4:6], 0.2)
    assert np.allclose(nir[0, 0], 0.005)
    assert int((nir > 0.1).sum()) == 4


def test_truncated_geotiff_raises_corrupt(tmp_path: Path):
    grid = utm_grid(64, 64)
    path = write_tif(tmp_path / "b.tif", np.random.default_rng(0).integers(1, 9000, (64, 64)).astype(np.uint16), grid)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(SceneCorruptError):
        read_band(str(path), grid)


def test_garbage_file_raises_corrupt(tmp_path: Path):
    path = tmp_path / "b.tif"
    path.write_bytes(b"not a tiff at all" * 10)
    with pytest.raises(SceneCorruptError):
        read_band(str(path), utm_grid())


def test_missing_file_raises_unavailable(tmp_path: Path):
    with pytest.raises(SceneUnavailableError):
        read_band(str(tmp_path / "nope.tif"), utm_grid())


def test_file_without_crs_raises_corrupt(tmp_path: Path):
    path = write_tif(tmp_path / "b.tif", np.ones((5, 5), np.uint16), utm_grid(5, 5), crs=None)
    with pytest.raises(SceneCorruptError, match="no CRS"):
        read_band(str(path), utm_grid(5, 5))


def test_file_in_other_crs_lands_on_the_right_pixels(tmp_path: Path):
    # A geographic (EPSG:4326) file with one bright block: after warping it must sit where it is on the ground.
    grid = utm_grid(40, 40)
    west, south, east, north = grid.bbox_wgs84
    w = h = 400
    data = np.full((h, w), 100, np.uint16)
    data[100:200, 100:200] = 5000
    tr = Affine((east - west) / w, 0, west, 0, -(north - south) / h, north)
    path = write_tif(tmp_path / "geo.tif", data, Grid("EPSG:4326", tr, w, h), crs="EPSG:4326")
    values, has = read_band(str(path), grid)
    assert has.all()
    bright = values > 2500
    rows, cols = np.nonzero(bright)
    assert 8 <= rows.min() <= 12
    assert 18 <= rows.max() <= 21
    assert 8 <= cols.min() <= 12
    assert 18 <= cols.max() <= 21


def test_file_elsewhere_raises_no_overlap(tmp_path: Path):
    far = Grid(UTM33, Affine(10, 0, 700_000, 0, -10, 5_000_000), 5, 5)
    path = write_tif(tmp_path / "far.tif", np.ones((5, 5), np.uint16), far)
    with pytest.raises(NoOverlapError):
        read_band(str(path), utm_grid())


def test_missing_band_raises_lookup_error(archive: Path, hall_grid: Grid):
    p = LocalArchiveProvider(archive)
    scene = p.search(hall_grid.bbox_wgs84, ARCHIVE_START, ARCHIVE_END)[0]
    with pytest.raises(MissingBandError) as err:
        p.read(scene, hall_grid, ["B05"])
    assert isinstance(err.value, LookupError)
    assert scene.asset("red") is scene.asset("B04")


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (SceneUnavailableError, OSError),
        (SceneCorruptError, OSError),
        (NoOverlapError, ValueError),
        (ProviderAuthError, PermissionError),
        (MissingBandError, LookupError),
    ],
)
def test_errors_are_also_the_fitting_builtin(error, builtin):
    with pytest.raises(builtin):
        raise error("x")
    assert issubclass(error, ImageryError)


def test_scene_times_are_utc(archive: Path, hall_grid: Grid):
    scene = LocalArchiveProvider(archive).search(hall_grid.bbox_wgs84, ARCHIVE_START, ARCHIVE_END)[0]
    assert scene.acquired_at_utc.utcoffset() == datetime(2025, 1, 1, tzinfo=UTC).utcoffset()
    assert scene.processing_baseline == "04.00"
    assert scene.asset("B02").offset == pytest.approx(-0.1)


def test_merge_same_pass_joins_tiles_of_one_pass_only():
    from datetime import timedelta

    from imagery.providers.base import BandAsset, SceneRef
    from imagery.providers.stacitem import merge_same_pass

    t0 = datetime(2025, 6, 1, 10, 20, tzinfo=UTC)

    def ref(scene_id: str, dt_s: float, platform: str, cloud: float | None, west: float) -> SceneRef:
        return SceneRef(
            "stac", scene_id, t0 + timedelta(seconds=dt_s), (west, 48.0, west + 1.0, 49.0), cloud, 10.0,
            {"B04": BandAsset(f"/x/{scene_id}.tif")}, properties={"platform": platform},
        )  # fmt: skip

    scenes = [
        ref("A_T32", 0, "sentinel-2a", 20.0, 11.0),
        ref("A_T33", 4, "sentinel-2a", 10.0, 11.8),  # same pass, next tile east
        ref("B_T32", 30, "sentinel-2b", 5.0, 11.0),  # other satellite: its own scene
        ref("A_T32_next", 5 * 86400, "sentinel-2a", None, 11.0),  # the next pass
    ]
    merged = merge_same_pass(scenes)
    assert [s.scene_id for s in merged] == ["A_T32+A_T33", "B_T32", "A_T32_next"]
    first = merged[0]
    assert [p.scene_id for p in first.parts] == ["A_T33", "A_T32"]  # least cloudy first
    assert first.bbox_wgs84 == (11.0, 48.0, 12.8, 49.0)
    assert first.acquired_at_utc == t0
    assert first.cloud_pct == pytest.approx(15.0)
    assert first.assets["B04"].href == "/x/A_T33.tif"
    assert merged[1].parts == ()
