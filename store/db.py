"""Engines and migrations."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from store.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def connect(url: str, **engine_kwargs: Any) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL.

    SQLite gets WAL journaling, enforced foreign keys and a busy timeout, so the API and a
    refresh job can share the file; its parent folder is created when missing.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **engine_kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine_kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **engine_kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (atomically on PostgreSQL)."""
    cfg = _alembic_config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot reach the database: {exc.orig}") from exc
    logger.debug("database at revision %s", revision)


def head_revision() -> str:
    """The newest migration the code knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    return head or ""


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None when it has none)."""
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot reach the database: {exc.orig}") from exc


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is reachable and at the head migration."""
    return current_revision(engine) == head_revision()
