"""A real uvicorn server on 127.0.0.1 with a free port, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from sqlalchemy import Engine

import store
from aoi.demo import DEMO_AS_OF, demo_portfolio
from aoi.records import ProgressPoint, SceneRecord
from api import tiles
from api.app import create_app
from api.auth import new_token
from imagery.cache import SceneCache
from imagery.cog import write_cog
from jobs.progress import site_grid
from jobs.risk import score_portfolio
from jobs.settings import Settings
from risk.demo import synthetic_progress
from store import api_repo, progress_repo, repo, risk_repo
from tests.conftest import fresh_database_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, settings: Settings) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url)


@pytest.fixture
def client(settings: Settings, engine) -> Iterator[httpx.Client]:
    """An HTTP client with an admin key, talking to a live server over a migrated database."""
    token = new_token()
    api_repo.save_key(engine, key_id=token.key_id, name="tests", role="admin", sites=None,
                      token_sha256=token.token_sha256, actor="test")  # fmt: skip
    headers = {"Authorization": f"Bearer {token.token}"}
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=10, headers=headers) as http:
        yield http


# ---------------------------------------------------------------- a small stored state, built once per backend


@dataclass
class ApiState:
    """A live server over a stored demo book: keys per role, progress, scores, alerts and one tiled scene."""

    url: str
    engine: Engine
    settings: Settings
    tokens: dict[str, str]
    loan_ids: list[str]
    scene_id: str
    tile_inside: tuple[int, int, int]
    tile_outside: tuple[int, int, int]
    rescored_loan: str
    rescored_at: datetime

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        if key is not None:
            headers["Authorization"] = f"Bearer {self.tokens[key]}"
        return httpx.Client(base_url=self.url, timeout=20, headers=headers)


#: The key a scoped officer holds: two of the six demo sites.
SCOPED_SITES = ("de-rgb-hall", "es-sev-solar")
SCENE_ID = "S2A_MSIL2A_20261001T100000_N0400_de-rgb-hall"


def _module_db_url(request: pytest.FixtureRequest, tmp: Path) -> Iterator[str]:
    yield from fresh_database_url(request.param, tmp, prefix="sw_api")


def _store_state(engine: Engine, settings: Settings) -> dict[str, Any]:
    portfolio = demo_portfolio()
    repo.save_portfolio(engine, portfolio, actor="test")
    # progress: the fate curve as a synthetic summary, a short series and a few scene records
    progress = {}
    for site in portfolio.sites:
        summary = synthetic_progress(site)
        assert summary is not None
        progress[site.id] = summary
        points = [
            ProgressPoint(DEMO_AS_OF - timedelta(days=30 * k), 50.0 - k, 40.0 - k, 37.0 - k, 43.0 - k)
            for k in range(3, -1, -1)
        ]
        records = [
            SceneRecord(site.id, "local", f"S2A_MSIL2A_2026090{k}T100000_N0400_{site.id}",
                        datetime(2026, 9, 1 + k, 10, tzinfo=UTC), 80.0, 0.1, False, "too cloudy")
            for k in range(2)
        ]  # fmt: skip
        if site.id == "de-rgb-hall":
            records.append(
                SceneRecord(site.id, "local", SCENE_ID, datetime(2026, 10, 1, 10, tzinfo=UTC), 5.0, 0.97, True)
            )
        progress_repo.save_progress(
            engine, summary=summary, points=points, observations=[], records=records, inputs={"method": summary.method}
        )
    first = datetime(2026, 11, 1, 6, tzinfo=UTC)
    outcomes = score_portfolio(engine, as_of=DEMO_AS_OF, progress=progress, scored_at=first)
    assert all(o.status == "ok" for o in outcomes)
    # one loan rescored later: the only one a `since` between the runs returns
    latest = {s.data.loan_id: s for s in risk_repo.latest_scores(engine)}
    rescored_loan, rescored_at = "L-es-sev-solar", first + timedelta(hours=2)
    risk_repo.save_scores(engine, [latest[rescored_loan].data], scored_at=rescored_at)
    # a cached true-colour scene of de-rgb-hall: bright roof in the middle of the site grid
    site = next(s for s in portfolio.sites if s.id == "de-rgb-hall")
    grid = site_grid(site)
    data = np.full((3, grid.height, grid.width), 0.05, dtype=np.float32)
    data[:, grid.height // 3 : 2 * grid.height // 3, grid.width // 3 : 2 * grid.width // 3] = 0.25
    path = SceneCache(settings.cache_dir).path_for("local", SCENE_ID, grid)
    write_cog(path, data, grid, nodata=float("nan"), band_names=["B02", "B03", "B04"])
    lon, lat = site.boundary_wgs84.centroid.x, site.boundary_wgs84.centroid.y
    inside = tiles.TMS.tile(lon, lat, 16)
    outside = tiles.TMS.tile(lon + 0.2, lat, 16)
    tokens = {}
    for name, role, scope in (
        ("admin", "admin", None),
        ("officer", "officer", None),
        ("risk_engine", "risk_engine", None),
        ("ingest", "ingest", None),
        ("scoped", "officer", SCOPED_SITES),
        ("scoped_ingest", "ingest", SCOPED_SITES),
        ("revoked", "admin", None),
    ):
        token = new_token()
        api_repo.save_key(engine, key_id=token.key_id, name=name, role=role, sites=scope,
                          token_sha256=token.token_sha256, actor="test")  # fmt: skip
        tokens[name] = token.token
        if name == "revoked":
            api_repo.revoke_key(engine, token.key_id, actor="test")
    return {
        "tokens": tokens,
        "loan_ids": sorted(ln.id for ln in portfolio.loans),
        "scene_id": SCENE_ID,
        "tile_inside": (16, inside.x, inside.y),
        "tile_outside": (16, outside.x, outside.y),
        "rescored_loan": rescored_loan,
        "rescored_at": rescored_at,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiState]:
    """A live server over a small stored book, built once per test module and backend."""
    tmp = tmp_path_factory.mktemp("api")
    urls = _module_db_url(request, tmp)
    db = next(urls)
    settings = Settings(data_dir=tmp / "data", database_url=db, checkpoint="", api_rate_burst=10_000)
    eng = store.connect(db)
    store.upgrade(eng)
    state = _store_state(eng, settings)
    try:
        with LiveServer(settings) as live:
            yield ApiState(live.url, eng, settings, **state)
    finally:
        eng.dispose()
        for _ in urls:
            pass
