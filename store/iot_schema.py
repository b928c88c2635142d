"""Tables of site sensor readings and of rejected input (the dead letters).

A reading's identity is (site_id, sensor_id, observed_at): the unique constraint makes a
replayed reading a no-op. Values are in their kind's canonical unit (``unit`` repeats it, so
the table reads on its own). Site ids are not foreign keys, so a site's readings outlive its
removal from the portfolio; ingestion checks sites against the portfolio instead.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.schema import Base, UTCDateTime, utcnow

#: 64-bit ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ReadingRow(Base):
    """One sensor reading, value in its kind's canonical unit."""

    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint("site_id", "sensor_id", "observed_at", name="uq_readings_identity"),
        Index("ix_readings_site_time", "site_id", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(64))
    sensor_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(16))
    #: "mqtt", "http", "csv" or "sim".
    source: Mapped[str] = mapped_column(String(8))
    #: When the batch holding it was written (just before its commit), UTC.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RejectedReadingRow(Base):
    """Input that was not stored as a reading, with the reason: the dead-letter table."""

    __tablename__ = "rejected_readings"
    __table_args__ = (Index("ix_rejected_readings_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: "mqtt", "http", "csv" or "sim".
    source: Mapped[str] = mapped_column(String(8))
    #: MQTT topic, "file.csv:12" or "http item 3".
    origin: Mapped[str] = mapped_column(String(512), default="")
    reason: Mapped[str] = mapped_column(Text)
    #: The input exactly as received (one item of a batch), cut to 64 KiB.
    raw: Mapped[str] = mapped_column(Text)
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    sensor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
