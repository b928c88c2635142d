"""Benchmark: score a synthetic book of loans from stored-like inputs with the shipped scorecard.

    .venv/bin/python bench/risk.py --json [--n 100000] [--seed 7]

The book is made of JSON documents shaped like the ``inputs`` column of ``risk_scores`` (what
``RiskInputs.to_json`` writes), with about 10 % of each feature missing. The timed part builds
the feature columns straight from those documents, scores every loan in one
vectorised pass (``np.digitize`` per driver) and names each loan's top drivers. The last line
printed is JSON:

    loans          loans scored
    seconds        wall time of the timed part
    loans_per_s    loans / seconds
    score_only_s   time of the vectorised scoring pass alone
    peak_mb        peak resident memory of the process (ru_maxrss)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this script's name shadows the risk package otherwise

import numpy as np  # noqa: E402

from risk.config import read_scorecard  # noqa: E402
from risk.records import RiskInputs  # noqa: E402
from risk.scorecard import feature_columns_from_json, score_columns  # noqa: E402


def synthetic_book(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)

    def col(values: np.ndarray, missing: float = 0.1) -> list[float | None]:
        out = values.astype(float).tolist()
        for k in np.flatnonzero(rng.random(n) < missing):
            out[k] = None
        return out

    planned = rng.uniform(0, 100, n)
    dev = rng.normal(-5, 15, n)
    c = {
        "deviation_pp": col(dev),
        "slip_days": col(np.maximum(-dev * 4, -60)),
        "stalled": col((rng.random(n) < 0.05).astype(float)),
        "activity_index": col(rng.uniform(0, 1.3, n), 0.3),
        "silence_hours": col(rng.exponential(20, n), 0.3),
        "days_past_due": col(np.where(rng.random(n) < 0.1, rng.integers(1, 200, n), 0)),
        "paid_ratio_12m": col(np.clip(rng.normal(0.97, 0.1, n), 0, 1)),
        "partial": col(rng.poisson(0.2, n)),
        "restructurings": col(rng.poisson(0.05, n)),
        "money_ahead_pp": col(rng.normal(3, 10, n)),
        "market_change_pct": col(rng.normal(1, 6, n)),
    }
    book = []
    for i in range(n):
        book.append(
            RiskInputs(f"L-{i}", f"S-{i}", "XX", date(2026, 11, 1)).to_json()
            | {
                "progress": {
                    "planned_pct": float(planned[i]),
                    "observed_pct": None if c["deviation_pp"][i] is None else float(planned[i]) + c["deviation_pp"][i],
                    "deviation_pp": c["deviation_pp"][i],
                    "slip_days": c["slip_days"][i],
                    "stalled": c["stalled"][i],
                    "band_pp": 6.0,
                    "scenes_used": 20,
                    "outside_activity_pct": 0.0,
                    "reversals": 0,
                },
                "activity": {
                    "activity_index": c["activity_index"][i],
                    "silence_hours": c["silence_hours"][i],
                    "days_with_data": 14,
                },
                "repayment": {
                    "days_past_due": c["days_past_due"][i],
                    "amount_overdue": 0.0,
                    "oldest_unpaid_due": None,
                    "paid_ratio_12m": c["paid_ratio_12m"][i],
                    "partial_payments_12m": c["partial"][i],
                    "late_payments_12m": 0.0,
                    "restructurings": c["restructurings"][i],
                    "instalments_due": 4,
                },
                "drawdown": {
                    "disbursed_pct": 50.0,
                    "earned_disbursed_pct": 45.0,
                    "money_ahead_pp": c["money_ahead_pp"][i],
                },
                "market": {"change_pct": c["market_change_pct"][i], "latest": "2026-10-01", "indicators": {}},
            }
        )
    return book


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print only the JSON result line")
    args = parser.parse_args()
    card = read_scorecard()
    book = synthetic_book(args.n, args.seed)
    names = np.asarray([d.name for d in card.drivers] + [""], dtype=object)

    started = time.perf_counter()
    columns, masks = feature_columns_from_json(book)
    t_score = time.perf_counter()
    scored = score_columns(card, columns, masks)
    score_only = time.perf_counter() - t_score
    top = names[scored.top]  # -1 picks the trailing "" (no reason)
    seconds = time.perf_counter() - started

    bands = np.bincount(scored.band, minlength=len(card.bands))
    result = {
        "loans": args.n,
        "seconds": round(seconds, 3),
        "loans_per_s": round(args.n / seconds),
        "score_only_s": round(score_only, 4),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "config_version": card.version,
        "bands": {b.name: int(k) for b, k in zip(card.bands, bands, strict=True)},
        "mean_confidence": round(float(scored.confidence.mean()), 3),
    }
    if not args.json:
        print(f"scored {args.n} loans in {seconds:.2f} s; first top drivers: {list(top[0])}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
