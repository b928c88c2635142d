"""Storage: SQLAlchemy schema, Alembic migrations and query functions (SQLite or PostgreSQL/PostGIS)."""

# Every table module registers its rows on the shared metadata when the package is imported.
from store import api_schema as api_schema
from store import iot_schema as iot_schema
from store import jobs_schema as jobs_schema
from store import risk_schema as risk_schema
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
