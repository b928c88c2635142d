"""Initial schema: loans, sites, phases, scenes, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from store.schema import GeometryType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "loans",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("borrower", sa.String(256), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("outstanding", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("disbursements", sa.JSON, nullable=False),
        sa.Column("repayments", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("loan_id", sa.String(64), sa.ForeignKey("loans.id", name="fk_sites_loan_id_loans"), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("boundary", GeometryType, nullable=False),
        sa.Column("west", sa.Float, nullable=False),
        sa.Column("south", sa.Float, nullable=False),
        sa.Column("east", sa.Float, nullable=False),
        sa.Column("north", sa.Float, nullable=False),
        sa.Column("area_m2", sa.Float, nullable=False),
        sa.Column("milestones", sa.JSON, nullable=False),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_sites_loan_id", "sites", ["loan_id"])
    op.create_index("ix_sites_region", "sites", ["region"])
    op.create_index("ix_sites_bbox", "sites", ["west", "south", "east", "north"])
    op.create_table(
        "phases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "site_id",
            sa.String(64),
            sa.ForeignKey("sites.id", ondelete="CASCADE", name="fk_phases_site_id_sites"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("start", sa.Date, nullable=False),
        sa.Column("end", sa.Date, nullable=False),
        sa.Column("footprint", GeometryType, nullable=False),
        sa.UniqueConstraint("site_id", "position", name="uq_phases_site_id"),
    )
    op.create_index("ix_phases_site_id", "phases", ["site_id"])
    op.create_table(
        "scenes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "site_id",
            sa.String(64),
            sa.ForeignKey("sites.id", ondelete="CASCADE", name="fk_scenes_site_id_sites"),
            nullable=False,
        ),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("scene_id", sa.String(256), nullable=False),
        sa.Column("acquired_at", UTCDateTime, nullable=False),
        sa.Column("cloud_pct", sa.Float, nullable=True),
        sa.Column("valid_fraction", sa.Float, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("site_id", "provider", "scene_id", name="uq_scenes_site_id"),
    )
    op.create_index("ix_scenes_site_time", "scenes", ["site_id", "acquired_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(256), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    if bind.dialect.name == "postgresql":
        op.create_index("ix_sites_boundary_gist", "sites", ["boundary"], postgresql_using="gist")
        op.create_index("ix_phases_footprint_gist", "phases", ["footprint"], postgresql_using="gist")


def downgrade() -> None:
    for table in ("audit_log", "scenes", "phases", "sites", "loans"):
        op.drop_table(table)
