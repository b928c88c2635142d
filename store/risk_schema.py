"""Risk tables (migration 0004).

The payments and market feeds, rejected feed rows, scores, alerts, watch-list cases with their
tasks, and every notification attempt.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from store.schema import Base, UTCDateTime, utcnow

#: Statuses of an alert that is not resolved: at most one such alert per dedupe key.
UNRESOLVED = ("open", "acknowledged")


class PaymentRow(Base):
    """One instalment of a loan from the servicing feed (the latest feed wins)."""

    __tablename__ = "risk_payments"
    __table_args__ = (UniqueConstraint("loan_id", "due_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    due_date: Mapped[date] = mapped_column(Date)
    amount_due: Mapped[float] = mapped_column(Float)
    paid_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    amount_paid: Mapped[float] = mapped_column(Float, default=0.0)
    restructured: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(256), default="")
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MarketRow(Base):
    """One value of a regional market indicator."""

    __tablename__ = "risk_market"
    __table_args__ = (UniqueConstraint("region", "indicator", "on_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    region: Mapped[str] = mapped_column(String(32), index=True)
    indicator: Mapped[str] = mapped_column(String(64))
    on_date: Mapped[date] = mapped_column(Date)
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(256), default="")
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RejectedFeedRow(Base):
    """A feed row that failed validation, kept with its reason where an operator can list it."""

    __tablename__ = "risk_rejected_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feed: Mapped[str] = mapped_column(String(16), index=True)
    source: Mapped[str] = mapped_column(String(256))
    row: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64), default="")
    field: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScoreRow(Base):
    """One score of one loan, with the inputs, configuration version and contributions behind it."""

    __tablename__ = "risk_scores"
    __table_args__ = (Index("ix_risk_scores_loan_time", "loan_id", "scored_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"))
    site_id: Mapped[str] = mapped_column(String(64))
    as_of: Mapped[date] = mapped_column(Date)
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    config_version: Mapped[str] = mapped_column(String(64))
    config_sha256: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    pd: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(8))
    colour: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float] = mapped_column(Float)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    contributions: Mapped[list[Any]] = mapped_column(JSON)
    top_drivers: Mapped[list[Any]] = mapped_column(JSON)
    missing: Mapped[list[Any]] = mapped_column(JSON)


class CaseRow(Base):
    """A loan on the watch list: why it is there, its tasks and the response plan chosen."""

    __tablename__ = "risk_cases"
    __table_args__ = (
        # one open case per loan, enforced by the database on both backends
        Index(
            "uq_risk_cases_open_loan",
            "loan_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    severity: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    opened_by: Mapped[str] = mapped_column(String(128))
    response_plan: Mapped[str | None] = mapped_column(String(32), nullable=True)
    response_note: Mapped[str] = mapped_column(Text, default="")
    response_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    response_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    close_note: Mapped[str] = mapped_column(Text, default="")


class CaseTaskRow(Base):
    """A task of a case for one department, with its owner and due date."""

    __tablename__ = "risk_case_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("risk_cases.id", ondelete="CASCADE"), index=True)
    department: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(128))
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class AlertRow(Base):
    """An early-warning alert: open -> acknowledged -> resolved."""

    __tablename__ = "risk_alerts"
    __table_args__ = (
        # the same condition never has two unresolved alerts
        Index(
            "uq_risk_alerts_unresolved_key",
            "dedupe_key",
            unique=True,
            sqlite_where=text("status IN ('open', 'acknowledged')"),
            postgresql_where=text("status IN ('open', 'acknowledged')"),
        ),
        Index("ix_risk_alerts_status", "status", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_version: Mapped[str] = mapped_column(String(64))
    score_id: Mapped[int | None] = mapped_column(ForeignKey("risk_scores.id", ondelete="SET NULL"), nullable=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("risk_cases.id", ondelete="SET NULL"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    acknowledge_note: Mapped[str] = mapped_column(Text, default="")
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    resolve_note: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str | None] = mapped_column(String(16), nullable=True)


class DeliveryRow(Base):
    """One attempt to deliver one notification (webhook POST or e-mail), successful or not."""

    __tablename__ = "risk_deliveries"
    __table_args__ = (Index("ix_risk_deliveries_message", "message_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(512))
    loan_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    alert_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    case_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
