"""HTTP API benchmark: a 10 000-loan book served by uvicorn, driven at fixed concurrency from this process.

    python -m bench.api --json

Prints progress on stderr and, as its last stdout line, JSON with throughput and p50/p99 latency
for a scores page, a `since` page, one site's progress, a page of the portfolio's progress, a tile
and a trivial endpoint (``/healthz``, async, in the same server and run).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this file's folder comes first on sys.path and its name shadows the api package
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import httpx  # noqa: E402
import numpy as np  # noqa: E402

import store  # noqa: E402
from aoi.demo import DEMO_AS_OF, synthetic_portfolio  # noqa: E402
from aoi.records import ProgressPoint, SceneRecord  # noqa: E402
from api import tiles  # noqa: E402
from api.auth import new_token  # noqa: E402
from imagery.cache import SceneCache  # noqa: E402
from imagery.cog import write_cog  # noqa: E402
from jobs.progress import site_grid  # noqa: E402
from jobs.risk import score_portfolio  # noqa: E402
from risk.demo import synthetic_progress  # noqa: E402
from store import api_repo, progress_repo, repo, risk_repo  # noqa: E402

SCENE = "S2A_MSIL2A_20261001T100000_N0400_bench"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build(data_dir: Path, n_loans: int) -> dict:
    t0 = time.perf_counter()
    url = f"sqlite:///{data_dir / 'sitewatch.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    portfolio = synthetic_portfolio(1, n_loans)
    repo.save_portfolio(engine, portfolio, actor="bench")
    progress = {s.id: p for s in portfolio.sites if (p := synthetic_progress(s)) is not None}
    first = datetime(2026, 11, 1, 6, tzinfo=UTC)
    score_portfolio(engine, as_of=DEMO_AS_OF, progress=progress, scored_at=first)
    latest = risk_repo.latest_scores(engine)
    risk_repo.save_scores(engine, [s.data for s in latest[::2]], scored_at=first + timedelta(hours=2))
    log(f"scored {n_loans} loans in {time.perf_counter() - t0:.0f} s")
    site = portfolio.sites[0]
    points = [ProgressPoint(DEMO_AS_OF - timedelta(days=10 * k), 50.0, 40.0, 37.0, 43.0) for k in range(30)]
    rec = SceneRecord(site.id, "local", SCENE, datetime(2026, 10, 1, 10, tzinfo=UTC), 5.0, 0.97, True)
    # every site's summary through the real save path (what /v1/progress pages); the first one with a curve
    for site_id, summary in progress.items():
        progress_repo.save_progress(
            engine,
            summary=summary,
            points=points if site_id == site.id else [],
            observations=[],
            records=[rec] if site_id == site.id else [],
            inputs={},
        )
    grid = site_grid(site)
    data = np.full((3, grid.height, grid.width), 0.08, dtype=np.float32)
    write_cog(SceneCache(data_dir / "cache").path_for("local", SCENE, grid), data, grid, nodata=float("nan"),
              band_names=["B02", "B03", "B04"])  # fmt: skip
    token = new_token()
    api_repo.save_key(engine, key_id=token.key_id, name="bench", role="admin", sites=None,
                      token_sha256=token.token_sha256, actor="bench")  # fmt: skip
    c = site.boundary_wgs84.centroid
    tile = tiles.TMS.tile(c.x, c.y, 16)
    engine.dispose()
    log(f"stored {n_loans} loans in {time.perf_counter() - t0:.0f} s")
    return {"url": url, "token": token.token, "site": site.id, "tile": (16, tile.x, tile.y)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drive(base: str, token: str, path: str, n: int, concurrency: int) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(
        base_url=base, headers=headers, timeout=30, limits=httpx.Limits(max_connections=concurrency)
    ) as c:
        for _ in range(5):
            c.get(path).raise_for_status()  # warm: caches, connections

        def one(_: int) -> float:
            t = time.perf_counter()
            r = c.get(path)
            r.raise_for_status()
            return (time.perf_counter() - t) * 1000

        t0 = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            lat = np.array(list(pool.map(one, range(n))))
        wall = time.perf_counter() - t0
    return {"rps": n / wall, "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--loans", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        state = build(data_dir, args.loans)
        port = free_port()
        env = {**os.environ, "SITEWATCH_DATA_DIR": str(data_dir), "SITEWATCH_DATABASE_URL": state["url"],
               "SITEWATCH_API_RATE_PER_S": "1e9", "SITEWATCH_API_RATE_BURST": "1000000000", "SITEWATCH_CHECKPOINT": ""}  # fmt: skip  # noqa: E501
        cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
               "--no-access-log", "--log-level", "warning"]  # fmt: skip
        server = subprocess.Popen(cmd, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start")
                time.sleep(0.3)
            z, x, y = state["tile"]
            since = "2026-11-01T07:00:00Z"
            paths = {
                "trivial": "/healthz",
                "scores": "/v1/scores?limit=100",
                "scores_since": f"/v1/scores?limit=100&since={since}",
                "progress": f"/v1/sites/{state['site']}/progress",
                "progress_page": "/v1/progress?limit=100",
                "tile": f"/v1/sites/{state['site']}/scenes/{SCENE}/tiles/{z}/{x}/{y}.png",
            }
            res = {}
            for name, path in paths.items():
                res[name] = drive(base, state["token"], path, args.requests, args.concurrency)
                log(f"{name}: {res[name]}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    out = {
        "loans": args.loans,
        "concurrency": args.concurrency,
        "requests_per_endpoint": args.requests,
        "scores_rps": round(res["scores"]["rps"], 1),
        "scores_p50_ms": round(res["scores"]["p50_ms"], 2),
        "scores_p99_ms": round(res["scores"]["p99_ms"], 2),
        "scores_since_rps": round(res["scores_since"]["rps"], 1),
        "scores_since_p99_ms": round(res["scores_since"]["p99_ms"], 2),
        "progress_rps": round(res["progress"]["rps"], 1),
        "progress_p99_ms": round(res["progress"]["p99_ms"], 2),
        "progress_page_rps": round(res["progress_page"]["rps"], 1),
        "progress_page_p99_ms": round(res["progress_page"]["p99_ms"], 2),
        "tile_rps": round(res["tile"]["rps"], 1),
        "tile_p50_ms": round(res["tile"]["p50_ms"], 2),
        "tile_p99_ms": round(res["tile"]["p99_ms"], 2),
        "trivial_rps": round(res["trivial"]["rps"], 1),
        "trivial_p99_ms": round(res["trivial"]["p99_ms"], 2),
        "ratio": round(res["scores"]["rps"] / res["trivial"]["rps"], 3),
    }
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
