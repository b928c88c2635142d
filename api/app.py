"""The FastAPI application factory: the one place every router, middleware and handler is registered."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

import store
from api.auth import KeyCache, TokenBuckets
from api.cache import LRU
from api.errors import install_error_handlers
from api.metrics import EdgeMiddleware, Metrics
from api.openapi import install_openapi
from api.routes import alerts, case_notes, feeds, health, iot, jobs, progress, report, scores, sites, tiles, web
from api.routes.scores import ScoresVersion
from jobs.settings import Settings

logger = logging.getLogger(__name__)

__version__ = "0.2.0"

#: Rendered score pages and tiles kept in memory (entries).
SCORE_PAGE_CACHE = 256
TILE_CACHE = 2048

_DESCRIPTION = """Construction progress from satellite imagery and site sensors, and loan early warning.

Authenticate with an API key (`sitewatch keys create`): `Authorization: Bearer <key>` or
`X-API-Key: <key>`. Roles: **admin** (everything), **officer** (read its portfolio, acknowledge
alerts, start refreshes), **risk_engine** (scores and progress), **ingest** (readings and
payments). A key scoped to some sites sees nothing else: other sites answer 404 like missing ones.
Errors are RFC 9457 `application/problem+json`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; tests pass their own Settings instead of patching the environment."""
    settings = settings or Settings()
    engine = store.connect(settings.resolved_database_url)
    metrics = Metrics()

    app = FastAPI(title="SiteWatch", version=__version__, description=_DESCRIPTION)
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.keys = KeyCache()
    app.state.rate_limits = TokenBuckets(settings.api_rate_per_s, settings.api_rate_burst)
    app.state.scores_version = ScoresVersion()
    app.state.score_pages = LRU[tuple[bytes, str, str | None]](SCORE_PAGE_CACHE)
    app.state.tiles = LRU[tuple[bytes, str]](TILE_CACHE)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "If-None-Match"],
            expose_headers=["ETag", "Link", "Location", "Retry-After"],
        )
    app.add_middleware(EdgeMiddleware, metrics=metrics, max_body_bytes=settings.api_max_body_bytes)
    app.include_router(health.router, tags=["health"])
    app.include_router(sites.router, prefix="/v1/sites", tags=["sites"])
    app.include_router(progress.router, prefix="/v1/sites", tags=["progress"])
    app.include_router(progress.portfolio_router, prefix="/v1", tags=["progress"])
    app.include_router(tiles.router, prefix="/v1/sites", tags=["tiles"])
    app.include_router(report.router, prefix="/v1/sites", tags=["report"])
    app.include_router(scores.router, prefix="/v1", tags=["scores"])
    app.include_router(alerts.router, prefix="/v1", tags=["alerts"])
    app.include_router(case_notes.router, prefix="/v1", tags=["alerts"])
    app.include_router(jobs.router, prefix="/v1", tags=["jobs"])
    app.include_router(feeds.router, prefix="/v1/feeds", tags=["ingest"])
    app.include_router(iot.router, prefix="/v1/iot", tags=["ingest"])
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    install_error_handlers(app)
    install_openapi(app)
    return app
