"""Suite-wide fixtures and marker handling."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

import store

REPO = Path(__file__).resolve().parents[1]
#: Real sample data (research-licensed labels): never bundled, only read when present.
SHARED_DATA = Path(os.environ.get("SITEWATCH_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("sample_data") and not SHARED_DATA.is_dir():
        pytest.skip(f"sample data not found at {SHARED_DATA}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data (tests using it carry the sample_data marker)."""
    return SHARED_DATA


# ---------------------------------------------------------------- databases
#: Where the PostgreSQL+PostGIS tests run; each test gets its own schema there.
POSTGRES_URL = os.environ.get("SITEWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_or_skip() -> Engine:
    admin = store.connect(POSTGRES_URL, pool_pre_ping=False)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any connection failure means "no server here"
        admin.dispose()
        if os.environ.get("SITEWATCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (SITEWATCH_REQUIRE_POSTGRES=1) but unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    return admin


def fresh_database_url(backend: str, tmp: Path, *, prefix: str = "sw_test") -> Iterator[str]:
    """Yield an empty database URL on a backend: a file on SQLite, a private schema on PostgreSQL.

    The PostgreSQL schema is first on the search path (PostGIS stays in ``public``) and is
    dropped afterwards.
    """
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'sitewatch.db'}"
        return
    admin = _postgres_or_skip()
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema},public"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend (a private schema on PostgreSQL)."""
    yield from fresh_database_url(request.param, tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated, empty database on each backend."""
    eng = store.connect(db_url)
    store.upgrade(eng)
    yield eng
    eng.dispose()
