"""Open what a front door needs from the settings: the database engine, migrated."""

from __future__ import annotations

from sqlalchemy import Engine

import store
from imagery.providers import make_provider
from imagery.providers.base import SceneProvider
from jobs.settings import Settings


def open_engine(settings: Settings, *, migrate: bool = True) -> Engine:
    """Connect to the configured database; bring its schema to head when ``migrate``."""
    engine = store.connect(settings.resolved_database_url)
    if migrate:
        store.upgrade(engine)
    return engine


def open_provider(settings: Settings) -> SceneProvider:
    """The configured imagery provider, built from plain settings values."""
    return make_provider(
        settings.imagery_provider,
        archive_dir=settings.resolved_archive_dir,
        stac_url=settings.stac_url,
        stac_collection=settings.stac_collection,
        sentinelhub_client_id=settings.sentinelhub_client_id,
        sentinelhub_client_secret=settings.sentinelhub_client_secret,
        sentinelhub_base_url=settings.sentinelhub_base_url,
    )
