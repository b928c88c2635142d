"""Tables of the HTTP API: API keys (hashes only) and refresh jobs started over HTTP.

A key's secret is never stored: only the sha256 of the token, next to a short public id that
is part of the token (``sw_<id>_<secret>``), so a lookup is one primary-key read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from store.schema import Base, UTCDateTime, utcnow


class ApiKeyRow(Base):
    """One API key: its role, optional site scope and the hash of its token."""

    __tablename__ = "api_keys"

    #: The public part of the token (16 hex digits), shown in listings and logs.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    #: "admin", "officer", "risk_engine" or "ingest".
    role: Mapped[str] = mapped_column(String(16))
    #: Site ids the key may see; None means every site.
    sites: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: sha256 hex digest of the whole token.
    token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
