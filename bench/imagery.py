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
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script is named like the package it measures: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import logging
import math
import resource
import statistics
import subprocess
import tempfile
import time
from datetime import date, timedelta

import numpy as np
import rasterio
from rasterio.windows import from_bounds
from shapely.geometry import box

from aoi.model import Phase, Plan, Site
from imagery.archive import write_archive
from imagery.cube import load_datacube
from imagery.providers.local import LocalArchiveProvider
from imagery.sentinel2 import S2_BANDS
from imagery.simulate import site_grid

START = date(2025, 1, 1)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the JSON result as the last line")
    ap.add_argument("--km", type=float, default=3.0, help="site side length in km (default 3)")
    ap.add_argument("--days", type=int, default=365, help="period length in days (default 365)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--simulate-into", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    site = bench_site(args.km)
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
