"""Tables of refresh jobs: one row per run (site or portfolio stage), and site locks.

A run's identity is its ``id`` (a hex uuid made by whoever submits it). A worker that picks a
run up again after a crash (Dask reschedules the task of a killed worker) updates the same row,
so a batch has exactly one row per site whatever happened to the machines. ``site_id`` is not a
foreign key: the history of a site outlives its removal from the portfolio.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.schema import Base, UTCDateTime, utcnow


class JobRunRow(Base):
    """One refresh run: a site's pipeline, or a portfolio's scoring stage."""

    __tablename__ = "job_runs"
    __table_args__ = (
        Index("ix_job_runs_site_created", "site_id", "created_at"),
        Index("ix_job_runs_status", "status"),
        Index("ix_job_runs_batch", "batch_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: Runs submitted together (one ``refresh --all`` or one scheduler tick) share a batch id.
    batch_id: Mapped[str] = mapped_column(String(32))
    #: "site" (discover, sensors, fetch, model, save) or "portfolio" (features, score, alerts, notify).
    kind: Mapped[str] = mapped_column(String(16), default="site")
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: "schedule", "manual" or "api".
    trigger: Mapped[str] = mapped_column(String(16))
    #: "queued", "running", "ok", "skipped", "failed" or "abandoned" (its process died).
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    as_of: Mapped[date | None] = mapped_column(Date, nullable=True)
    executor: Mapped[str] = mapped_column(String(32), default="inprocess")
    #: How many times a worker started this run (more than 1 after a worker was lost).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: host:pid of the process running (or that ran) it.
    owner: Mapped[str] = mapped_column(String(128), default="")
    #: Seconds per stage, e.g. {"discover": 0.01, "fetch": 1.2, "model": 0.8, "save": 0.05}.
    stage_seconds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Counts, e.g. {"scenes_found": 80, "scenes_new": 2, "scenes_used": 50}.
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class JobLockRow(Base):
    """Who holds a site's refresh lock, until when (the lock backend for databases without advisory locks)."""

    __tablename__ = "job_locks"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
