r"""Simulate training archives for the Sentinel-2 checkpoint from synthetic portfolios.

Each portfolio seed gives ``--sites-per-seed`` random sites (``aoi.demo.synthetic_portfolio``),
simulated exactly as ``bench/progress.py`` simulates its portfolios (same start: the earliest plan
start minus the baseline window, same end: the demo as-of date, simulator seed = portfolio seed),
into one archive readable by the ``sim`` training format (pair names ``syn-<seed>-<k>/<YYYYMMDD>``):

    python scripts/sim_training_archive.py --out artifacts/sim_train --seeds 9001-9008 --sites-per-seed 6

Use seeds the progress bench never uses (it uses 101-799; 700-799 are its held-out seeds), so a
model trained on these sites is scored on the bench's sites without having seen them.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import timedelta
from pathlib import Path

from aoi.demo import DEMO_AS_OF, synthetic_portfolio
from imagery.archive import save_catalog, write_site_archive
from jobs.progress import BASELINE_DAYS

#: Seeds of bench/progress.py (tuning 101-699, held out 700-799): never train on them.
BENCH_SEEDS = range(101, 800)


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> None:
    """Parse the arguments and write the archive."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", required=True, help="e.g. 9001-9008 or 9001,9003")
    ap.add_argument("--sites-per-seed", type=int, default=6)
    args = ap.parse_args()
    seeds = _seeds(args.seeds)
    clash = [s for s in seeds if s in BENCH_SEEDS]
    if clash:
        ap.error(f"seeds {clash} are progress-bench seeds (101-799)")
    t0 = time.perf_counter()
    for seed in seeds:
        sites = synthetic_portfolio(seed, args.sites_per_seed).sites
        start = min(s.plan.start for s in sites) - timedelta(days=BASELINE_DAYS + 10)
        collections = []
        for site in sites:
            _, col = write_site_archive(args.out, site, start, DEMO_AS_OF, seed=seed)
            collections.append(col)
        save_catalog(args.out, collections)
        print(f"seed {seed}: {len(sites)} sites ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
