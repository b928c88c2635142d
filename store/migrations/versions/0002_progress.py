"""Progress: per-scene observations and per-site summaries with their inputs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from store.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "progress_observations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "site_id",
            sa.String(64),
            sa.ForeignKey("sites.id", ondelete="CASCADE", name="fk_progress_observations_site_id_sites"),
            nullable=False,
        ),
        sa.Column("scene_id", sa.String(256), nullable=False),
        sa.Column("method", sa.String(128), nullable=False),
        sa.Column("acquired_at", UTCDateTime, nullable=False),
        sa.Column("percent", sa.Float, nullable=True),
        sa.Column("phase_fractions", sa.JSON, nullable=False),
        sa.Column("observed_fraction", sa.Float, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("outside_change_fraction", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.UniqueConstraint("site_id", "scene_id", "method", name="uq_progress_observations_site_id"),
    )
    op.create_index("ix_progress_observations_site_id", "progress_observations", ["site_id"])
    op.create_table(
        "progress_summaries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "site_id",
            sa.String(64),
            sa.ForeignKey("sites.id", ondelete="CASCADE", name="fk_progress_summaries_site_id_sites"),
            nullable=False,
        ),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("method", sa.String(128), nullable=False),
        sa.Column("computed_at", UTCDateTime, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("points", sa.JSON, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("inputs_sha256", sa.String(64), nullable=False),
        sa.UniqueConstraint("site_id", "as_of", "method", name="uq_progress_summaries_site_id"),
    )
    op.create_index("ix_progress_summaries_site_computed", "progress_summaries", ["site_id", "computed_at"])


def downgrade() -> None:
    op.drop_table("progress_summaries")
    op.drop_table("progress_observations")
