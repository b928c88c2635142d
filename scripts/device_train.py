r"""Run many training jobs (cross-validation folds and final checkpoints) at once on one GPU machine.

The GPU box this is meant for has numpy, torch, torchvision, scikit-image, PyYAML and rich, but not
GDAL or the web stack, so it trains from ``sitewatch model export`` folders (``--format npz``):

    sitewatch model export --format oscd --data ../shared/data/oscd_s2 --out .device/data/oscd
    python scripts/device_train.py --plan models/configs/gpu-plan.yaml --data-map oscd=.device/data/oscd \\
        --out /tmp/runs --deadline-s 420

Each job runs in its own process (one CUDA context each; SiteNet is too small to fill an H200 alone).
Jobs get a training time limit so the whole plan ends before ``--deadline-s``; folds write
``folds/<variant>/fold-K.json`` and are pooled into ``loco-<variant>.json``; finals write a
checkpoint and card under ``weights/<job>/``. The same configs train on a CPU with
``sitewatch model train`` / ``sitewatch model crossval``; only the speed differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.crossval import merge_fold_files, run_fold  # noqa: E402
from models.train import _ConfigLoader, load_config, train  # noqa: E402


def _config(job: dict[str, Any], data_map: dict[str, str]) -> Any:
    """Load the job's config with data roots mapped to npz exports and the job's overrides applied."""
    path = ROOT / job["config"]
    raw = yaml.load(path.read_text(), Loader=_ConfigLoader)
    data = []
    for entry in raw["data"]:
        entry = dict(entry)
        if entry["format"] in data_map:
            entry["root"], entry["format"] = data_map[entry["format"]], "npz"
        data.append(entry)
    overrides = {"data": data, **job.get("overrides", {})}
    cfg = load_config(path, overrides)
    cfg.source = job["config"]
    return cfg


def _child(job: dict[str, Any], data_map: dict[str, str], out: Path) -> None:
    cfg = _config(job, data_map)
    started = time.time()
    cfg.run_dir = out / "state" / job["id"]  # resumable optimiser state: large, not a deliverable
    if job["kind"] == "fold":
        result = run_fold(cfg, 0, int(job["fold"]), val_groups=int(job.get("val_groups", 2)))
        folder = out / "folds" / job["variant"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"fold-{job['fold']}.json").write_text(json.dumps(result.to_dict(), indent=1))
        print(json.dumps({"job": job["id"], "f1": result.model.scores()["f1"], "s": round(time.time() - started)}))
    else:
        cfg.output_dir = out / "weights" / job["id"]
        res = train(cfg, resume=False, show_progress=False)
        metrics = {k: v.get("f1") for k, v in res.card.metrics.items()}
        print(
            json.dumps(
                {"job": job["id"], "weights": str(res.weights), "f1": metrics, "s": round(time.time() - started)}
            )
        )


def _expand(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Plan entries -> jobs: a ``crossval`` entry becomes one fold job per group."""
    jobs = []
    for entry in plan["jobs"]:
        if entry["kind"] == "crossval":
            for k in range(int(entry["folds"])):
                jobs.append({**entry, "kind": "fold", "fold": k, "id": f"{entry['variant']}-fold{k}"})
        else:
            jobs.append(entry)
    return jobs


def main() -> None:
    """Parse arguments; run as the parent (all jobs) or as one child job."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", type=Path, help="YAML plan: jobs (crossval / final) with config and overrides")
    ap.add_argument("--data-map", action="append", default=[], help="FORMAT=NPZ_FOLDER (repeatable)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deadline-s", type=float, default=420.0, help="Kill jobs still running after this")
    ap.add_argument("--only", default="", help="Comma-separated job ids (default all)")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    data_map = dict(m.split("=", 1) for m in args.data_map)
    if args.child:
        _child(json.loads(args.child), data_map, args.out)
        return
    plan = yaml.safe_load(args.plan.read_text())
    jobs = _expand(plan)
    if args.only:
        wanted = set(args.only.split(","))
        jobs = [j for j in jobs if j["id"] in wanted or j.get("variant") in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    started = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    procs = {}
    for job in jobs:
        log = (args.out / "logs" / f"{job['id']}.log").open("w")
        cmd = [sys.executable, __file__, "--out", str(args.out), "--child", json.dumps(job)]
        cmd += [a for m in args.data_map for a in ("--data-map", m)]
        procs[job["id"]] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), log)
    print(f"started {len(procs)} jobs", flush=True)
    while any(p.poll() is None for p, _ in procs.values()) and time.time() - started < args.deadline_s:
        time.sleep(5)
    for job_id, (p, log) in procs.items():
        if p.poll() is None:
            p.kill()
            print(f"killed {job_id} at the deadline", flush=True)
        log.close()
        print(f"{job_id}: rc={p.wait()} {(args.out / 'logs' / f'{job_id}.log').read_text().strip().splitlines()[-1:]}")
    summaries = {}
    for folder in sorted((args.out / "folds").glob("*")) if (args.out / "folds").exists() else []:
        report = merge_fold_files(sorted(folder.glob("fold-*.json")), folder.name)
        summary = report.summary()
        (args.out / f"loco-{folder.name}.json").write_text(json.dumps(summary, indent=1))
        summaries[folder.name] = {
            k: summary[k] for k in ("f1", "precision", "recall", "mean_group_f1", "baseline_f1", "pairs")
        }
    print(json.dumps({"elapsed_s": round(time.time() - started), "loco": summaries}))


if __name__ == "__main__":
    main()
