"""Refresh job records and site locks: query functions over ``job_runs`` and ``job_locks``.

Two lock backends, both taken without waiting:

- a row in ``job_locks`` with an owner and an expiry, taken by one atomic
  ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired OR mine`` (SQLite >= 3.24 and PostgreSQL);
  a holder that dies leaves the row until it expires, and the same owner may take it again;
- a PostgreSQL session-level advisory lock (``pg_try_advisory_lock``) on a 64-bit hash of the
  schema and site id, held by a dedicated connection: it works across machines and the server
  drops it when the holder's connection dies. Advisory locks are per database, not per schema,
  so the schema is part of the key: two books in two schemas of one database never block each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.errors import StoreError
from store.jobs_schema import JobLockRow, JobRunRow
from store.schema import utcnow

#: Statuses of a run that is over.
FINISHED_STATUSES: frozenset[str] = frozenset({"ok", "skipped", "failed", "abandoned"})


class JobNotFoundError(StoreError, LookupError):
    """No refresh job with that id."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One stored refresh run (see :class:`store.jobs_schema.JobRunRow` for the fields)."""

    id: str
    batch_id: str
    kind: str
    site_id: str | None
    trigger: str
    status: str
    reason: str
    as_of: date | None
    executor: str
    attempts: int
    owner: str
    stage_seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        """Wall time from start to finish, seconds (None while not finished)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (ISO dates and times)."""
        return {
            "id": self.id,
            "batch_id": self.batch_id,
            "kind": self.kind,
            "site_id": self.site_id,
            "trigger": self.trigger,
            "status": self.status,
            "reason": self.reason,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "executor": self.executor,
            "attempts": self.attempts,
            "owner": self.owner,
            "stage_seconds": dict(self.stage_seconds),
            "counts": dict(self.counts),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "seconds": self.seconds,
        }


def _record(row: JobRunRow) -> JobRecord:
    return JobRecord(
        row.id,
        row.batch_id,
        row.kind,
        row.site_id,
        row.trigger,
        row.status,
        row.reason,
        row.as_of,
        row.executor,
        row.attempts,
        row.owner,
        {str(k): float(v) for k, v in (row.stage_seconds or {}).items()},
        dict(row.counts or {}),
        row.created_at,
        row.started_at,
        row.finished_at,
    )


# ---------------------------------------------------------------- runs


def create_jobs(
    engine: Engine,
    jobs: Iterable[tuple[str, str | None]],
    *,
    batch_id: str,
    trigger: str,
    as_of: date | None,
    executor: str,
    kind: str = "site",
    now: datetime | None = None,
) -> None:
    """Insert queued runs ``(job id, site id)`` in one transaction; ids already stored are left as they are.

    ``now`` is the creation time recorded (default: now, UTC); the scheduler passes its clock.
    """
    jobs = list(jobs)
    now = now or utcnow()
    with Session(engine) as session, session.begin():
        known = set(session.scalars(select(JobRunRow.id).where(JobRunRow.id.in_([j for j, _ in jobs]))))
        session.add_all(
            JobRunRow(
                id=job_id,
                batch_id=batch_id,
                kind=kind,
                site_id=site_id,
                trigger=trigger,
                status="queued",
                reason="",
                as_of=as_of,
                executor=executor,
                attempts=0,
                owner="",
                stage_seconds={},
                counts={},
                created_at=now,
            )
            for job_id, site_id in jobs
            if job_id not in known
        )


def start_job(engine: Engine, job_id: str, *, owner: str) -> int:
    """Mark a run as running by ``owner``; returns its attempt number (1 on the first start).

    Raises:
        JobNotFoundError: no run with that id.
    """
    with Session(engine) as session, session.begin():
        row = session.get(JobRunRow, job_id)
        if row is None:
            raise JobNotFoundError(job_id)
        row.attempts = (row.attempts or 0) + 1
        row.status = "running"
        row.owner = owner
        row.reason = ""
        row.started_at = utcnow()
        row.finished_at = None
        return row.attempts


def finish_job(
    engine: Engine,
    job_id: str,
    *,
    status: str,
    reason: str = "",
    stage_seconds: Mapping[str, float] | None = None,
    counts: Mapping[str, Any] | None = None,
) -> None:
    """Record how a run ended (status, reason, timings per stage, counts).

    Raises:
        JobNotFoundError: no run with that id.
        ValueError: ``status`` is not a finished status.
    """
    if status not in FINISHED_STATUSES:
        raise ValueError(f"status {status!r} is not one of {sorted(FINISHED_STATUSES)}")
    with Session(engine) as session, session.begin():
        row = session.get(JobRunRow, job_id)
        if row is None:
            raise JobNotFoundError(job_id)
        now = utcnow()
        row.status = status
        row.reason = reason
        row.stage_seconds = {k: round(float(v), 4) for k, v in (stage_seconds or {}).items()}
        row.counts = dict(counts or {})
        row.started_at = row.started_at or now
        row.finished_at = now


def in_flight_jobs(engine: Engine) -> list[JobRecord]:
    """Runs still ``queued`` or ``running``, oldest first."""
    stmt = (
        select(JobRunRow)
        .where(JobRunRow.status.in_(["queued", "running"]))
        .order_by(JobRunRow.created_at, JobRunRow.id)
    )
    with Session(engine) as session:
        return [_record(r) for r in session.scalars(stmt)]


def abandon_job(
    engine: Engine,
    job_id: str,
    *,
    reason: str,
    expect: str,
    unless_lock_row_live: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Mark one run abandoned if it still has status ``expect``; returns whether it was marked.

    One conditional statement, so a run that finished meanwhile keeps its status.

    Args:
        engine: The database.
        job_id: The run.
        reason: Why, recorded on the run.
        expect: "queued" or "running": the status the caller saw.
        unless_lock_row_live: A site id: leave the run alone while that site has a lock row owned
            by the run that has not expired (its holder is alive and renewing it).
        now: The time the expiry is compared with and the run is finished at (default: now, UTC).
    """
    now = now or utcnow()
    stmt = update(JobRunRow).where(JobRunRow.id == job_id, JobRunRow.status == expect)
    if unless_lock_row_live is not None:
        live = (
            select(JobLockRow.site_id)
            .where(
                JobLockRow.site_id == unless_lock_row_live,
                JobLockRow.owner == job_id,
                JobLockRow.expires_at >= now,
            )
            .exists()
        )
        stmt = stmt.where(~live)
    with engine.begin() as conn:
        result = conn.execute(stmt.values(status="abandoned", reason=reason, finished_at=now))
        return int(getattr(result, "rowcount", 0) or 0) == 1


def abandon_running(engine: Engine, site_id: str, *, except_job: str) -> int:
    """Mark a site's other ``running`` runs as abandoned (call while holding the site's lock).

    Holding the lock proves nobody else runs the site, so a run still marked running died
    with its process. Returns how many were marked.
    """
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(JobRunRow)
            .where(JobRunRow.site_id == site_id, JobRunRow.status == "running", JobRunRow.id != except_job)
            .values(status="abandoned", reason="its process stopped before it finished", finished_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)


def get_job(engine: Engine, job_id: str) -> JobRecord:
    """One run.

    Raises:
        JobNotFoundError: no run with that id.
    """
    with Session(engine) as session:
        row = session.get(JobRunRow, job_id)
        if row is None:
            raise JobNotFoundError(job_id)
        return _record(row)


def list_jobs(
    engine: Engine,
    *,
    site_id: str | None = None,
    batch_id: str | None = None,
    status: str | None = None,
    limit: int | None = 100,
) -> list[JobRecord]:
    """Runs matching every filter given, newest first."""
    stmt = select(JobRunRow).order_by(JobRunRow.created_at.desc(), JobRunRow.id)
    if site_id is not None:
        stmt = stmt.where(JobRunRow.site_id == site_id)
    if batch_id is not None:
        stmt = stmt.where(JobRunRow.batch_id == batch_id)
    if status is not None:
        stmt = stmt.where(JobRunRow.status == status)
    if limit is not None:
        stmt = stmt.limit(limit)
    with Session(engine) as session:
        return [_record(r) for r in session.scalars(stmt)]


def last_runs(
    engine: Engine, *, trigger: str | None = None, ignore_reason_prefix: str | None = None
) -> dict[str, datetime]:
    """Per site, when its newest run that ran (ok, skipped or failed; not abandoned) was created.

    The scheduler's memory: creation times come from the clock of whoever queued the run. Runs
    whose reason starts with ``ignore_reason_prefix`` do not count (a run skipped because the
    site was locked did not refresh it).
    """
    stmt = (
        select(JobRunRow.site_id, func.max(JobRunRow.created_at))
        .where(JobRunRow.kind == "site", JobRunRow.status.in_(["ok", "skipped", "failed"]))
        .group_by(JobRunRow.site_id)
    )
    if trigger is not None:
        stmt = stmt.where(JobRunRow.trigger == trigger)
    if ignore_reason_prefix is not None:
        stmt = stmt.where(~JobRunRow.reason.startswith(ignore_reason_prefix, autoescape=True))
    out: dict[str, datetime] = {}
    with Session(engine) as session:
        for site_id, started in session.execute(stmt):
            if site_id is not None and started is not None:
                out[str(site_id)] = started
    return out


# ---------------------------------------------------------------- locks


def try_lock_row(engine: Engine, site_id: str, *, owner: str, ttl: timedelta, now: datetime | None = None) -> bool:
    """Take (or renew) a site's lock row when it is free, expired or already ``owner``'s; never waits.

    One statement, so two processes racing for it cannot both win (SQLite >= 3.35 for RETURNING).
    """
    now = now or utcnow()
    values = {"site_id": site_id, "owner": owner, "acquired_at": now, "expires_at": now + ttl}
    free = (JobLockRow.expires_at < now) | (JobLockRow.owner == owner)
    stmt: Any
    if engine.dialect.name == "postgresql":
        ins = postgresql.insert(JobLockRow).values(**values)
        stmt = ins.on_conflict_do_update(
            index_elements=[JobLockRow.site_id],
            set_={"owner": ins.excluded.owner, "acquired_at": ins.excluded.acquired_at,
                  "expires_at": ins.excluded.expires_at},
            where=free,
        )  # fmt: skip
    else:
        ins_lite = sqlite.insert(JobLockRow).values(**values)
        stmt = ins_lite.on_conflict_do_update(
            index_elements=[JobLockRow.site_id],
            set_={"owner": ins_lite.excluded.owner, "acquired_at": ins_lite.excluded.acquired_at,
                  "expires_at": ins_lite.excluded.expires_at},
            where=free,
        )  # fmt: skip
    with engine.begin() as conn:
        # RETURNING says whether the row was written (rowcount of an upsert differs between drivers)
        return conn.execute(stmt.returning(JobLockRow.owner)).first() is not None


def release_lock_row(engine: Engine, site_id: str, *, owner: str) -> None:
    """Drop a site's lock row if ``owner`` holds it."""
    with engine.begin() as conn:
        conn.execute(delete(JobLockRow).where(JobLockRow.site_id == site_id, JobLockRow.owner == owner))


def lock_key(site_id: str, schema: str = "public") -> int:
    """A stable signed 64-bit key for a site's advisory lock (the first 8 bytes of sha256).

    ``schema`` is the schema the book lives in: advisory locks are shared by the whole database.
    """
    digest = hashlib.sha256(f"sitewatch:refresh:{schema}:{site_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _schema_lock_key(conn: Connection, site_id: str) -> int:
    return lock_key(site_id, str(conn.execute(text("SELECT current_schema()")).scalar()))


def try_advisory_lock(conn: Connection, site_id: str) -> bool:
    """``pg_try_advisory_lock`` on the site's key, held by ``conn``'s session (PostgreSQL only)."""
    key = _schema_lock_key(conn, site_id)
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())


def advisory_unlock(conn: Connection, site_id: str) -> None:
    """Release what :func:`try_advisory_lock` took on the same connection."""
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _schema_lock_key(conn, site_id)})
