"""Open what a front door needs from the settings: the database engine, migrated."""

from __future__ import annotations

from sqlalchemy import Engine

import store
from jobs.settings import Settings


def open_engine(settings: Settings, *, migrate: bool = True) -> Engine:
    """Connect to the configured database; bring its schema to head when ``migrate``."""
    engine = store.connect(settings.resolved_database_url)
    if migrate:
        store.upgrade(engine)
    return engine
