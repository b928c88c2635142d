# ruff: noqa: E402
"""Benchmark: our datacube loader vs a plain rasterio windowed read of the same pixels.

Simulates a local archive for a site a few km across into a temporary directory (in a child
process, so the parent's peak memory is the loading alone), then times, several times each:

* ``ours``:  ``load_datacube(LocalArchiveProvider(root), grid, ...)`` fully loaded in memory;
* ``plain``: rasterio windowed reads of the same files and pixels (SCL of every scene, the six
  bands of the scenes we keep), harmonised to float32 reflectance.

Prints a human summary and, as its LAST line with ``--json``, a JSON object with the medians
``ours_s``, ``plain_s``, ``ratio`` (ours / plain; target < 1.5) and ``peak_mb`` (peak RSS of this
process, MiB).

    .venv/bin/python bench/imagery.py --json

``--large`` measures memory instead: a 20 km x 20 km site over two years (2000 x 2000 px, 146
scenes, 16 GB as float32) from an archive built once under ``artifacts/`` by a cheap synthetic
COG writer (four distinct scenes, each written once and referenced by many dated STAC items; one
of them too cloudy). A child process loads the cube through the lazy (dask) path and reduces
every pixel of every band (mean reflectance over valid pixels, per scene), and reports its peak
RSS; the JSON has ``peak_mb`` (target < 2048), ``load_s``, ``reduce_s`` and ``ok``.

    .venv/bin/python bench/imagery.py --large --json
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script is named like the package it measures: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import gc
import json
import logging
import math
import resource
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pystac
import rasterio
from rasterio.windows import from_bounds
from shapely.geometry import box, mapping

from aoi.model import Phase, Plan, Site
from imagery.archive import save_catalog, write_archive
from imagery.cog import write_cog
from imagery.cube import load_datacube
from imagery.providers.local import LocalArchiveProvider
from imagery.sentinel2 import S2_BANDS
from imagery.simulate import site_grid

START = date(2025, 1, 1)
#: Where ``--large`` keeps its archive between runs (ignored by git).
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
#: Peak memory target of the large site (the issue: under 2 GB).
LARGE_TARGET_MB = 2048


def bench_site(km: float) -> Site:
    lon, lat = 11.5, 48.1
    mlon, mlat = 111_320 * math.cos(math.radians(lat)), 110_540

    def rect(x0: float, y0: float, x1: float, y1: float):
        s = km * 1000
        return box(lon + x0 * s / mlon, lat + y0 * s / mlat, lon + x1 * s / mlon, lat + y1 * s / mlat)

    s0 = START
    phases = (
        Phase("earthworks", 0.2, s0, s0 + timedelta(days=90), rect(0.1, 0.1, 0.9, 0.9)),
        Phase("hall A", 0.4, s0 + timedelta(days=60), s0 + timedelta(days=300), rect(0.15, 0.15, 0.5, 0.6)),
        Phase("hall B", 0.4, s0 + timedelta(days=120), s0 + timedelta(days=360), rect(0.55, 0.2, 0.85, 0.8)),
    )
    return Site("bench-site", "Bench logistics park", "L-bench", "DE-BY", rect(0, 0, 1, 1), Plan(phases))


def plain_read(root: Path, site: Site, used_ids: set[str]) -> float:
    """Read SCL of every scene and the bands of used scenes with plain rasterio windowed reads."""
    grid = site_grid(site)
    t0 = time.perf_counter()
    total = 0.0
    for item in sorted((root / site.id).glob("*/*.json")):
        names = ["SCL", *S2_BANDS] if item.stem in used_ids else ["SCL"]
        for band in names:
            with rasterio.open(item.parent / f"{band}.tif") as src:
                window = from_bounds(*grid.bounds, transform=src.transform)
                dn = src.read(1, window=window)
            values = dn.astype(np.float32) if band == "SCL" else (dn.astype(np.float32) - 1000) / 10000
            total += float(values[0, 0])
    return time.perf_counter() - t0


def synthetic_scene_files(
    scene_dir: Path, grid: Any, rng: np.random.Generator, cloud_share: float, where: float
) -> None:
    """Write one scene's six bands and SCL as COGs: smooth land cover, a bare pad, a round cloud.

    The cloud is centred at ``where`` (0-1) along the diagonal, and bright with a large spread,
    so clouds of different scenes neither overlap nor look like a stable roof.
    """
    h, w = grid.shape
    yy, xx = np.ogrid[:h, :w]
    land = (np.sin(yy / 37.0) * np.cos(xx / 53.0) * 600).astype(np.int32)
    scl = np.full((h, w), 4, np.uint8)  # vegetation
    scl[h // 3 : h // 2, w // 4 : w // 2] = 5  # bare soil: a construction pad
    radius = math.sqrt(cloud_share * h * w / math.pi)
    cloud = (yy - where * h) ** 2 + (xx - where * w) ** 2 <= radius**2
    scl[cloud] = 9
    for k, band in enumerate(S2_BANDS):
        dn = 1000 + 800 + 150 * k + land + rng.integers(0, 60, size=(h, w), dtype=np.int32)
        dn[cloud] = rng.integers(4000, 9000, size=int(cloud.sum()), dtype=np.int32)
        write_cog(scene_dir / f"{band}.tif", dn.astype(np.uint16), grid, nodata=0)
    write_cog(scene_dir / "SCL.tif", scl, grid, nodata=0, categorical=True)


def build_large_archive(root: Path, site: Site, days: int, *, distinct: int = 4, seed: int = 1) -> int:
    """A local STAC archive of ``site`` with a scene every 5 days, built from ``distinct`` scenes' files.

    Scene ``k`` uses the files of synthetic scene ``k % distinct``; the last synthetic scene is
    80 % cloud, so a quarter of the items are skipped like real cloudy days. Returns the item count.
    """
    grid = site_grid(site)
    rng = np.random.default_rng(seed)
    files = root / "files"
    for k in range(distinct):
        cloudy = k == distinct - 1
        share, where = (0.8, 0.5) if cloudy else (0.05 + 0.05 * k, (2 * k + 1) / (2 * (distinct - 1)))
        synthetic_scene_files(files / f"s{k}", grid, rng, share, where)
    bbox = list(grid.bbox_wgs84)
    items = []
    for n, day in enumerate(START + timedelta(days=d) for d in range(0, days, 5)):
        when = datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=10, minute=20)
        item = pystac.Item(
            id=f"S2X_{day:%Y%m%d}_large",
            geometry=mapping(box(*bbox)),
            bbox=bbox,
            datetime=when,
            properties={"platform": "sentinel-2a", "s2:processing_baseline": "05.10", "eo:cloud_cover": 10.0},
        )
        src = files / f"s{n % distinct}"
        for band in [*S2_BANDS, "SCL"]:
            raster = {"nodata": 0} if band == "SCL" else {"nodata": 0, "scale": 0.0001, "offset": -0.1}
            item.add_asset(band, pystac.Asset(href=str(src / f"{band}.tif"), extra_fields={"raster:bands": [raster]}))
        items.append(item)
    collection = pystac.Collection(
        id=site.id,
        description="Synthetic 20 km benchmark scenes",
        extent=pystac.Extent(
            pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[items[0].datetime, items[-1].datetime]])
        ),
    )
    collection.add_items(items)
    save_catalog(root, [collection])
    return len(items)


def measure_large(root: Path, site: Site, days: int, block_px: int, budget_mb: float = 256.0) -> dict[str, Any]:
    """Load the large cube lazily and reduce every pixel of it; run in a child (its peak RSS is the answer)."""
    grid = site_grid(site)
    end = START + timedelta(days=days)
    t0 = time.perf_counter()
    provider = LocalArchiveProvider(root)
    ds, records = load_datacube(
        provider, grid, START, end, site_id=site.id, block_px=block_px, memory_budget_mb=budget_mb
    )
    t1 = time.perf_counter()
    bands = [b for b in S2_BANDS if b in ds]
    # Every pixel of every band and the mask, streamed chunk by chunk: per-scene mean reflectance
    # over valid pixels and the valid share.
    means = ds[bands].where(ds["valid"]).mean(("y", "x")).compute()
    valid_share = ds["valid"].mean(("y", "x")).compute()
    t2 = time.perf_counter()
    return {
        "lazy": bool(ds["B04"].chunks is not None),
        "scenes": len(records),
        "used": int(sum(r.used for r in records)),
        "grid": f"{grid.width}x{grid.height}",
        "cube_gb": round(ds.nbytes / 2**30, 2),
        "load_s": round(t1 - t0, 2),
        "reduce_s": round(t2 - t1, 2),
        "b04_mean": round(float(means["B04"].mean()), 4),
        "valid_share": round(float(valid_share.mean()), 4),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_large(args: argparse.Namespace) -> None:
    """``--large``: build the archive once under artifacts/, measure in a fresh child process."""
    site = bench_site(args.km)
    root = args.archive_dir or ARTIFACTS / f"bench-imagery-{args.km:g}km-{args.days}d"
    if not (root / "catalog.json").exists():
        t0 = time.perf_counter()
        n = build_large_archive(root, site, args.days, seed=args.seed)
        print(f"built {n} items under {root} in {time.perf_counter() - t0:.1f}s")
    cmd = [sys.executable, __file__, "--measure-large", str(root), "--km", str(args.km), "--days", str(args.days)]
    cmd += ["--block-px", str(args.block_px), "--budget-mb", str(args.budget_mb)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update({"mode": "large", "km": args.km, "days": args.days, "target_mb": LARGE_TARGET_MB})
    result["ok"] = result["peak_mb"] < LARGE_TARGET_MB and result["lazy"]
    print(
        f"site {args.km:g} km ({result['grid']} px) over {args.days} days: {result['scenes']} scenes "
        f"({result['used']} used, cube {result['cube_gb']} GB as float32); load {result['load_s']}s, "
        f"reduce {result['reduce_s']}s, peak {result['peak_mb']} MB (target < {LARGE_TARGET_MB})"
    )
    if args.json:
        print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the JSON result as the last line")
    ap.add_argument("--km", type=float, default=3.0, help="site side length in km (default 3)")
    ap.add_argument("--days", type=int, default=365, help="period length in days (default 365)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--large", action="store_true", help="peak memory of a 20 km site over 2 years (lazy path)")
    ap.add_argument("--block-px", type=int, default=1024, help="lazy chunk side in pixels (--large)")
    ap.add_argument("--archive-dir", type=Path, help="--large: archive directory (default under artifacts/)")
    ap.add_argument("--budget-mb", type=float, default=256.0, help="--large: cube size above which it loads lazily")
    ap.add_argument("--simulate-into", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--measure-large", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.large or args.measure_large:
        if "--km" not in sys.argv:
            args.km = 20.0
        if "--days" not in sys.argv:
            args.days = 730
    site = bench_site(args.km)
    if args.measure_large is not None:  # child process of --large
        print(json.dumps(measure_large(args.measure_large, site, args.days, args.block_px, args.budget_mb)))
        return
    if args.large:
        run_large(args)
        return
    end = START + timedelta(days=args.days)

    if args.simulate_into is not None:  # child process
        write_archive(args.simulate_into, [site], START, end, seed=args.seed)
        return

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="sitewatch-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--simulate-into", str(root), "--km", str(args.km), "--days", str(args.days)]
        subprocess.run([*cmd, "--seed", str(args.seed)], check=True)
        sim_s = time.perf_counter() - t0
        grid = site_grid(site)
        ours: list[float] = []
        plain: list[float] = []
        used_ids: set[str] = set()
        n_scenes = n_used = 0

        def run_ours() -> float:
            nonlocal used_ids, n_scenes, n_used
            t0 = time.perf_counter()
            ds, records = load_datacube(LocalArchiveProvider(root), grid, START, end, site_id=site.id)
            ds.load()
            elapsed = time.perf_counter() - t0
            used_ids = {r.scene_id for r in records if r.used}
            n_scenes, n_used = len(records), len(used_ids)
            # The .rio accessor and the Dataset reference each other: without a collection, a
            # finished cube lives on until the cyclic GC runs, and peak_mb counts several cubes.
            del ds
            gc.collect()
            return elapsed

        # One untimed run of each first, so both read from a warm page cache; then alternate the
        # order so neither side always runs right after the other.
        run_ours()
        plain_read(root, site, used_ids)
        for k in range(args.repeats):
            if k % 2 == 0:
                ours.append(run_ours())
                plain.append(plain_read(root, site, used_ids))
            else:
                plain.append(plain_read(root, site, used_ids))
                ours.append(run_ours())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ours_s, plain_s = statistics.median(ours), statistics.median(plain)
    print(
        f"site {args.km:g} km ({grid.width}x{grid.height} px), {n_scenes} scenes ({n_used} used), "
        f"simulated in {sim_s:.1f}s; ours {ours} plain {plain}"
    )
    if args.json:
        result = {
            "ours_s": round(ours_s, 4),
            "plain_s": round(plain_s, 4),
            "ratio": round(ours_s / plain_s, 3),
            "peak_mb": round(peak_mb, 1),
            "scenes": n_scenes,
            "used": n_used,
            "grid": f"{grid.width}x{grid.height}",
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
