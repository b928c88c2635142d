"""The FastAPI application factory."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import store
from api.errors import install_error_handlers
from api.routes import health, iot, sites
from jobs.settings import Settings

logger = logging.getLogger(__name__)

__version__ = "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; tests pass their own Settings instead of patching the environment."""
    settings = settings or Settings()
    app = FastAPI(
        title="SiteWatch",
        version=__version__,
        description="Construction progress from satellite imagery and site sensors, and loan early warning.",
    )
    app.state.settings = settings
    app.state.engine = store.connect(settings.resolved_database_url)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"])
    app.include_router(health.router, tags=["health"])
    app.include_router(sites.router, prefix="/v1/sites", tags=["sites"])
    app.include_router(iot.router, prefix="/v1/iot", tags=["iot"])
    install_error_handlers(app)
    return app
