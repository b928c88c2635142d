"""Progress figures: per-scene estimates and per-site summaries, saved with the inputs behind them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, aliased

from aoi.records import ProgressEvent, ProgressPoint, ProgressSummary, SceneProgress, SceneRecord
from store.repo import put_scene_records
from store.schema import ProgressObservationRow, ProgressSummaryRow, SiteRow, utcnow


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def summary_to_json(summary: ProgressSummary) -> dict[str, Any]:
    """A summary as plain JSON (ISO dates)."""
    out: dict[str, Any] = _plain(asdict(summary))
    return out


def _date(raw: Any) -> date | None:
    return date.fromisoformat(raw) if raw else None


def summary_from_json(raw: dict[str, Any]) -> ProgressSummary:
    """Inverse of :func:`summary_to_json`."""
    fields = dict(raw)
    for key in ("as_of", "forecast_completion", "forecast_early", "forecast_late", "last_observation"):
        fields[key] = _date(fields.get(key))
    fields["events"] = tuple(
        ProgressEvent(e["kind"], date.fromisoformat(e["on"]), e["detail"], e["drop_pp"]) for e in fields["events"]
    )
    fields["stall_witnesses"] = tuple(fields.get("stall_witnesses", ()))
    return ProgressSummary(**fields)


def inputs_digest(inputs: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a run's inputs: equal inputs, equal digest."""
    return hashlib.sha256(json.dumps(_plain(inputs), sort_keys=True).encode()).hexdigest()


def save_progress(
    engine: Engine,
    *,
    summary: ProgressSummary,
    points: Sequence[ProgressPoint],
    observations: Sequence[SceneProgress],
    records: Sequence[SceneRecord],
    inputs: dict[str, Any],
    replace_observations: bool = True,
) -> str:
    """Store one site's progress run atomically; re-running the same day and method replaces it.

    ``replace_observations=False`` keeps the stored per-scene estimates as they are (figures
    recomputed from them); ``observations`` is then ignored.

    Returns:
        The sha256 of the inputs, the key that ties the figures to what produced them.
    """
    digest = inputs_digest(inputs)
    with Session(engine) as session, session.begin():
        if replace_observations:
            _replace_observations(session, summary, observations)
        row = session.scalars(
            select(ProgressSummaryRow).where(
                ProgressSummaryRow.site_id == summary.site_id,
                ProgressSummaryRow.as_of == summary.as_of,
                ProgressSummaryRow.method == summary.method,
            )
        ).one_or_none() or ProgressSummaryRow(site_id=summary.site_id, as_of=summary.as_of, method=summary.method)
        row.computed_at = utcnow()
        row.summary = summary_to_json(summary)
        row.points = [_plain(asdict(p)) for p in points]
        row.inputs = _plain(inputs)
        row.inputs_sha256 = digest
        session.add(row)
        put_scene_records(session, records)
    return digest


def latest_progress(engine: Engine, site_id: str) -> tuple[ProgressSummary, list[ProgressPoint], dict[str, Any]] | None:
    """The newest summary of a site (by as-of day, then computation time), its curve and inputs."""
    with Session(engine) as session:
        row = session.scalars(
            select(ProgressSummaryRow)
            .where(ProgressSummaryRow.site_id == site_id)
            .order_by(ProgressSummaryRow.as_of.desc(), ProgressSummaryRow.computed_at.desc())
            .limit(1)
        ).one_or_none()
        if row is None:
            return None
        points = [
            ProgressPoint(
                date.fromisoformat(p["on"]), p["planned_pct"], p["observed_pct"], p["lower_pct"], p["upper_pct"]
            )
            for p in row.points
        ]
        inputs = dict(row.inputs)
        inputs["inputs_sha256"] = row.inputs_sha256
        return summary_from_json(row.summary), points, inputs


def _newest_summary_id() -> Any:
    """Correlated subquery: the id of the newest summary of the outer query's site.

    Newest by as-of day, then computation time, then id, the order :func:`latest_progress`
    uses. The (site_id, as_of, method) unique index serves it on both backends.
    """
    newer = aliased(ProgressSummaryRow)
    return (
        select(newer.id)
        .where(newer.site_id == SiteRow.id)
        .order_by(newer.as_of.desc(), newer.computed_at.desc(), newer.id.desc())
        .limit(1)
        .correlate(SiteRow)
        .scalar_subquery()
    )


def latest_summary_page(
    engine: Engine,
    *,
    after_site_id: str | None = None,
    limit: int | None = None,
    site_ids: Collection[str] | None = None,
) -> list[ProgressSummary]:
    """The newest summary of each site that has one, in site id order, after a keyset cursor.

    Only the newest row of each site is read and parsed: the choice is made in SQL (works on
    SQLite and PostgreSQL), not by loading every stored summary.

    Args:
        engine: The database.
        after_site_id: Only sites whose id sorts after this one (the previous page's last site).
        limit: At most this many sites; None for all.
        site_ids: Only these sites (an API key's scope); None for all.
    """
    stmt = (
        select(ProgressSummaryRow.summary)
        .select_from(SiteRow)
        .join(ProgressSummaryRow, ProgressSummaryRow.id == _newest_summary_id())
        .order_by(SiteRow.id)
    )
    if after_site_id is not None:
        stmt = stmt.where(SiteRow.id > after_site_id)
    if site_ids is not None:
        stmt = stmt.where(SiteRow.id.in_(sorted(site_ids)))
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [summary_from_json(raw) for raw in conn.scalars(stmt)]


def latest_summaries(engine: Engine) -> dict[str, ProgressSummary]:
    """The newest summary of every site that has one (see :func:`latest_summary_page`)."""
    return {s.site_id: s for s in latest_summary_page(engine)}


def list_observations(engine: Engine, site_id: str, *, method: str | None = None) -> list[SceneProgress]:
    """A site's per-scene estimates in time order."""
    stmt = select(ProgressObservationRow).where(ProgressObservationRow.site_id == site_id)
    if method is not None:
        stmt = stmt.where(ProgressObservationRow.method == method)
    with Session(engine) as session:
        return [
            SceneProgress(
                r.site_id,
                r.scene_id,
                r.acquired_at,
                r.percent,
                tuple(r.phase_fractions),
                r.observed_fraction,
                r.confidence,
                r.outside_change_fraction,
                r.reason,
            )
            for r in session.scalars(stmt.order_by(ProgressObservationRow.acquired_at))
        ]


def _replace_observations(session: Session, summary: ProgressSummary, observations: Sequence[SceneProgress]) -> None:
    """A site's estimates by the summary's method become ``observations`` (inside the caller's transaction)."""
    session.execute(
        delete(ProgressObservationRow).where(
            ProgressObservationRow.site_id == summary.site_id, ProgressObservationRow.method == summary.method
        )
    )
    session.add_all(
        ProgressObservationRow(
            site_id=o.site_id,
            scene_id=o.scene_id,
            method=summary.method,
            acquired_at=o.acquired_at_utc,
            percent=o.percent,
            phase_fractions=list(o.phase_fractions),
            observed_fraction=o.observed_fraction,
            confidence=o.confidence,
            outside_change_fraction=o.outside_change_fraction,
            reason=o.reason,
        )
        for o in observations
    )
