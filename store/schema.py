"""Database schema: one table per record kind. Geometries are WGS84 (EPSG:4326).

On PostgreSQL a geometry is a PostGIS ``geometry(Geometry,4326)`` column with a GiST index;
on SQLite (the embedded default, no SpatiaLite needed) it is WKT text. Each geometry row
also keeps its bounding box in plain columns, so bbox filters work on both backends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType


class _PostGISGeometry(UserDefinedType[Any]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        """DDL type: any geometry type, SRID 4326."""
        return "geometry(Geometry,4326)"


class GeometryType(TypeDecorator[BaseGeometry]):
    """A shapely geometry in EPSG:4326: PostGIS geometry on PostgreSQL, WKT text elsewhere."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """PostGIS geometry on PostgreSQL, text elsewhere."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PostGISGeometry())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: BaseGeometry | None, dialect: Dialect) -> str | None:
        """Shapely to (E)WKT text."""
        if value is None:
            return None
        wkt = shapely.to_wkt(value, rounding_precision=-1)
        # PostGIS parses EWKT text input, so no function wrapper is needed around the parameter.
        return f"SRID=4326;{wkt}" if dialect.name == "postgresql" else wkt

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        """Hex EWKB (PostGIS) or WKT (SQLite) to shapely."""
        if value is None:
            return None
        if dialect.name == "postgresql":  # hex EWKB text
            return shapely.from_wkb(value)
        return shapely.from_wkt(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Always return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    """Declarative base bound to the shared metadata."""

    metadata = metadata


class LoanRow(Base):
    """A loan as imported from the servicing system."""

    __tablename__ = "loans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    borrower: Mapped[str] = mapped_column(String(256))
    amount: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3))
    outstanding: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    disbursements: Mapped[list[Any]] = mapped_column(JSON, default=list)
    repayments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128), default="system")


class SiteRow(Base):
    """A financed site; its plan's phases are in ``phases``."""

    __tablename__ = "sites"
    __table_args__ = (Index("ix_sites_bbox", "west", "south", "east", "north"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id"), index=True)
    region: Mapped[str] = mapped_column(String(32), index=True)
    boundary: Mapped[BaseGeometry] = mapped_column(GeometryType)
    west: Mapped[float] = mapped_column(Float)
    south: Mapped[float] = mapped_column(Float)
    east: Mapped[float] = mapped_column(Float)
    north: Mapped[float] = mapped_column(Float)
    area_m2: Mapped[float] = mapped_column(Float)
    milestones: Mapped[list[Any]] = mapped_column(JSON, default=list)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128), default="system")


class PhaseRow(Base):
    """One phase of a site's plan with its planned footprint."""

    __tablename__ = "phases"
    __table_args__ = (UniqueConstraint("site_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    weight: Mapped[float] = mapped_column(Float)
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date] = mapped_column(Date)
    footprint: Mapped[BaseGeometry] = mapped_column(GeometryType)


class SceneRow(Base):
    """One scene of one site: used or skipped, with the reason and provenance."""

    __tablename__ = "scenes"
    __table_args__ = (
        UniqueConstraint("site_id", "provider", "scene_id"),
        Index("ix_scenes_site_time", "site_id", "acquired_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    scene_id: Mapped[str] = mapped_column(String(256))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cloud_pct: Mapped[float | None] = mapped_column(Float, nullable=True)
    valid_fraction: Mapped[float] = mapped_column(Float)
    used: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditRow(Base):
    """Who changed what, and when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(256))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProgressObservationRow(Base):
    """One scene's progress estimate for one site, by one method."""

    __tablename__ = "progress_observations"
    __table_args__ = (UniqueConstraint("site_id", "scene_id", "method"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    scene_id: Mapped[str] = mapped_column(String(256))
    method: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    phase_fractions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    observed_fraction: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    outside_change_fraction: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")


class ProgressSummaryRow(Base):
    """A site's progress against plan as of one day, with the curve and the inputs behind it."""

    __tablename__ = "progress_summaries"
    __table_args__ = (
        UniqueConstraint("site_id", "as_of", "method"),
        Index("ix_progress_summaries_site_computed", "site_id", "computed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    as_of: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(128))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    points: Mapped[list[Any]] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs_sha256: Mapped[str] = mapped_column(String(64))
