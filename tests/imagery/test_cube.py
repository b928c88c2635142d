import shutil
from datetime import date
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from geo import Grid
from imagery.cache import SceneCache
from imagery.cube import load_datacube
from imagery.errors import ProviderAuthError, SceneUnavailableError
from imagery.providers.local import LocalArchiveProvider
from tests.imagery.conftest import ARCHIVE_END, ARCHIVE_START

BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]


def _planes(h=20, w=20, **kw):
    base = {"B02": 0.05, "B03": 0.07, "B04": 0.06, "B08": 0.35, "B11": 0.18, "B12": 0.1, "SCL": 4}
    base.update(kw)
    return {k: np.full((h, w), v, np.float32) for k, v in base.items()}


def test_cube_has_dims_crs_bands_and_a_record_per_scene(archive: Path, hall_grid: Grid, hall_site):
    p = LocalArchiveProvider(archive)
    ds, records = load_datacube(p, hall_grid, ARCHIVE_START, ARCHIVE_END, site_id=hall_site.id, max_cloud_pct=100)
    n = len(p.search(hall_grid.bbox_wgs84, ARCHIVE_START, ARCHIVE_END))
    assert len(records) == n
    used = [r for r in records if r.used]
    assert ds.sizes["time"] == len(used)
    assert (ds.sizes["y"], ds.sizes["x"]) == hall_grid.shape
    assert set(BANDS) | {"valid"} <= set(ds.data_vars)
    assert ds["B08"].dtype == np.float32
    assert ds["valid"].dtype == bool
    assert ds.rio.crs.to_string() == hall_grid.crs
    assert tuple(ds.rio.transform())[:6] == tuple(hall_grid.transform)[:6]
    assert list(ds["scene_id"].values) == [r.scene_id for r in used]
    assert all(r.site_id == hall_site.id and r.provider == "local" for r in records)
    assert used[0].meta["processing_baseline"] == "04.00"
    assert used[0].meta["offset"] == pytest.approx(-0.1)
    # Harmonised: reflectance, not DN.
    assert 0 < float(ds["B08"].where(ds["valid"]).mean()) < 1


def test_cloudy_scenes_are_skipped_with_reason(archive: Path, hall_grid: Grid):
    p = LocalArchiveProvider(archive)
    ds, records = load_datacube(p, hall_grid, ARCHIVE_START, ARCHIVE_END, site_id="s", max_cloud_pct=5)
    skipped = [r for r in records if not r.used]
    assert skipped, "the fixture archive has cloudy scenes"
    assert all(r.reason.startswith("too cloudy") and r.cloud_pct > 5 for r in skipped)
    assert all(r.cloud_pct <= 5 for r in records if r.used)
    assert ds.sizes["time"] == len(records) - len(skipped)


def test_lazy_cube_matches_eager_cube(archive: Path, hall_grid: Grid):
    p = LocalArchiveProvider(archive)
    eager, rec_e = load_datacube(p, hall_grid, ARCHIVE_START, ARCHIVE_END, site_id="s", chunked=False)
    lazy, rec_l = load_datacube(p, hall_grid, ARCHIVE_START, ARCHIVE_END, site_id="s", chunked=True, block_px=32)
    assert isinstance(lazy["B04"].data, da.Array)
    assert isinstance(lazy["valid"].data, da.Array)
    assert lazy["B04"].data.chunksize[1:] == (32, 32)
    np.testing.assert_array_equal(lazy["B04"].values, eager["B04"].values)
    np.testing.assert_array_equal(lazy["valid"].values, eager["valid"].values)
    assert [r.used for r in rec_l] == [r.used for r in rec_e]


def test_bad_scenes_are_recorded_and_the_rest_loads(tmp_path: Path, archive: Path, hall_grid: Grid):
    root = tmp_path / "a"
    shutil.copytree(archive, root)
    p = LocalArchiveProvider(root)
    scenes = p.search(hall_grid.bbox_wgs84, ARCHIVE_START, ARCHIVE_END)
    good, _ = load_datacube(p, hall_grid, ARCHIVE_START, ARCHIVE_END, site_id="s", max_cloud_pct=100)
    # Truncated band, deleted band file, corrupt SCL.
    b04 = Path(scenes[0].assets["B04"].href)
    b04.write_bytes(b04.read_bytes()[:400])
    Path(scenes[1].assets["B08"].href).unlink()
    Path(scenes[2].assets["SCL"].href).write_bytes(b"garbage")
    ds, records = load_datacube(p, hall_grid, ARCHIVE_START, ARCHIVE_END, site_id="s", max_cloud_pct=100)
    by_id = {r.scene_id: r for r in records}
    assert by_id[scenes[0].scene_id].reason.startswith("corrupt file")
    assert by_id[scenes[1].scene_id].reason.startswith("read error")
    assert by_id[scenes[2].scene_id].reason.startswith("corrupt file")
    assert ds.sizes["time"] == good.sizes["time"] - 3
    assert all(r.used for r in records[3:])


def test_scene_without_a_band_is_skipped_as_missing_band(array_provider):
    array_provider.add(0, _planes())
    planes = _planes()
    del planes["B12"]
    array_provider.add(5, planes)
    ds, records = load_datacube(array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 2, 1), site_id="s")
    assert [r.used for r in records] == [True, False]
    assert records[1].reason == "missing band: B12"
    assert ds.sizes["time"] == 1


def test_all_cloud_scene_is_skipped(array_provider):
    array_provider.add(0, _planes(SCL=9, B02=0.5))
    array_provider.add(5, _planes())
    ds, records = load_datacube(array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 2, 1), site_id="s")
    assert records[0].used is False
    assert "all cloud" in records[0].reason
    assert records[0].cloud_pct == 100.0
    assert records[0].valid_fraction == 0.0
    assert ds.sizes["time"] == 1


def test_scene_with_no_data_over_grid_is_skipped_as_no_overlap(array_provider):
    array_provider.add(0, _planes(SCL=0))
    _, records = load_datacube(array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 2, 1), site_id="s")
    assert records[0].reason.startswith("no overlap")


def test_read_error_is_recorded_but_auth_error_fails_the_call(array_provider):
    a = array_provider.add(0, _planes())
    array_provider.add(5, _planes())
    array_provider.fail[a.scene_id] = SceneUnavailableError("HTTP 503")
    _ds, records = load_datacube(array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 2, 1), site_id="s")
    assert records[0].reason == "read error: HTTP 503"
    assert records[1].used
    array_provider.fail[a.scene_id] = ProviderAuthError("401")
    with pytest.raises(ProviderAuthError):
        load_datacube(array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 2, 1), site_id="s")


def test_empty_search_gives_empty_cube(archive: Path, hall_grid: Grid):
    ds, records = load_datacube(
        LocalArchiveProvider(archive), hall_grid, date(2031, 1, 1), date(2031, 2, 1), site_id="s"
    )
    assert records == []
    assert ds.sizes["time"] == 0
    assert (ds.sizes["y"], ds.sizes["x"]) == hall_grid.shape
    assert ds["valid"].dtype == bool


def test_planted_roof_labelled_cloud_stays_valid_in_cube(array_provider):
    for t in range(8):
        planes = _planes()
        if t >= 2:
            planes["B11"][5:9, 5:9] = 0.42
            planes["B02"][5:9, 5:9] = 0.40
            planes["SCL"][5:9, 5:9] = 9  # SCL's mistake: a new white roof called cloud
        array_provider.add(5 * t, planes)
    ds, records = load_datacube(array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 3, 1), site_id="s")
    assert all(r.used for r in records)
    assert ds["valid"].values.all()
    raw, _ = load_datacube(
        array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 3, 1), site_id="s", fix_bright_objects=False
    )
    assert not raw["valid"].values[2:, 5:9, 5:9].any()
    assert records[-1].meta["bright_objects_unmasked_px"] == 16


def test_cache_is_reused_across_instances(tmp_path: Path, array_provider):
    for t in range(3):
        array_provider.add(5 * t, _planes(B08=0.3 + 0.01 * t))
    first, _ = load_datacube(
        array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 2, 1), site_id="s", cache=SceneCache(tmp_path)
    )
    reads = array_provider.reads
    again, records = load_datacube(
        array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 2, 1), site_id="s", cache=SceneCache(tmp_path)
    )
    assert array_provider.reads == reads
    assert [r.meta["cache"] for r in records] == ["hit"] * 3
    np.testing.assert_array_equal(first["B08"].values, again["B08"].values)
    files = list(tmp_path.rglob("*.tif"))
    assert len(files) == 3
    assert array_provider.grid.key() in str(files[0])


def test_cache_drops_corrupt_file_and_ignores_temp_files(tmp_path: Path, array_provider):
    scene = array_provider.add(0, _planes())
    cache = SceneCache(tmp_path)
    path = cache.path_for(scene.provider, scene.scene_id, array_provider.grid)
    path.parent.mkdir(parents=True)
    path.with_name(f".{path.name}.abc.tmp").write_bytes(b"half-written")
    assert cache.get(scene, array_provider.grid, ["B02"]) is None
    path.write_bytes(b"corrupt")
    assert cache.get(scene, array_provider.grid, ["B02"]) is None
    assert not path.exists()
    _, records = load_datacube(
        array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 2, 1), site_id="s", cache=cache
    )
    assert records[0].used
    assert path.exists()
    assert cache.get(scene, array_provider.grid, ["B02", "SCL"]) is not None


def test_planted_roof_stays_valid_when_the_cube_is_built_lazily_over_budget(array_provider):
    for t in range(8):
        planes = _planes()
        if t >= 2:
            planes["B11"][5:9, 5:9] = 0.42
            planes["SCL"][5:9, 5:9] = 9  # a new white roof called cloud
        if t == 4:
            planes["SCL"][14:17, 14:17] = 9  # a real cloud, once
        array_provider.add(5 * t, planes)
    # A budget far below one scene: built lazily, and no screening SCL is kept for the read.
    ds, records = load_datacube(
        array_provider, array_provider.grid, date(2025, 1, 1), date(2025, 3, 1), site_id="s", memory_budget_mb=0.001
    )
    assert isinstance(ds["valid"].data, da.Array)
    valid = ds["valid"].values
    assert valid[:, 5:9, 5:9].all()
    assert not valid[4, 14:17, 14:17].any()
    assert valid.sum() == valid.size - 9
    assert all(r.used for r in records)
