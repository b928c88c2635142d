"""Accuracy of progress against plan on freshly simulated portfolios.

Simulates a random portfolio per seed (sites, plans and fates nobody tuned on), runs the whole
estimation with the configured checkpoint and with the non-learned baseline, and scores both
against the simulator's truth. The last line printed is JSON:

    progress_mae_pp            median over sites of the mean |fitted - true| percent complete
    slip_mae_days              mean |estimated - true| schedule slip at as-of (true slip by
                               models.progress.slip_days: the plan day closest to as-of among
                               those the plan stood at the true percent; a finished site: the day
                               it reached the completion threshold against the day its plan did)
    slip_mae_days_earliest     the same against the earlier truth (the *earliest* such plan day),
                               which gives an on-plan site sitting in a planned pause a growing slip
    stall_recall               stalled sites flagged within 30 days of stalling
    stall_recall_visible       stalled sites flagged within 30 days of the first day on or after the
                               stall on which the *visible* plan (PlanCurves: what imagery shows of a
                               site following the plan) has risen stall_planned_pp above its level at
                               the stall; sites where that never happens before as-of left out
                               (stalls_visible counts the rest). Extra, not a target: it says what
                               imagery could have seen, while stall_recall is the issue's target
    stall_recall_due           stalled sites flagged within 30 days of the first day on or after the
                               stall on which the plan expects progress; stalls at or above the
                               completion threshold (which the slip truth counts as finished) left out
    false_stalls               sites never stalled but flagged stalled on some month-end
    stall_recall_imagery,      the same two without the site sensors (imagery alone), extra: every site
    false_stalls_imagery       has the simulator's sensors (iot.simulate, following its true fate) unless
                               --no-sensors is given, and the stall flag reads them as a second witness
    baseline_progress_mae_pp   progress_mae_pp of the non-learned baseline, same run

Usage: python bench/progress.py --seeds 101,102,103 --sites-per-seed 6 --json

With ``--cache-dir DIR`` the per-scene estimates of each seed are kept in DIR (a pickle per seed,
sites per seed and estimator, keyed by a hash of the estimator's and simulator's source), so a rerun
only refits the curves and scores them: seconds instead of minutes while the curve and flag logic
changes. Scores from the cache are the same as from a fresh run, since the summary is recomputed
from the estimates exactly as the progress stage does.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Bench scripts are named like the packages they measure: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import pickle  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402

import numpy as np  # noqa: E402

from aoi.demo import DEMO_AS_OF, Fate, fate_curve, synthetic_portfolio  # noqa: E402
from imagery.archive import write_archive  # noqa: E402
from imagery.providers.local import LocalArchiveProvider  # noqa: E402
from iot.features import daily_features, work_levels  # noqa: E402
from iot.readings import validate_reading  # noqa: E402
from iot.simulate import simulated_readings  # noqa: E402
from iot.sitetime import site_timezone  # noqa: E402
from jobs.iot import REFERENCE_DAYS, SENSOR_DAYS  # noqa: E402
from jobs.progress import BASELINE_DAYS, compute_site_progress, make_estimator  # noqa: E402
from jobs.settings import Settings  # noqa: E402
from models.progress import CurveOptions, PlanCurves, slip_days, summarize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Sources whose change makes cached per-scene estimates stale.
ESTIMATE_SOURCES = (
    "models/estimate.py",
    "imagery/simulate.py",
    "imagery/archive.py",
    "jobs/progress.py",
    "aoi/demo.py",
)

AS_OF = DEMO_AS_OF
COMPLETE = CurveOptions().complete_pct


def true_slip(site, curve, *, earliest: bool = False) -> int:
    pct = curve.percent(AS_OF)
    finished = None
    if pct >= COMPLETE:
        day = site.plan.start
        while curve.percent(day) < COMPLETE:
            day += timedelta(days=1)
        finished = day
    if earliest and finished is None and pct > 0:
        expected_on = site.plan.date_for_percent(min(pct, 100.0))
        return 0 if expected_on is None else (AS_OF - expected_on).days
    return slip_days(site.plan, pct, AS_OF, finished, complete_pct=COMPLETE)


def stall_due(site, curve) -> date | None:
    """First day on or after the stall on which the plan expects progress (None: stalled complete)."""
    if curve.percent(curve.event_day) >= COMPLETE:
        return None
    day = curve.event_day
    while day < site.plan.end and site.plan.planned_percent(day + timedelta(days=1)) <= site.plan.planned_percent(day):
        day += timedelta(days=1)
    return day


def stall_visible_due(site, curve) -> date | None:
    """First day on or after the stall on which the *visible* plan has risen ``stall_planned_pp`` above
    its level on the stall day (None: not before as-of, or stalled complete).

    The visible plan (models.progress.PlanCurves) is what imagery shows of a site that follows the
    plan: a building's set-up and excavation show nothing until its slabs do. A stall during a planned
    pause, or just before one, cannot be seen until the plan expects something visible again.
    """
    if curve.percent(curve.event_day) >= COMPLETE:
        return None
    table = PlanCurves.of(site.plan)
    base = table.visible[table.index(curve.event_day)]
    day = curve.event_day
    while day <= AS_OF:
        if table.visible[table.index(day)] - base >= CurveOptions().stall_planned_pp:
            return day
        day += timedelta(days=1)
    return None


def site_activity(site, curve, seed: int) -> list:
    """The site's daily work levels from its simulated sensors, as the refresh reads stored ones."""
    readings = [
        validate_reading(r.payload, now_utc=datetime(2100, 1, 1, tzinfo=UTC), site_exists=lambda _: True)
        for r in simulated_readings(site, curve, site.plan.start, AS_OF, seed=seed)
    ]
    if not readings:
        return []
    days = daily_features(readings, site_id=site.id, start=site.plan.start, end=AS_OF, tz=site_timezone(site))
    return work_levels(days)


def read_back(activity: list, on: date) -> list:
    """The sensor days a refresh on ``on`` reads (jobs.iot.SENSOR_DAYS and the reference year before them).

    The refresh compares the reference year's days only with what of it came before them; here each
    day has its full trailing year. Both read a day as idle the same way (guards against crews).
    """
    return [w for w in activity if on - timedelta(days=SENSOR_DAYS + REFERENCE_DAYS) < w.day <= on]


def score_site(site, obs, curve, method: str, activity: list) -> dict:
    def flagged(on: date, work: list = activity) -> bool:
        return summarize(site.id, site.plan, obs, as_of=on, method="b", activity=read_back(work, on))[0].stalled

    s, points = summarize(site.id, site.plan, obs, as_of=AS_OF, method=method, activity=read_back(activity, AS_OF))
    fitted = [(p.on, p.observed_pct) for p in points if site.plan.start <= p.on <= AS_OF]
    mae = float(np.mean([abs(v - curve.percent(d)) for d, v in fitted])) if fitted else float("nan")
    out = {"site": site.id, "fate": curve.fate.value, "mae_pp": mae, "observed": s.observed_pct,
           "truth": curve.percent(AS_OF), "slip": s.slip_days, "true_slip": true_slip(site, curve),
           "true_slip_earliest": true_slip(site, curve, earliest=True),
           "slip_low": s.slip_low_days, "slip_high": s.slip_high_days}  # fmt: skip
    if curve.fate is Fate.STALLED and curve.event_day is not None:
        check = curve.event_day + timedelta(days=30)
        out["stall_flagged"] = flagged(check)
        out["stall_flagged_imagery"] = flagged(check, [])
        due = stall_due(site, curve)
        if due is not None:
            out["stall_flagged_due"] = flagged(min(due + timedelta(days=30), AS_OF))
        visible_due = stall_visible_due(site, curve)
        if visible_due is not None:
            out["stall_flagged_visible"] = flagged(min(visible_due + timedelta(days=30), AS_OF))
    elif curve.fate is not Fate.CANCELLED:
        days = []
        day = site.plan.start + timedelta(days=60)
        while day <= min(AS_OF, site.plan.end):
            days.append(day)
            day += timedelta(days=30)
        out["false_stall"] = any(flagged(d) for d in days)
        out["false_stall_imagery"] = any(flagged(d, []) for d in days)
    return out


def _source_key(methods: list[str]) -> str:
    h = hashlib.sha256("|".join(methods).encode())
    for rel in ESTIMATE_SOURCES:
        h.update((ROOT / rel).read_bytes())
    return h.hexdigest()[:12]


def _seed_estimates(seed: int, n_sites: int, estimators: list, cache_dir: Path | None) -> list:
    """[(site, {method: observations})] for one seed's portfolio, from the cache when it is there."""
    methods = [e.method for e in estimators]
    path = None
    if cache_dir is not None:
        path = cache_dir / f"seed{seed}-n{n_sites}-{_source_key(methods)}.pkl"
        if path.exists():
            with path.open("rb") as f:
                return pickle.load(f)  # our own cache, written below
    portfolio = synthetic_portfolio(seed, n_sites)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / f"seed{seed}"
        start = min(s.plan.start for s in portfolio.sites) - timedelta(days=BASELINE_DAYS + 10)
        write_archive(root, portfolio.sites, start, AS_OF, seed=seed)
        provider = LocalArchiveProvider(root)
        for site in portfolio.sites:
            by_method = {
                e.method: compute_site_progress(site, provider=provider, estimator=e, as_of=AS_OF).observations
                for e in estimators
            }
            out.append((site, by_method))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = path.with_suffix(".tmp")
        with tmp_path.open("wb") as f:
            pickle.dump(out, f)
        tmp_path.replace(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="101,102,103")
    ap.add_argument("--sites-per-seed", type=int, default=6)
    ap.add_argument(
        "--checkpoint",
        default=Settings.model_fields["checkpoint"].default or "none",
        help="shipped name or path (default: the product's, SITEWATCH_CHECKPOINT's default); "
        "'none' is the spectral-index estimator",
    )
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--cache-dir", type=Path, default=None, help="keep per-scene estimates here between runs")
    ap.add_argument("--no-sensors", action="store_true", help="imagery alone: the sites have no sensors")
    args = ap.parse_args()
    logging.getLogger("iot.sitetime").setLevel(logging.ERROR)  # simulated regions name no time zone
    model = make_estimator(None if args.checkpoint.lower() in ("", "none") else args.checkpoint)
    baseline = make_estimator(None)
    rows, base_rows = [], []
    t0 = time.perf_counter()
    estimators = [model] if model.method == baseline.method else [model, baseline]
    for seed in (int(s) for s in args.seeds.split(",")):
        estimates = _seed_estimates(seed, args.sites_per_seed, estimators, args.cache_dir)
        for site, by_method in estimates:
            curve = fate_curve(site)
            activity = [] if args.no_sensors else site_activity(site, curve, seed)
            rows.append(score_site(site, by_method[model.method], curve, model.method, activity))
            # No checkpoint: the model *is* the baseline.
            base_rows.append(
                rows[-1]
                if model.method == baseline.method
                else score_site(site, by_method[baseline.method], curve, baseline.method, activity)
            )
            if not args.json:
                print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in rows[-1].items()}),
                      file=sys.stderr)  # fmt: skip
    stalls = [r["stall_flagged"] for r in rows if "stall_flagged" in r]
    stalls_due = [r["stall_flagged_due"] for r in rows if "stall_flagged_due" in r]
    stalls_visible = [r["stall_flagged_visible"] for r in rows if "stall_flagged_visible" in r]
    result = {
        "progress_mae_pp": round(float(np.nanmedian([r["mae_pp"] for r in rows])), 2),
        "slip_mae_days": round(
            float(np.mean([abs(r["slip"] - r["true_slip"]) for r in rows if r["slip"] is not None])), 1
        ),
        "slip_mae_days_earliest": round(
            float(np.mean([abs(r["slip"] - r["true_slip_earliest"]) for r in rows if r["slip"] is not None])), 1
        ),
        "slip_in_range": round(
            float(np.mean([r["slip_low"] <= r["true_slip"] <= r["slip_high"] for r in rows if r["slip"] is not None])),
            3,
        ),
        "stall_recall": round(sum(stalls) / len(stalls), 3) if stalls else None,
        "stall_recall_due": round(sum(stalls_due) / len(stalls_due), 3) if stalls_due else None,
        "stall_recall_visible": round(sum(stalls_visible) / len(stalls_visible), 3) if stalls_visible else None,
        "stalls_visible": len(stalls_visible),
        "false_stalls": sum(r.get("false_stall", False) for r in rows),
        "stall_recall_imagery": round(
            sum(r["stall_flagged_imagery"] for r in rows if "stall_flagged_imagery" in r) / len(stalls), 3
        )
        if stalls
        else None,
        "false_stalls_imagery": sum(r.get("false_stall_imagery", False) for r in rows),
        "sensors": not args.no_sensors,
        "sites": len(rows),
        "baseline_progress_mae_pp": round(float(np.nanmedian([r["mae_pp"] for r in base_rows])), 2),
        "baseline_slip_mae_days": round(
            float(np.mean([abs(r["slip"] - r["true_slip"]) for r in base_rows if r["slip"] is not None])), 1
        ),
        "method": model.method,
        "seeds": args.seeds,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
