"""Tiny generated change data: planted bright squares, written in every supported folder layout."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from rasterio.errors import NotGeoreferencedWarning

from models.cdnet import ArchitectureSpec, build_network
from models.checkpoint import ModelCard, save_checkpoint
from models.datasets.base import RGB_BANDS, S2_BANDS, ChangePair
from models.normalization import Normalization

TINY_ARCH = ArchitectureSpec("sitenet", {"widths": [8, 8, 16, 16], "decoder_width": 8, "head_width": 4})


def planted_pair(
    name: str, size: int = 32, bands: int = 3, seed: int = 0, square: int = 8
) -> tuple[ChangePair, tuple[int, int]]:
    """A textured pair in [0, 1] where a bright ``square`` x ``square`` block appears at date 2."""
    rng = np.random.default_rng(seed)
    before = (0.3 + 0.1 * rng.random((bands, size, size))).astype(np.float32)
    after = np.clip(before + 0.01 * rng.standard_normal(before.shape), 0, 1).astype(np.float32)
    y, x = (int(v) for v in rng.integers(2, size - square - 2, 2))
    after[:, y : y + square, x : x + square] = 0.9
    label = np.zeros((size, size), np.uint8)
    label[y : y + square, x : x + square] = 1
    return ChangePair(name, before, after, label), (y, x)


@pytest.fixture
def pairs() -> list[ChangePair]:
    """Three 32x32 RGB pairs, each with one planted 8x8 change square."""
    return [planted_pair(f"p{i}", seed=i)[0] for i in range(3)]


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_levir(root: Path, n: int = 3, size: int = 32) -> Path:
    """LEVIR-CD layout: A/, B/, label/ PNGs (0/255)."""
    for i in range(n):
        pair, _ = planted_pair(f"tile_{i}", size=size, seed=i)
        _png(root / "A" / f"tile_{i}.png", (pair.before.transpose(1, 2, 0) * 255).round().astype(np.uint8))
        _png(root / "B" / f"tile_{i}.png", (pair.after.transpose(1, 2, 0) * 255).round().astype(np.uint8))
        _png(root / "label" / f"tile_{i}.png", pair.label * 255)
    return root


@pytest.fixture
def levir_dir(tmp_path: Path) -> Path:
    return write_levir(tmp_path / "levir")


@pytest.fixture
def sztaki_dir(tmp_path: Path) -> Path:
    """SZTAKI layout: <region>/<n>/{im1,im2,gt}.png plus a pair folder at the top level."""
    root = tmp_path / "sztaki"
    for i, rel in enumerate(["Region/1", "Region/2", "Solo"]):
        pair, _ = planted_pair(rel, seed=10 + i)
        _png(root / rel / "im1.png", (pair.before.transpose(1, 2, 0) * 255).astype(np.uint8))
        _png(root / rel / "im2.png", (pair.after.transpose(1, 2, 0) * 255).astype(np.uint8))
        gt = pair.label * 255
        gt[0, 0] = 100  # an antialiased grey pixel: must read as no change
        _png(root / rel / "gt.png", gt)
    return root


def _tif(path: Path, data: np.ndarray, transform: rasterio.Affine | None, crs: str | None = "EPSG:4326") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile: dict[str, object] = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
    }
    if transform is not None:
        profile.update(transform=transform, crs=crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data, 1)


@pytest.fixture
def oscd_dir(tmp_path: Path) -> Path:
    """OSCD layout, one city: 13 bands at 10/20/60 m; imgs_2 a few pixels smaller; mask 1/2."""
    root = tmp_path / "oscd"
    city = root / "tinytown"
    size = 36
    pixel = 1e-4
    pair, (_y, _x) = planted_pair("tinytown", size=size, bands=1, seed=3)
    resolution = {"B01": 6, "B09": 6, "B10": 6, "B05": 2, "B06": 2, "B07": 2, "B8A": 2, "B11": 2, "B12": 2}
    for date_dir, image, shrink in (("imgs_1", pair.before[0], 0), ("imgs_2", pair.after[0], 2)):
        for band in ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"):
            factor = resolution.get(band, 1)
            n = (size - shrink) // factor
            # Same bounds for both dates; imgs_2 has fewer, larger pixels (as for hongkong / saclay_e).
            step = pixel * size / n
            rows = (np.arange(n) * size / n).astype(int)
            dn = (image[np.ix_(rows, rows)] * 10000).astype(np.uint16)
            _tif(city / date_dir / f"T00XXX_2020_{band}.tif", dn, Affine(step, 0.0, 10.0, 0.0, -step, 50.0))
    _tif(city / "cm" / "tinytown-cm.tif", (pair.label + 1).astype(np.uint8), None)
    (city / "dates.txt").write_text("date_1: 20200101\ndate_2: 20210101\n")
    return root


def write_sim(root: Path, offset_dn: int = -1000, size: int = 32) -> Path:
    """Simulated archive: one site, three scenes; construction square appears in scene 2; cloud in scene 3."""
    site = "site-a"
    pair, (_y, _x) = planted_pair(site, size=size, bands=len(S2_BANDS), seed=5)
    transform = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_650_000.0)
    scenes = [("S1_20240101", "2024-01-01", pair.before), ("S2_20240301", "2024-03-01", pair.after)]
    scenes.append(("S3_20240401", "2024-04-01", pair.after))
    for scene_id, day, image in scenes:
        folder = root / site / scene_id
        for b, band in enumerate(S2_BANDS):
            dn = (image[b] * 10000 - offset_dn).astype(np.uint16)
            _tif(folder / f"{band}.tif", dn, transform, "EPSG:32633")
        scl = np.full((size, size), 4, np.uint8)
        if scene_id.startswith("S3"):
            scl[:4, :] = 9  # cloud on the top rows
        _tif(folder / "SCL.tif", scl, transform, "EPSG:32633")
        item = {
            "type": "Feature",
            "id": scene_id,
            "properties": {"datetime": f"{day}T10:00:00Z"},
            "assets": {
                band: {"href": f"./{band}.tif", "raster:bands": [{"offset": offset_dn, "scale": 1}]}
                for band in S2_BANDS
            },
        }
        (folder / f"{scene_id}.json").write_text(json.dumps(item))
    truth = root / "truth" / site
    _tif(truth / "change_20240301.tif", pair.label, transform, "EPSG:32633")
    _tif(truth / "change_20240401.tif", pair.label, transform, "EPSG:32633")
    (truth / "progress.csv").write_text("date,progress\n2024-03-01,0.5\n")
    return root


@pytest.fixture
def sim_dir(tmp_path: Path) -> Path:
    return write_sim(tmp_path / "sim")


def tiny_card(name: str = "tiny", bands: tuple[str, ...] = RGB_BANDS, gsd_m: float = 0.5) -> ModelCard:
    arch = ArchitectureSpec(TINY_ARCH.name, {**TINY_ARCH.params, "in_channels": len(bands)})
    return ModelCard(
        name=name,
        architecture=arch,
        bands=list(bands),
        gsd_m=gsd_m,
        gsd_tolerance=2.0,
        normalization=Normalization((0.35,) * len(bands), (0.1,) * len(bands)),
        threshold=0.5,
    )


@pytest.fixture
def weights_dir(tmp_path: Path) -> Path:
    """A weights folder with an untrained tiny RGB checkpoint ``tiny``."""
    directory = tmp_path / "weights"
    card = tiny_card()
    save_checkpoint(build_network(card.architecture), card, directory)
    return directory


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run faster on one thread, and the suite shares its machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
