"""Query functions: domain records in, domain records out. One transaction per call."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.orm import Session

from aoi import Loan, Milestone, Phase, Plan, Portfolio, SceneRecord, ScheduledAmount, Site, SiteNotFoundError
from aoi.errors import LoanNotFoundError
from aoi.model import Footprint
from geo import geodesic_area_m2
from geo.types import BBox
from store.audit import put_audit
from store.schema import AuditRow, LoanRow, PhaseRow, SceneRow, SiteRow, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import changed."""

    sites_created: int
    sites_updated: int
    loans_created: int
    loans_updated: int


# ---------------------------------------------------------------- conversions


def _schedule_json(items: Iterable[ScheduledAmount]) -> list[dict[str, Any]]:
    return [{"date": s.on.isoformat(), "amount": s.amount} for s in items]


def _schedule(raw: Iterable[dict[str, Any]]) -> tuple[ScheduledAmount, ...]:
    return tuple(ScheduledAmount(date.fromisoformat(r["date"]), float(r["amount"])) for r in raw)


def _loan(row: LoanRow) -> Loan:
    return Loan(
        row.id,
        row.borrower,
        row.amount,
        row.currency,
        _schedule(row.disbursements),
        _schedule(row.repayments),
        row.outstanding,
        row.status,
    )


def _site(row: SiteRow, phases: Sequence[PhaseRow]) -> Site:
    plan = Plan(
        tuple(Phase(p.name, p.weight, p.start, p.end, _footprint(p.footprint)) for p in phases),
        tuple(Milestone(date.fromisoformat(m["date"]), float(m["percent"])) for m in row.milestones),
    )
    return Site(row.id, row.name, row.loan_id, row.region, _footprint(row.boundary), plan, dict(row.properties))


def _footprint(geom: Any) -> Footprint:
    if not isinstance(geom, Polygon | MultiPolygon):  # only (Multi)Polygons pass validation on import
        raise TypeError(f"stored geometry is a {type(geom).__name__}, not a Polygon or MultiPolygon")
    return geom


# ---------------------------------------------------------------- writes


def save_portfolio(engine: Engine, portfolio: Portfolio, *, actor: str = "system") -> ImportSummary:
    """Insert or replace the portfolio's loans and sites in one transaction (all or nothing)."""
    now = utcnow()
    counts = {"sc": 0, "su": 0, "lc": 0, "lu": 0}
    with Session(engine) as session, session.begin():
        for loan in portfolio.loans:
            row = session.get(LoanRow, loan.id)
            counts["lu" if row else "lc"] += 1
            row = row or LoanRow(id=loan.id)
            row.borrower, row.amount, row.currency = loan.borrower, loan.amount, loan.currency
            row.outstanding, row.status = loan.outstanding, loan.status
            row.disbursements = _schedule_json(loan.disbursements)
            row.repayments = _schedule_json(loan.repayments)
            row.updated_at, row.updated_by = now, actor
            session.add(row)
            put_audit(session, actor, "upsert", "loan", loan.id, {})
        session.flush()
        for site in portfolio.sites:
            _put_site(session, site, actor=actor, now=now, counts=counts)
    summary = ImportSummary(counts["sc"], counts["su"], counts["lc"], counts["lu"])
    logger.debug("portfolio saved: %s", summary)
    return summary


def _put_site(session: Session, site: Site, *, actor: str, now: datetime, counts: dict[str, int]) -> None:
    row = session.get(SiteRow, site.id)
    counts["su" if row else "sc"] += 1
    row = row or SiteRow(id=site.id)
    west, south, east, north = site.boundary_wgs84.bounds
    row.name, row.loan_id, row.region, row.boundary = site.name, site.loan_id, site.region, site.boundary_wgs84
    row.west, row.south, row.east, row.north = west, south, east, north
    row.area_m2 = geodesic_area_m2(site.boundary_wgs84)
    row.milestones = [{"date": m.on.isoformat(), "percent": m.percent} for m in site.plan.milestones]
    row.properties = dict(site.properties)
    row.updated_at, row.updated_by = now, actor
    session.add(row)
    session.execute(delete(PhaseRow).where(PhaseRow.site_id == site.id))
    session.flush()
    for k, p in enumerate(site.plan.phases):
        session.add(
            PhaseRow(
                site_id=site.id,
                position=k,
                name=p.name,
                weight=p.weight,
                start=p.start,
                end=p.end,
                footprint=p.footprint_wgs84,
            )
        )
    put_audit(session, actor, "upsert", "site", site.id, {"loan_id": site.loan_id})


def save_site(engine: Engine, site: Site, *, actor: str) -> bool:
    """Insert or replace one site (its loan must exist). Returns True when it was created."""
    counts = {"sc": 0, "su": 0}
    with Session(engine) as session, session.begin():
        if session.get(LoanRow, site.loan_id) is None:
            raise LoanNotFoundError(site.loan_id)
        _put_site(session, site, actor=actor, now=utcnow(), counts=counts)
    return counts["sc"] == 1


def delete_site(engine: Engine, site_id: str, *, actor: str) -> None:
    """Delete a site with its phases and scenes."""
    with Session(engine) as session, session.begin():
        row = session.get(SiteRow, site_id)
        if row is None:
            raise SiteNotFoundError(site_id)
        session.execute(delete(PhaseRow).where(PhaseRow.site_id == site_id))
        session.execute(delete(SceneRow).where(SceneRow.site_id == site_id))
        session.delete(row)
        put_audit(session, actor, "delete", "site", site_id, {})


# ---------------------------------------------------------------- reads


def known_loan_ids(engine: Engine) -> set[str]:
    """Ids of every stored loan."""
    with Session(engine) as session:
        return set(session.scalars(select(LoanRow.id)))


def get_loan(engine: Engine, loan_id: str) -> Loan:
    """One loan."""
    with Session(engine) as session:
        row = session.get(LoanRow, loan_id)
        if row is None:
            raise LoanNotFoundError(loan_id)
        return _loan(row)


def list_loans(engine: Engine) -> list[Loan]:
    """All loans, by id."""
    with Session(engine) as session:
        return [_loan(r) for r in session.scalars(select(LoanRow).order_by(LoanRow.id))]


def list_sites(
    engine: Engine,
    *,
    bbox_wgs84: BBox | None = None,
    region: str | None = None,
    text: str | None = None,
    site_ids: Iterable[str] | None = None,
) -> list[Site]:
    """Sites matching every filter given, ordered by id.

    Args:
        engine: The database.
        bbox_wgs84: (west, south, east, north) in degrees: sites whose boundary intersects it
            (PostGIS ``ST_Intersects`` on PostgreSQL, bounding boxes on SQLite).
        region: Exact region code.
        text: Case-insensitive substring of id, name or loan id.
        site_ids: Only these sites (an API key's scope).
    """
    stmt = select(SiteRow).order_by(SiteRow.id)
    if bbox_wgs84 is not None:
        w, s, e, n = bbox_wgs84
        stmt = stmt.where(SiteRow.east >= w, SiteRow.west <= e, SiteRow.north >= s, SiteRow.south <= n)
        if engine.dialect.name == "postgresql":
            stmt = stmt.where(func.ST_Intersects(SiteRow.boundary, func.ST_MakeEnvelope(w, s, e, n, 4326)))
    if region:
        stmt = stmt.where(SiteRow.region == region)
    if text:
        like = f"%{text.lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(SiteRow.id).like(like),
                func.lower(SiteRow.name).like(like),
                func.lower(SiteRow.loan_id).like(like),
            )
        )
    if site_ids is not None:
        stmt = stmt.where(SiteRow.id.in_(list(site_ids)))
    with Session(engine) as session:
        rows = list(session.scalars(stmt))
        phases = _phases_by_site(session, [r.id for r in rows])
        return [_site(r, phases.get(r.id, [])) for r in rows]


def list_site_ids(engine: Engine, *, region: str | None = None) -> list[str]:
    """Every site id (optionally of one region), in id order, without loading the sites."""
    stmt = select(SiteRow.id).order_by(SiteRow.id)
    if region:
        stmt = stmt.where(SiteRow.region == region)
    with Session(engine) as session:
        return list(session.scalars(stmt))


def _phases_by_site(session: Session, site_ids: list[str]) -> dict[str, list[PhaseRow]]:
    out: dict[str, list[PhaseRow]] = {}
    if not site_ids:
        return out
    stmt = select(PhaseRow).where(PhaseRow.site_id.in_(site_ids)).order_by(PhaseRow.site_id, PhaseRow.position)
    for p in session.scalars(stmt):
        out.setdefault(p.site_id, []).append(p)
    return out


def get_site(engine: Engine, site_id: str) -> Site:
    """One site with its plan."""
    with Session(engine) as session:
        row = session.get(SiteRow, site_id)
        if row is None:
            raise SiteNotFoundError(site_id)
        return _site(row, _phases_by_site(session, [site_id]).get(site_id, []))


def load_portfolio(engine: Engine) -> Portfolio:
    """Everything: all sites and loans."""
    return Portfolio(tuple(list_sites(engine)), tuple(list_loans(engine)))


# ---------------------------------------------------------------- scenes


def save_scene_records(engine: Engine, records: Iterable[SceneRecord]) -> int:
    """Insert or update scene records (identity: site, provider, scene id). Returns how many."""
    with Session(engine) as session, session.begin():
        return put_scene_records(session, records)


def put_scene_records(session: Session, records: Iterable[SceneRecord]) -> int:
    """Upsert scene records inside the caller's transaction."""
    n = 0
    for rec in records:
        row = session.scalars(
            select(SceneRow).where(
                SceneRow.site_id == rec.site_id, SceneRow.provider == rec.provider, SceneRow.scene_id == rec.scene_id
            )
        ).one_or_none() or SceneRow(site_id=rec.site_id, provider=rec.provider, scene_id=rec.scene_id)
        row.acquired_at, row.cloud_pct, row.valid_fraction = rec.acquired_at_utc, rec.cloud_pct, rec.valid_fraction
        row.used, row.reason, row.meta, row.recorded_at = rec.used, rec.reason, dict(rec.meta), utcnow()
        session.add(row)
        n += 1
    return n


def _scene_record(r: SceneRow) -> SceneRecord:
    return SceneRecord(
        r.site_id, r.provider, r.scene_id, r.acquired_at, r.cloud_pct, r.valid_fraction, r.used, r.reason, dict(r.meta)
    )


def list_scene_records(engine: Engine, site_id: str) -> list[SceneRecord]:
    """A site's scene records in time order."""
    stmt = select(SceneRow).where(SceneRow.site_id == site_id).order_by(SceneRow.acquired_at, SceneRow.scene_id)
    with Session(engine) as session:
        return [_scene_record(r) for r in session.scalars(stmt)]


def find_scene_records(engine: Engine, *, reason_prefix: str, site_id: str | None = None) -> list[SceneRecord]:
    """Scene records whose reason starts with ``reason_prefix`` (of one site, or all), by site and time."""
    stmt = (
        select(SceneRow)
        .where(SceneRow.reason.startswith(reason_prefix, autoescape=True))
        .order_by(SceneRow.site_id, SceneRow.acquired_at, SceneRow.scene_id)
    )
    if site_id is not None:
        stmt = stmt.where(SceneRow.site_id == site_id)
    with Session(engine) as session:
        return [_scene_record(r) for r in session.scalars(stmt)]


def update_scene_records(
    engine: Engine,
    site_id: str,
    scene_id: str,
    *,
    reason_prefix: str,
    reason: str,
    meta: dict[str, Any],
    actor: str,
) -> list[SceneRecord]:
    """Give a site's records of a scene whose reason starts with ``reason_prefix`` a new reason; audited.

    There is one record per provider. ``meta`` is merged into each record's own. Returns the
    records changed (none when no record matched).
    """
    stmt = select(SceneRow).where(
        SceneRow.site_id == site_id,
        SceneRow.scene_id == scene_id,
        SceneRow.reason.startswith(reason_prefix, autoescape=True),
    )
    with Session(engine) as session, session.begin():
        rows = list(session.scalars(stmt))
        for row in rows:
            put_audit(
                session, actor, "update", "scene", f"{site_id}/{row.provider}/{scene_id}",
                {"old_reason": row.reason, "reason": reason},
            )  # fmt: skip
            row.reason, row.meta, row.recorded_at = reason, {**row.meta, **meta}, utcnow()
        session.flush()
        return [_scene_record(r) for r in rows]


def audit_entries(engine: Engine, *, entity_id: str | None = None) -> list[dict[str, Any]]:
    """Audit log entries, newest first."""
    stmt = select(AuditRow).order_by(AuditRow.id.desc())
    if entity_id is not None:
        stmt = stmt.where(AuditRow.entity_id == entity_id)
    with Session(engine) as session:
        return [
            {
                "at": r.at,
                "actor": r.actor,
                "action": r.action,
                "entity": r.entity,
                "entity_id": r.entity_id,
                "detail": r.detail,
            }
            for r in session.scalars(stmt)
        ]
