"""Queries of the HTTP API: API keys, jobs started over HTTP, audit entries and score pages.

The score page query reads only the columns a listing needs (not the stored inputs or the
contributions), one loan after another in id order from a keyset cursor, so a page costs the
same on the first and the hundredth call.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from store.api_schema import ApiKeyRow
from store.audit import put_audit
from store.errors import StoreError
from store.risk_schema import AlertRow, ScoreRow
from store.schema import LoanRow, SiteRow, utcnow

logger = logging.getLogger(__name__)


class ApiKeyNotFoundError(StoreError, LookupError):
    """No API key with this id."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored (never the token itself).

    Attributes:
        id: Public id, part of the token.
        name: What the key is for.
        role: "admin", "officer", "risk_engine" or "ingest".
        sites: The site ids it may see, or None for every site.
        token_sha256: sha256 hex digest of the token.
        created_at: When it was created (UTC).
        created_by: Who created it.
        revoked_at: When it was revoked (None while valid).
        revoked_by: Who revoked it.
    """

    id: str
    name: str
    role: str
    sites: tuple[str, ...] | None
    token_sha256: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreListing:
    """The newest score of one loan, as a listing shows it (no inputs, no contributions)."""

    score_id: int
    loan_id: str
    site_id: str
    as_of: date
    scored_at: datetime
    score: float
    pd: float
    band: str
    colour: str
    confidence: float
    top_drivers: list[str]
    missing: list[str]
    config_version: str


# ---------------------------------------------------------------- keys


def _key(row: ApiKeyRow) -> ApiKeyRecord:
    return ApiKeyRecord(
        row.id,
        row.name,
        row.role,
        tuple(row.sites) if row.sites is not None else None,
        row.token_sha256,
        row.created_at,
        row.created_by,
        row.revoked_at,
        row.revoked_by,
    )


def save_key(
    engine: Engine,
    *,
    key_id: str,
    name: str,
    role: str,
    sites: Collection[str] | None,
    token_sha256: str,
    actor: str,
) -> ApiKeyRecord:
    """Store a new key (its hash only) and audit who created it."""
    with Session(engine) as session, session.begin():
        row = ApiKeyRow(
            id=key_id,
            name=name,
            role=role,
            sites=sorted(sites) if sites is not None else None,
            token_sha256=token_sha256,
            created_at=utcnow(),
            created_by=actor,
        )
        session.add(row)
        put_audit(session, actor, "create", "api_key", key_id, {"role": role, "name": name, "sites": row.sites})
        session.flush()
        return _key(row)


_KEY_COLUMNS = (
    ApiKeyRow.id,
    ApiKeyRow.name,
    ApiKeyRow.role,
    ApiKeyRow.sites,
    ApiKeyRow.token_sha256,
    ApiKeyRow.created_at,
    ApiKeyRow.created_by,
    ApiKeyRow.revoked_at,
    ApiKeyRow.revoked_by,
)
#: Built once: the key lookup runs on requests whose key is not in the API's short cache, and
#: constructing the statement cost more than running it.
_GET_KEY = select(*_KEY_COLUMNS).where(ApiKeyRow.id == bindparam("key_id"))


def get_key(engine: Engine, key_id: str) -> ApiKeyRecord | None:
    """One key by its public id (revoked ones included), or None.

    One primary-key read through SQLAlchemy Core (no ORM session or identity map).
    """
    with engine.connect() as conn:
        r = conn.execute(_GET_KEY, {"key_id": key_id}).one_or_none()
    if r is None:
        return None
    sites = tuple(r.sites) if r.sites is not None else None
    return ApiKeyRecord(
        r.id, r.name, r.role, sites, r.token_sha256, r.created_at, r.created_by, r.revoked_at, r.revoked_by
    )


def list_keys(engine: Engine) -> list[ApiKeyRecord]:
    """Every key, oldest first."""
    with Session(engine) as session:
        return [_key(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id))]


def revoke_key(engine: Engine, key_id: str, *, actor: str) -> ApiKeyRecord:
    """Revoke a key (idempotent) and audit it.

    Raises:
        ApiKeyNotFoundError: no key with this id.
    """
    with Session(engine) as session, session.begin():
        row = session.get(ApiKeyRow, key_id)
        if row is None:
            raise ApiKeyNotFoundError(f"no API key {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at, row.revoked_by = utcnow(), actor
            put_audit(session, actor, "revoke", "api_key", key_id, {})
        session.flush()
        return _key(row)


# ---------------------------------------------------------------- audit


def record_audit(
    engine: Engine, *, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any] | None = None
) -> None:
    """Append one audit entry (for writes whose own repository does not audit them)."""
    with Session(engine) as session, session.begin():
        put_audit(session, actor, action, entity, entity_id, detail or {})


# ---------------------------------------------------------------- jobs


#: Built once (see ``_GET_KEY``).
_SCORES_VERSION = select(func.coalesce(func.max(ScoreRow.id), 0))


def scores_version(engine: Engine) -> int:
    """A fingerprint of the score table: its highest id, one primary-key index probe.

    Scores are an append-only history: every scoring run inserts new rows, nothing updates
    them, and no code path deletes a loan (the only cascade that would remove scores). So the
    highest id changes exactly when the newest score of some loan may have changed. (A row
    count would also catch hand-made deletes, but costs a scan of the whole history.)
    """
    with engine.connect() as conn:
        return int(conn.execute(_SCORES_VERSION).scalar_one())


def _latest_score_id() -> Any:
    newer = aliased(ScoreRow)
    return (
        select(newer.id)
        .where(newer.loan_id == LoanRow.id)
        .order_by(newer.scored_at.desc(), newer.id.desc())
        .limit(1)
        .correlate(LoanRow)
        .scalar_subquery()
    )


def latest_score_page(
    engine: Engine,
    *,
    after_loan_id: str | None = None,
    limit: int = 100,
    since: datetime | None = None,
    loan_ids: Collection[str] | None = None,
) -> list[ScoreListing]:
    """The newest score of each loan, in loan id order, after a keyset cursor.

    Args:
        engine: The database.
        after_loan_id: Only loans whose id sorts after this one (the previous page's last loan).
        limit: At most this many loans.
        since: Only loans whose newest score was stored after this instant (UTC, aware).
        loan_ids: Only these loans (an API key's scope); None for all.
    """
    stmt = (
        select(
            ScoreRow.id,
            ScoreRow.loan_id,
            ScoreRow.site_id,
            ScoreRow.as_of,
            ScoreRow.scored_at,
            ScoreRow.score,
            ScoreRow.pd,
            ScoreRow.band,
            ScoreRow.colour,
            ScoreRow.confidence,
            ScoreRow.top_drivers,
            ScoreRow.missing,
            ScoreRow.config_version,
        )
        .select_from(LoanRow)
        .join(ScoreRow, ScoreRow.id == _latest_score_id())
        .order_by(LoanRow.id)
        .limit(limit)
    )
    if after_loan_id is not None:
        stmt = stmt.where(LoanRow.id > after_loan_id)
    if since is not None:
        stmt = stmt.where(ScoreRow.scored_at > since)
    if loan_ids is not None:
        stmt = stmt.where(LoanRow.id.in_(sorted(loan_ids)))
    with Session(engine) as session:
        return [
            ScoreListing(
                r.id,
                r.loan_id,
                r.site_id,
                r.as_of,
                r.scored_at,
                r.score,
                r.pd,
                r.band,
                r.colour,
                r.confidence,
                list(r.top_drivers),
                list(r.missing),
                r.config_version,
            )
            for r in session.execute(stmt)
        ]


def latest_band_by_loan(engine: Engine) -> dict[str, str]:
    """The risk band of every scored loan's newest score."""
    stmt = select(LoanRow.id, ScoreRow.band).select_from(LoanRow).join(ScoreRow, ScoreRow.id == _latest_score_id())
    with Session(engine) as session:
        return {str(loan_id): str(band) for loan_id, band in session.execute(stmt)}


def site_loans(engine: Engine, site_ids: Collection[str] | None = None) -> dict[str, str]:
    """Loan id per site id (only the given sites when ``site_ids`` is set)."""
    stmt = select(SiteRow.id, SiteRow.loan_id)
    if site_ids is not None:
        stmt = stmt.where(SiteRow.id.in_(sorted(site_ids)))
    with Session(engine) as session:
        return {str(s): str(ln) for s, ln in session.execute(stmt)}


def alert_loan(engine: Engine, alert_id: int) -> str | None:
    """The loan an alert is about, or None when there is no such alert."""
    with Session(engine) as session:
        row = session.get(AlertRow, alert_id)
        return row.loan_id if row is not None else None


def site_exists(engine: Engine, site_id: str) -> bool:
    """Whether a site with this id is stored."""
    with Session(engine) as session:
        return session.get(SiteRow, site_id) is not None
