"""IoT site feeds: readings (unique per site, sensor and instant) and rejected readings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from store.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "readings",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("observed_at", UTCDateTime, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("site_id", "sensor_id", "observed_at", name="uq_readings_identity"),
    )
    op.create_index("ix_readings_site_time", "readings", ["site_id", "observed_at"])
    op.create_table(
        "rejected_readings",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("origin", sa.String(512), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("sensor_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_rejected_readings_received_at", "rejected_readings", ["received_at"])
    op.create_index("ix_rejected_readings_site_id", "rejected_readings", ["site_id"])


def downgrade() -> None:
    op.drop_table("rejected_readings")
    op.drop_table("readings")
