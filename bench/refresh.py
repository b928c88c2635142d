"""Benchmark refresh jobs: cold and incremental, in-process and on a 2-worker Dask LocalCluster, and area scaling.

    python bench/refresh.py --sites 20 --json

Builds a simulated book (aoi.demo.synthetic_portfolio + imagery.archive) in a temp dir; each site's
archive covers its baseline window and the first months of its plan, at a 10-day revisit, so the
book is quick to simulate while every refresh does the full work (baseline, change, curve).
The LAST line of stdout is one JSON object:

- cold_sites_per_min: in-process, empty scene cache, every stage including the portfolio scoring;
- dask_sites_per_min: the same cold refresh on a LocalCluster of ``--workers`` worker processes
  (workers warmed: imports done before the clock starts, as on a long-running cluster);
- incremental_ratio: time of a second refresh with no new scenes / time of the cold one;
- next_day_ratio: the same for a refresh one day later, still without new scenes, where every
  site's figures are recomputed from its stored estimates (next_day_refigured counts them);
- peak_mb_per_worker: highest peak RSS of a Dask worker process, MiB;
- area_exponent: slope of log(seconds per site) against log(site area) between two groups of the
  same sites, the second scaled 2x linearly (4x area), each refreshed cold in-process (medians).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

# bench/imagery.py and friends would shadow the packages of the same name when run as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from shapely import affinity  # noqa: E402

import store  # noqa: E402
from aoi.demo import DEMO_AS_OF, synthetic_portfolio  # noqa: E402
from aoi.model import Portfolio, Site  # noqa: E402
from imagery.archive import save_catalog, write_site_archive  # noqa: E402
from imagery.simulate import SimulationOptions  # noqa: E402
from jobs.executors import DaskRunner, InProcessExecutor  # noqa: E402
from jobs.pipeline import RefreshSpec, run_refresh  # noqa: E402
from jobs.progress import BASELINE_DAYS  # noqa: E402
from store import repo  # noqa: E402

AS_OF = DEMO_AS_OF
OPTIONS = SimulationOptions(revisit_days=10)
#: Days of plan covered by the archive after each site's start.
PLAN_DAYS = 150


def _window(site: Site) -> tuple[date, date]:
    start = site.plan.start - timedelta(days=BASELINE_DAYS + 5)
    return start, min(AS_OF, site.plan.start + timedelta(days=PLAN_DAYS))


def _simulate_one(args: tuple[Path, Site, int]) -> object:
    root, site, seed = args
    start, end = _window(site)
    return write_site_archive(root, site, start, end, seed=seed, options=OPTIONS)[1]


def write_book(root: Path, sites: list[Site], seed: int, procs: int) -> None:
    with ProcessPoolExecutor(procs) as pool:
        collections = list(pool.map(_simulate_one, [(root, s, seed) for s in sites]))
    save_catalog(root, collections)  # type: ignore[arg-type]


def scaled(site: Site, factor: float) -> Site:
    """The same site scaled ``factor`` times linearly about its centroid (area x factor^2)."""
    origin = site.boundary_wgs84.centroid

    def grow(geom):
        return affinity.scale(geom, xfact=factor, yfact=factor, origin=origin)

    phases = tuple(replace(p, footprint_wgs84=grow(p.footprint_wgs84)) for p in site.plan.phases)
    return replace(site, id=f"{site.id}-x{factor:g}", boundary_wgs84=grow(site.boundary_wgs84),
                   plan=replace(site.plan, phases=phases))  # fmt: skip


def new_db(path: Path, portfolio: Portfolio) -> tuple[str, object]:
    url = f"sqlite:///{path}"
    engine = store.connect(url)
    store.upgrade(engine)
    repo.save_portfolio(engine, portfolio)
    return url, engine


def spec(url: str, archive: Path, cache: Path, **kw) -> RefreshSpec:
    kw.setdefault("as_of", AS_OF)
    return RefreshSpec(database_url=url, archive_dir=str(archive), cache_dir=str(cache), checkpoint=None, **kw)


def timed_batch(engine, sp, ids, executor=None):
    t0 = time.perf_counter()
    result = run_refresh(engine, sp, ids, executor=executor or InProcessExecutor())
    return time.perf_counter() - t0, result


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--area-sites", type=int, default=3, help="sites per area group")
    ap.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    def say(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        book = synthetic_portfolio(args.seed, args.sites)
        ids = [s.id for s in book.sites]
        t0 = time.perf_counter()
        write_book(tmp / "archive", list(book.sites), args.seed, args.workers)
        say(f"simulated {len(ids)} sites in {time.perf_counter() - t0:.0f} s")

        # In-process: cold, then incremental (nothing new).
        url, engine = new_db(tmp / "inproc.db", book)
        cold_s, cold = timed_batch(engine, spec(url, tmp / "archive", tmp / "cache-a"), ids)
        say(f"cold in-process: {cold_s:.1f} s, {cold.count('ok')} ok, stages {cold.stage_seconds}")
        incr_s, incr = timed_batch(engine, spec(url, tmp / "archive", tmp / "cache-a"), ids)
        say(f"incremental: {incr_s:.2f} s, {incr.count('skipped')} skipped")
        # The next day: still no new scene, but the figures move with the calendar (refigured).
        next_s, nxt = timed_batch(engine, spec(url, tmp / "archive", tmp / "cache-a", as_of=AS_OF + timedelta(days=1)),
                                  ids)  # fmt: skip
        refigured = sum(bool(o.counts.get("refigured")) for o in nxt.outcomes)
        say(f"next day: {next_s:.2f} s, {refigured} refigured without reading a scene")

        # Dask: a LocalCluster of small worker processes, cold cache, fresh database.
        from distributed import Client, LocalCluster

        url_d, engine_d = new_db(tmp / "dask.db", book)
        with (
            LocalCluster(
                n_workers=args.workers, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR
            ) as lc,
            Client(lc) as client,
        ):
            client.run(importlib.import_module, "jobs.pipeline")
            dask_s, dask = timed_batch(engine_d, spec(url_d, tmp / "archive", tmp / "cache-d"), ids,
                                       DaskRunner(client=client))  # fmt: skip
            peak_mb = max(client.run(_peak_rss_mb).values())
        say(f"dask ({args.workers} workers): {dask_s:.1f} s, {dask.count('ok')} ok, peak {peak_mb:.0f} MiB/worker")

        # Area scaling: the same sites at 1x and 2x linear size.
        base = list(synthetic_portfolio(args.seed + 1, args.area_sites).sites)
        small = [scaled(s, 1.0) for s in base]
        big = [scaled(s, 2.0) for s in base]
        loans = {ln.id: ln for ln in synthetic_portfolio(args.seed + 1, args.area_sites).loans}
        area_sites = small + big
        area_loans = [replace(loans[s.loan_id], id=f"{s.loan_id}-{s.id}") for s in area_sites]
        area_sites = [replace(s, loan_id=f"{s.loan_id}-{s.id}") for s in area_sites]
        write_book(tmp / "archive-area", area_sites, args.seed, args.workers)
        url_a, engine_a = new_db(tmp / "area.db", Portfolio(tuple(area_sites), tuple(area_loans)))
        _, area = timed_batch(engine_a, spec(url_a, tmp / "archive-area", tmp / "cache-area"),
                              [s.id for s in area_sites])  # fmt: skip
        secs = {o.site_id: o.seconds for o in area.outcomes}
        area_deg2 = {s.id: repo.get_site(engine_a, s.id).boundary_wgs84.area for s in area_sites}  # ratio only
        t_small = statistics.median(secs[s.id] for s in area_sites[: len(small)])
        t_big = statistics.median(secs[s.id] for s in area_sites[len(small) :])
        a_small = sum(area_deg2[s.id] for s in area_sites[: len(small)]) / len(small)
        a_big = sum(area_deg2[s.id] for s in area_sites[len(small) :]) / len(big)
        exponent = math.log(t_big / t_small) / math.log(a_big / a_small)
        say(f"area: {t_small:.2f} s/site at 1x, {t_big:.2f} s/site at {a_big / a_small:.1f}x area")

    result = {
        "sites": len(ids),
        "cold_seconds": round(cold_s, 2),
        "cold_sites_per_min": round(60 * len(ids) / cold_s, 2),
        "cold_stage_seconds": {k: round(v, 2) for k, v in cold.stage_seconds.items()},
        "incremental_seconds": round(incr_s, 3),
        "incremental_ratio": round(incr_s / cold_s, 4),
        "next_day_seconds": round(next_s, 3),
        "next_day_ratio": round(next_s / cold_s, 4),
        "next_day_refigured": refigured,
        "dask_workers": args.workers,
        "dask_seconds": round(dask_s, 2),
        "dask_sites_per_min": round(60 * len(ids) / dask_s, 2),
        "peak_mb_per_worker": round(peak_mb, 1),
        "area_exponent": round(exponent, 3),
        "area_seconds_per_site": {"1x": round(t_small, 3), "4x": round(t_big, 3)},
        "failed": cold.count("failed") + dask.count("failed") + area.count("failed"),
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
