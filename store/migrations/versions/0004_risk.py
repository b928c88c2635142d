"""Loan risk: payments and market feeds, rejected rows, scores, alerts, cases, tasks, deliveries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from store.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _loan_fk(table: str) -> sa.Column[str]:
    return sa.Column(
        "loan_id",
        sa.String(64),
        sa.ForeignKey("loans.id", ondelete="CASCADE", name=f"fk_{table}_loan_id_loans"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "risk_payments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _loan_fk("risk_payments"),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("amount_due", sa.Float, nullable=False),
        sa.Column("paid_date", sa.Date, nullable=True),
        sa.Column("amount_paid", sa.Float, nullable=False),
        sa.Column("restructured", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("imported_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("loan_id", "due_date", name="uq_risk_payments_loan_id"),
    )
    op.create_index("ix_risk_payments_loan_id", "risk_payments", ["loan_id"])
    op.create_table(
        "risk_market",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("indicator", sa.String(64), nullable=False),
        sa.Column("on_date", sa.Date, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("imported_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("region", "indicator", "on_date", name="uq_risk_market_region"),
    )
    op.create_index("ix_risk_market_region", "risk_market", ["region"])
    op.create_table(
        "risk_rejected_rows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("feed", sa.String(16), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", sa.JSON, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_risk_rejected_rows_feed", "risk_rejected_rows", ["feed"])
    op.create_table(
        "risk_scores",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _loan_fk("risk_scores"),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("scored_at", UTCDateTime, nullable=False),
        sa.Column("config_version", sa.String(64), nullable=False),
        sa.Column("config_sha256", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("pd", sa.Float, nullable=False),
        sa.Column("band", sa.String(8), nullable=False),
        sa.Column("colour", sa.String(8), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("contributions", sa.JSON, nullable=False),
        sa.Column("top_drivers", sa.JSON, nullable=False),
        sa.Column("missing", sa.JSON, nullable=False),
    )
    op.create_index("ix_risk_scores_loan_time", "risk_scores", ["loan_id", "scored_at"])
    op.create_table(
        "risk_cases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _loan_fk("risk_cases"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("opened_by", sa.String(128), nullable=False),
        sa.Column("response_plan", sa.String(32), nullable=True),
        sa.Column("response_note", sa.Text, nullable=False),
        sa.Column("response_by", sa.String(128), nullable=True),
        sa.Column("response_at", UTCDateTime, nullable=True),
        sa.Column("closed_at", UTCDateTime, nullable=True),
        sa.Column("closed_by", sa.String(128), nullable=True),
        sa.Column("close_note", sa.Text, nullable=False),
    )
    op.create_index("ix_risk_cases_loan_id", "risk_cases", ["loan_id"])
    op.create_index(
        "uq_risk_cases_open_loan",
        "risk_cases",
        ["loan_id"],
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "risk_case_tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "case_id",
            sa.Integer,
            sa.ForeignKey("risk_cases.id", ondelete="CASCADE", name="fk_risk_case_tasks_case_id_risk_cases"),
            nullable=False,
        ),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done_at", UTCDateTime, nullable=True),
        sa.Column("done_by", sa.String(128), nullable=True),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_index("ix_risk_case_tasks_case_id", "risk_case_tasks", ["case_id"])
    op.create_table(
        "risk_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _loan_fk("risk_alerts"),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("config_version", sa.String(64), nullable=False),
        sa.Column(
            "score_id",
            sa.Integer,
            sa.ForeignKey("risk_scores.id", ondelete="SET NULL", name="fk_risk_alerts_score_id_risk_scores"),
            nullable=True,
        ),
        sa.Column(
            "case_id",
            sa.Integer,
            sa.ForeignKey("risk_cases.id", ondelete="SET NULL", name="fk_risk_alerts_case_id_risk_cases"),
            nullable=True,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
        sa.Column("acknowledged_at", UTCDateTime, nullable=True),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
        sa.Column("acknowledge_note", sa.Text, nullable=False),
        sa.Column("resolved_at", UTCDateTime, nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("resolve_note", sa.Text, nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
    )
    op.create_index("ix_risk_alerts_loan_id", "risk_alerts", ["loan_id"])
    op.create_index("ix_risk_alerts_status", "risk_alerts", ["status", "opened_at"])
    op.create_index(
        "uq_risk_alerts_unresolved_key",
        "risk_alerts",
        ["dedupe_key"],
        unique=True,
        sqlite_where=sa.text("status IN ('open', 'acknowledged')"),
        postgresql_where=sa.text("status IN ('open', 'acknowledged')"),
    )
    op.create_table(
        "risk_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("loan_id", sa.String(64), nullable=True),
        sa.Column("alert_id", sa.Integer, nullable=True),
        sa.Column("case_id", sa.Integer, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
    )
    op.create_index("ix_risk_deliveries_loan_id", "risk_deliveries", ["loan_id"])
    op.create_index("ix_risk_deliveries_message", "risk_deliveries", ["message_id", "attempt"])


def downgrade() -> None:
    for table in (
        "risk_deliveries",
        "risk_alerts",
        "risk_case_tasks",
        "risk_cases",
        "risk_scores",
        "risk_rejected_rows",
        "risk_market",
        "risk_payments",
    ):
        op.drop_table(table)
