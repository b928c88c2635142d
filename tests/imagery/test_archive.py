import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geo import Grid
from imagery.archive import write_archive
from imagery.cog import atomic_path, write_cog, write_text_atomic
from imagery.simulate import footprint_labels
from tests.imagery.conftest import ARCHIVE_END, ARCHIVE_START, small_site, utm_grid

BANDS = ("B02", "B03", "B04", "B08", "B11", "B12", "SCL")


def _items(root: Path, site_id: str) -> list[Path]:
    return sorted((root / site_id).glob("*/*.json"))


def test_archive_has_the_agreed_layout(archive: Path, hall_site):
    assert (archive / "catalog.json").is_file()
    assert (archive / hall_site.id / "collection.json").is_file()
    items = _items(archive, hall_site.id)
    assert len(items) >= 8
    for item in items:
        scene_id = item.stem
        assert item.parent.name == scene_id
        assert sorted(p.name for p in item.parent.glob("*.tif")) == sorted(f"{b}.tif" for b in BANDS)
    truth = archive / "truth" / hall_site.id
    assert (truth / "footprints.tif").is_file()
    with (truth / "progress.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["date", "percent", "phase_0", "phase_1", "phase_2", "phase_3"]
    assert len(rows) == len(items)
    for row in rows:
        assert (truth / f"change_{row['date'].replace('-', '')}.tif").is_file()
    assert not list(archive.rglob("*.tmp"))


def test_catalog_is_self_contained_with_relative_links(archive: Path, hall_site):
    item = json.loads(_items(archive, hall_site.id)[0].read_text())
    assert all(not a["href"].startswith("/") for a in item["assets"].values())
    cat = json.loads((archive / "catalog.json").read_text())
    assert {ln["href"] for ln in cat["links"] if ln["rel"] == "child"} == {f"./{hall_site.id}/collection.json"}


def test_items_record_baseline_cloud_cover_and_harmonisation(archive: Path, hall_site):
    item = json.loads(_items(archive, hall_site.id)[0].read_text())
    props = item["properties"]
    assert props["s2:processing_baseline"] == "04.00"
    assert props["proj:epsg"] == 32633
    assert 0 <= props["eo:cloud_cover"] <= 100
    rb = item["assets"]["B04"]["raster:bands"][0]
    assert (rb["scale"], rb["offset"], rb["nodata"]) == (0.0001, -0.1, 0)


def test_bands_are_cogs_on_the_site_grid(archive: Path, hall_site, hall_grid: Grid):
    tif = _items(archive, hall_site.id)[0].parent / "B08.tif"
    with rasterio.open(tif) as src:
        assert src.crs.to_string() == hall_grid.crs
        assert src.transform == hall_grid.transform
        assert (src.width, src.height) == (hall_grid.width, hall_grid.height)
        assert src.dtypes[0] == "uint16"
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    with rasterio.open(tif.with_name("SCL.tif")) as src:
        assert src.dtypes[0] == "uint8"


def test_truth_masks_stay_inside_footprints(archive: Path, hall_site, hall_grid: Grid):
    truth = archive / "truth" / hall_site.id
    with rasterio.open(truth / "footprints.tif") as src:
        labels = src.read(1)
    assert np.array_equal(labels, footprint_labels(hall_site, hall_grid))
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    last = sorted(truth.glob("change_*.tif"))[-1]
    with rasterio.open(last) as src:
        change = src.read(1)
    assert change.max() == 1
    assert not change[labels == 0].any()


def test_second_site_is_merged_into_existing_catalog(tmp_path: Path):
    write_archive(tmp_path, [small_site("a")], ARCHIVE_START, ARCHIVE_START, seed=1)
    write_archive(tmp_path, [small_site("b", lat=50.0)], ARCHIVE_START, ARCHIVE_END, seed=1)
    cat = json.loads((tmp_path / "catalog.json").read_text())
    assert {ln["href"] for ln in cat["links"] if ln["rel"] == "child"} == {"./a/collection.json", "./b/collection.json"}


def test_failed_atomic_write_leaves_previous_file_and_no_temp(tmp_path: Path):
    target = write_text_atomic(tmp_path / "progress.csv", "old\n")

    def crash_mid_write() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        crash_mid_write()
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]


def test_write_cog_rejects_array_off_grid_and_keeps_old(tmp_path: Path):
    grid = utm_grid(8, 8)
    path = write_cog(tmp_path / "x.tif", np.ones((8, 8), np.uint16), grid)
    with pytest.raises(ValueError, match="does not match grid"):
        write_cog(path, np.ones((4, 4), np.uint16), grid)
    with rasterio.open(path) as src:
        assert src.read(1).sum() == 64
