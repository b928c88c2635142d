"""Storage: SQLAlchemy schema, Alembic migrations and query functions (SQLite or PostgreSQL/PostGIS)."""

from store.db import connect, current_revision, head_revision, schema_is_current, upgrade
from store.errors import DatabaseUnavailableError, SchemaOutdatedError, StoreError

__all__ = [
    "DatabaseUnavailableError",
    "SchemaOutdatedError",
    "StoreError",
    "connect",
    "current_revision",
    "head_revision",
    "schema_is_current",
    "upgrade",
]
