"""Open what a front door or a worker needs: the database engine, migrated, and the imagery provider."""

from __future__ import annotations

import functools
from pathlib import Path

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


@functools.lru_cache(maxsize=8)
def provider_from(
    kind: str,
    *,
    archive_dir: str | None,
    stac_url: str | None,
    stac_collection: str,
    sentinelhub_client_id: str | None,
    sentinelhub_client_secret: str | None,
    sentinelhub_base_url: str,
) -> SceneProvider:
    """This process's provider for plain configuration values (built once per distinct set).

    Providers keep their own state fresh (the local one re-indexes when its catalog changes), so
    every refresh and request of a process can share one.
    """
    return make_provider(
        kind,
        archive_dir=archive_dir,
        stac_url=stac_url,
        stac_collection=stac_collection,
        sentinelhub_client_id=sentinelhub_client_id,
        sentinelhub_client_secret=sentinelhub_client_secret,
        sentinelhub_base_url=sentinelhub_base_url,
    )


def open_provider(settings: Settings) -> SceneProvider:
    """The configured imagery provider (shared within this process)."""
    archive: Path = settings.resolved_archive_dir
    return provider_from(
        settings.imagery_provider,
        archive_dir=str(archive.resolve()),
        stac_url=settings.stac_url,
        stac_collection=settings.stac_collection,
        sentinelhub_client_id=settings.sentinelhub_client_id,
        sentinelhub_client_secret=settings.sentinelhub_client_secret,
        sentinelhub_base_url=settings.sentinelhub_base_url,
    )
