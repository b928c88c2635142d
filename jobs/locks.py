"""One refresh per site at a time: a lock taken without waiting, on SQLite or PostgreSQL.

On PostgreSQL the lock is a session-level advisory lock on a hash of the site id, held by a
connection opened for the purpose: every machine that shares the database sees it, and the
server drops it when the holder's connection dies (a killed worker never blocks a site). On
other databases it is a row with an owner and an expiry (``job_locks``): a holder that dies
blocks the site until the expiry, except for the same owner (a job id), so a rescheduled job
takes its own lock again at once. Long jobs call :meth:`SiteLock.renew` between stages.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from types import TracebackType
from typing import Literal, Self

from sqlalchemy import Connection, Engine

from store import jobs_repo

logger = logging.getLogger(__name__)

#: How long a lock row lives without renewal; a refresh renews it after every stage.
DEFAULT_LOCK_TTL = timedelta(minutes=30)

LockBackend = Literal["auto", "row", "advisory"]


class SiteLockedError(RuntimeError):
    """Another refresh holds the site's lock."""


class SiteLock:
    """The refresh lock of one site.

    Args:
        engine: The shared database.
        site_id: The site.
        owner: Who takes it: the job id, so a retried job can take its own lock again.
        ttl: Life of a lock row without renewal (row backend).
        backend: "advisory" (PostgreSQL), "row", or "auto" (advisory on PostgreSQL, else row).
    """

    def __init__(
        self,
        engine: Engine,
        site_id: str,
        *,
        owner: str,
        ttl: timedelta = DEFAULT_LOCK_TTL,
        backend: LockBackend = "auto",
    ) -> None:
        self.engine = engine
        self.site_id = site_id
        self.owner = owner
        self.ttl = ttl
        if backend == "auto":
            backend = "advisory" if engine.dialect.name == "postgresql" else "row"
        if backend == "advisory" and engine.dialect.name != "postgresql":
            raise ValueError(f"advisory locks need PostgreSQL, not {engine.dialect.name}")
        self.backend: Literal["row", "advisory"] = backend
        self._conn: Connection | None = None
        self.held = False

    def acquire(self) -> bool:
        """Take the lock if nobody else holds it; never waits. Returns whether it is now held."""
        if self.held:
            return True
        if self.backend == "row":
            self.held = jobs_repo.try_lock_row(self.engine, self.site_id, owner=self.owner, ttl=self.ttl)
        else:
            conn = self.engine.connect()
            try:
                self.held = jobs_repo.try_advisory_lock(conn, self.site_id)
                conn.commit()
            except Exception:
                conn.close()
                raise
            if self.held:
                self._conn = conn
            else:
                conn.close()
        logger.debug("lock %s: %s", "taken" if self.held else "busy", self.owner, extra={"site_id": self.site_id})
        return self.held

    def renew(self) -> None:
        """Push the expiry of a held row lock ``ttl`` into the future (advisory locks need nothing)."""
        if self.held and self.backend == "row":
            self.held = jobs_repo.try_lock_row(self.engine, self.site_id, owner=self.owner, ttl=self.ttl)

    def release(self) -> None:
        """Give the lock back (safe to call when it is not held)."""
        if not self.held:
            return
        try:
            if self.backend == "row":
                jobs_repo.release_lock_row(self.engine, self.site_id, owner=self.owner)
            elif self._conn is not None:
                jobs_repo.advisory_unlock(self._conn, self.site_id)
                self._conn.commit()
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self.held = False

    def __enter__(self) -> Self:
        if not self.acquire():
            raise SiteLockedError(f"another refresh of site {self.site_id} is running")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
