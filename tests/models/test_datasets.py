import json

import numpy as np
import pytest

from models.datasets import FORMATS, open_dataset
from models.datasets.sim import reflectance_scaling
from models.errors import DatasetError
from tests.conftest import SHARED_DATA
from tests.models.conftest import planted_pair, write_sim


def _check_interface(pair):
    c, h, w = pair.before.shape
    assert pair.before.dtype == np.float32
    assert pair.after.dtype == np.float32
    assert pair.after.shape == (c, h, w)
    assert pair.label.shape == (h, w)
    assert pair.label.dtype == np.uint8
    assert set(np.unique(pair.label)) <= {0, 1}
    assert isinstance(pair.name, str)


def test_levir_reader_reads_pngs_and_labels(levir_dir):
    ds = open_dataset("levir", levir_dir)
    assert ds.names == ["tile_0", "tile_1", "tile_2"]
    pair = ds[0]
    _check_interface(pair)
    expected, _ = planted_pair("tile_0", seed=0)
    assert np.array_equal(pair.label, expected.label)
    assert 0.0 <= pair.before.min()
    assert pair.after.max() <= 1.0


def test_levir_reader_refuses_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="A/, B/, label/"):
        open_dataset("levir", tmp_path)


def test_dsifn_uses_the_levir_layout(levir_dir):
    ds = open_dataset("dsifn", levir_dir, names=["tile_1"])
    assert ds.format == "dsifn"
    assert len(ds) == 1


def test_sztaki_reader_finds_nested_folders_and_binarises_grey(sztaki_dir):
    ds = open_dataset("sztaki", sztaki_dir)
    assert ds.names == ["Region/1", "Region/2", "Solo"]
    pair = ds.pair("Region/1")
    _check_interface(pair)
    assert pair.label[0, 0] == 0
    assert ds.gsd_m == 1.5


def test_oscd_reader_resamples_onto_imgs1_grid_and_maps_labels(oscd_dir):
    ds = open_dataset("oscd", oscd_dir)
    assert ds.names == ["tinytown"]
    assert ds.bands == ("B02", "B03", "B04", "B08", "B11", "B12")
    pair = ds[0]
    _check_interface(pair)
    expected, _ = planted_pair("tinytown", size=36, bands=1, seed=3)
    assert pair.before.shape == (6, 36, 36)
    assert pair.after.shape == (6, 36, 36)  # imgs_2 was 34x34 on the same bounds
    assert np.array_equal(pair.label, expected.label)
    assert np.allclose(pair.before[0], expected.before[0], atol=1e-3)
    # The planted square is visible in the resampled date-2 10 m band.
    assert pair.after[0][pair.label == 1].mean() > 0.8
    assert ds.dates("tinytown") == ("20200101", "20210101")


def test_oscd_reader_selects_any_band_subset(oscd_dir):
    ds = open_dataset("oscd", oscd_dir, bands=("B8A", "B01"))
    assert ds[0].before.shape == (2, 36, 36)


def test_oscd_reader_rejects_unknown_band(oscd_dir):
    with pytest.raises(DatasetError, match="unknown Sentinel-2 band"):
        open_dataset("oscd", oscd_dir, bands=("B99",))


def test_sim_reader_pairs_earliest_scene_with_truth_dates_and_applies_offset(sim_dir):
    ds = open_dataset("sim", sim_dir)
    assert ds.names == ["site-a/20240301", "site-a/20240401"]
    pair = ds.pair("site-a/20240301")
    _check_interface(pair)
    expected, _ = planted_pair("site-a", bands=6, seed=5)
    assert np.allclose(pair.before, expected.before, atol=2e-4)
    assert np.array_equal(pair.label, expected.label)
    assert pair.valid is not None
    assert pair.valid.all()
    cloudy = ds.pair("site-a/20240401")
    assert cloudy.valid is not None
    assert not cloudy.valid[:4].any()
    assert cloudy.valid[4:].all()


def test_sim_reader_refuses_archive_without_truth(tmp_path):
    with pytest.raises(DatasetError, match="truth"):
        open_dataset("sim", tmp_path)


def test_reflectance_scaling_conventions():
    standard = {"assets": {"B04": {"raster:bands": [{"scale": 0.0001, "offset": -0.1}]}}}
    assert reflectance_scaling(standard, "B04") == (0.0001, -0.1)
    dn_offset = {"assets": {"B04": {}}, "properties": {"s2:boa_add_offset": -1000}}
    scale, offset = reflectance_scaling(dn_offset, "B04")
    assert 2000 * scale + offset == pytest.approx(0.1)
    assert reflectance_scaling({"assets": {}}, "B04") == (1e-4, 0.0)


def test_sim_reader_applies_standard_raster_extension(tmp_path):
    root = write_sim(tmp_path / "s", offset_dn=0)
    for item_path in root.glob("site-a/*/*.json"):
        item = json.loads(item_path.read_text())
        for asset in item["assets"].values():
            asset["raster:bands"] = [{"scale": 0.0001, "offset": 0.0}]
        item_path.write_text(json.dumps(item))
    expected, _ = planted_pair("site-a", bands=6, seed=5)
    assert np.allclose(open_dataset("sim", root)[0].before, expected.before, atol=2e-4)


def test_open_dataset_rejects_unknown_format(tmp_path):
    assert "oscd" in FORMATS
    with pytest.raises(DatasetError, match="unknown data set format"):
        open_dataset("xbd", tmp_path)


@pytest.mark.sample_data
def test_shared_oscd_city_with_smaller_imgs2_reads_on_imgs1_grid():
    ds = open_dataset("oscd", SHARED_DATA / "oscd_s2", names=["hongkong"])
    pair = ds[0]
    assert pair.before.shape == pair.after.shape == (6, 695, 540)
    assert 0.02 < pair.label.mean() < 0.05


@pytest.mark.sample_data
@pytest.mark.parametrize(
    ("fmt", "folder", "count"),
    [("levir", "levir_cd_samples", 7), ("dsifn", "dsifn_cd_samples", 7), ("sztaki", "sztaki_airchange", 6)],
)
def test_shared_photo_sets_open(fmt, folder, count):
    ds = open_dataset(fmt, SHARED_DATA / folder)
    assert len(ds) == count
    _check_interface(ds[0])


def test_sim_label_is_change_since_date_one_when_truth_is_cumulative(tmp_path):
    import rasterio

    root = write_sim(tmp_path / "s")
    truth = root / "truth" / "site-a"
    with rasterio.open(truth / "change_20240301.tif") as src:
        profile, full = src.profile, src.read(1)
    already = np.zeros_like(full)
    already[full == 1] = 1
    already[:, : full.shape[1] // 2] = 0  # left half of the square was built before date 1
    with rasterio.open(truth / "change_20240101.tif", "w", **profile) as dst:
        dst.write(already, 1)
    pair = open_dataset("sim", root).pair("site-a/20240301")
    assert pair.label.sum() == full.sum() - already.sum()
    assert not (pair.label & already).any()
