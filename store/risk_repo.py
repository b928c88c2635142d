"""Query functions for the risk tables. One transaction per call.

``store`` may not import ``risk`` (they are siblings), so writes accept any object with the
right attributes (the ``*Like`` protocols, which ``risk.records`` satisfies) and reads return
this module's ``Stored*`` records; ``jobs`` converts between the two.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import Engine, and_, select, tuple_, update
from sqlalchemy.orm import Session

from store.audit import put_audit
from store.risk_errors import AlertNotFoundError, CaseNotFoundError, RiskStateError
from store.risk_schema import (
    UNRESOLVED,
    AlertRow,
    CaseRow,
    CaseTaskRow,
    DeliveryRow,
    MarketRow,
    PaymentRow,
    RejectedFeedRow,
    ScoreRow,
)
from store.schema import AuditRow, utcnow

logger = logging.getLogger(__name__)

#: Batch size for key lookups (keeps IN lists well under SQLite's parameter limit).
_CHUNK = 400


# ---------------------------------------------------------------- protocols and records


class PaymentLike(Protocol):
    """An instalment from the servicing feed (``risk.records.Payment`` fits)."""

    @property
    def loan_id(self) -> str: ...  # noqa: D102
    @property
    def due_date(self) -> date: ...  # noqa: D102
    @property
    def amount_due(self) -> float: ...  # noqa: D102
    @property
    def paid_date(self) -> date | None: ...  # noqa: D102
    @property
    def amount_paid(self) -> float: ...  # noqa: D102
    @property
    def restructured(self) -> bool: ...  # noqa: D102


class MarketLike(Protocol):
    """A market indicator value (``risk.records.MarketObservation`` fits)."""

    @property
    def region(self) -> str: ...  # noqa: D102
    @property
    def indicator(self) -> str: ...  # noqa: D102
    @property
    def on(self) -> date: ...  # noqa: D102
    @property
    def value(self) -> float: ...  # noqa: D102


class RowProblemLike(Protocol):
    """A rejected feed row (``risk.errors.RowProblem`` fits)."""

    @property
    def row(self) -> int: ...  # noqa: D102
    @property
    def key(self) -> str: ...  # noqa: D102
    @property
    def field(self) -> str: ...  # noqa: D102
    @property
    def reason(self) -> str: ...  # noqa: D102
    @property
    def raw(self) -> dict[str, str] | None: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class StoredPayment:
    """An instalment as stored."""

    loan_id: str
    due_date: date
    amount_due: float
    paid_date: date | None
    amount_paid: float
    restructured: bool


@dataclass(frozen=True, slots=True)
class StoredMarket:
    """A market value as stored."""

    region: str
    indicator: str
    on: date
    value: float


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A rejected feed row as stored."""

    id: int
    feed: str
    source: str
    row: int
    key: str
    field: str
    reason: str
    raw: dict[str, Any]
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ScoreInsert:
    """What one stored score holds (JSON parts already serialised by the caller)."""

    loan_id: str
    site_id: str
    as_of: date
    config_version: str
    config_sha256: str
    score: float
    pd: float
    band: str
    colour: str
    confidence: float
    inputs: dict[str, Any]
    contributions: list[dict[str, Any]]
    top_drivers: list[str]
    missing: list[str]


@dataclass(frozen=True, slots=True)
class StoredScore:
    """A stored score with its id and timestamp."""

    id: int
    scored_at: datetime
    data: ScoreInsert


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert as stored."""

    id: int
    loan_id: str
    site_id: str
    rule_id: str
    dedupe_key: str
    severity: str
    title: str
    evidence: dict[str, Any]
    config_version: str
    score_id: int | None
    case_id: int | None
    status: str
    opened_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledge_note: str
    resolved_at: datetime | None
    resolved_by: str | None
    resolve_note: str
    resolution: str | None


class OutcomeLike(Protocol):
    """A rule outcome (``risk.records.RuleOutcome`` fits)."""

    @property
    def rule_id(self) -> str: ...  # noqa: D102
    @property
    def loan_id(self) -> str: ...  # noqa: D102
    @property
    def state(self) -> str: ...  # noqa: D102
    @property
    def dedupe_key(self) -> str: ...  # noqa: D102
    @property
    def severity(self) -> str: ...  # noqa: D102
    @property
    def title(self) -> str: ...  # noqa: D102
    @property
    def evidence(self) -> dict[str, Any]: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class AlertChanges:
    """What applying rule outcomes changed: alerts opened, resolved, and still open (seen again)."""

    opened: tuple[AlertRecord, ...]
    resolved: tuple[AlertRecord, ...]
    still_open: tuple[AlertRecord, ...]


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A case task as stored."""

    id: int
    case_id: int
    department: str
    title: str
    owner: str
    due_date: date
    status: str
    done_at: datetime | None
    done_by: str | None
    note: str


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """A watch-list case with its tasks and linked alert ids."""

    id: int
    loan_id: str
    status: str
    severity: str
    reason: str
    opened_at: datetime
    opened_by: str
    response_plan: str | None
    response_note: str
    response_by: str | None
    response_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    close_note: str
    tasks: tuple[TaskRecord, ...]
    alert_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One notification attempt to record."""

    message_id: str
    channel: str
    kind: str
    target: str
    attempt: int
    ok: bool
    status_code: int | None = None
    error: str = ""
    subject: str = ""
    loan_id: str | None = None
    alert_id: int | None = None
    case_id: int | None = None
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A recorded notification attempt."""

    id: int
    at: datetime
    data: DeliveryAttempt


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for k in range(0, len(items), _CHUNK):
        yield items[k : k + _CHUNK]


# ---------------------------------------------------------------- feeds


def save_payments(engine: Engine, payments: Sequence[PaymentLike], *, source: str) -> tuple[int, int]:
    """Insert or replace instalments by (loan, due date). Returns (created, updated)."""
    created = updated = 0
    now = utcnow()
    with Session(engine) as session, session.begin():
        for batch in _chunks(payments):
            keys = [(p.loan_id, p.due_date) for p in batch]
            existing = {
                (r.loan_id, r.due_date): r
                for r in session.scalars(
                    select(PaymentRow).where(tuple_(PaymentRow.loan_id, PaymentRow.due_date).in_(keys))
                )
            }
            for p in batch:
                row = existing.get((p.loan_id, p.due_date))
                if row is None:
                    row = PaymentRow(loan_id=p.loan_id, due_date=p.due_date)
                    session.add(row)
                    created += 1
                else:
                    updated += 1
                row.amount_due, row.paid_date, row.amount_paid = p.amount_due, p.paid_date, p.amount_paid
                row.restructured, row.source, row.imported_at = p.restructured, source, now
        put_audit(session, "feed", "import", "payments", source, {"created": created, "updated": updated})
    return created, updated


def load_payments(engine: Engine, loan_ids: Collection[str] | None = None) -> dict[str, list[StoredPayment]]:
    """Stored instalments per loan, by due date."""
    stmt = select(PaymentRow).order_by(PaymentRow.loan_id, PaymentRow.due_date)
    if loan_ids is not None:
        stmt = stmt.where(PaymentRow.loan_id.in_(list(loan_ids)))
    out: dict[str, list[StoredPayment]] = {}
    with Session(engine) as session:
        for r in session.scalars(stmt):
            out.setdefault(r.loan_id, []).append(
                StoredPayment(r.loan_id, r.due_date, r.amount_due, r.paid_date, r.amount_paid, r.restructured)
            )
    return out


def save_market(engine: Engine, observations: Sequence[MarketLike], *, source: str) -> tuple[int, int]:
    """Insert or replace market values by (region, indicator, day). Returns (created, updated)."""
    created = updated = 0
    now = utcnow()
    with Session(engine) as session, session.begin():
        for batch in _chunks(observations):
            keys = [(o.region, o.indicator, o.on) for o in batch]
            existing = {
                (r.region, r.indicator, r.on_date): r
                for r in session.scalars(
                    select(MarketRow).where(tuple_(MarketRow.region, MarketRow.indicator, MarketRow.on_date).in_(keys))
                )
            }
            for o in batch:
                row = existing.get((o.region, o.indicator, o.on))
                if row is None:
                    row = MarketRow(region=o.region, indicator=o.indicator, on_date=o.on)
                    session.add(row)
                    created += 1
                else:
                    updated += 1
                row.value, row.source, row.imported_at = o.value, source, now
        put_audit(session, "feed", "import", "market", source, {"created": created, "updated": updated})
    return created, updated


def load_market(engine: Engine, regions: Collection[str] | None = None) -> list[StoredMarket]:
    """Stored market values (of some regions), by region, indicator and day."""
    stmt = select(MarketRow).order_by(MarketRow.region, MarketRow.indicator, MarketRow.on_date)
    if regions is not None:
        stmt = stmt.where(MarketRow.region.in_(list(regions)))
    with Session(engine) as session:
        return [StoredMarket(r.region, r.indicator, r.on_date, r.value) for r in session.scalars(stmt)]


def save_rejected(engine: Engine, feed: str, source: str, problems: Iterable[RowProblemLike]) -> int:
    """Keep rejected feed rows with their reasons. Returns how many were stored."""
    now = utcnow()
    n = 0
    with Session(engine) as session, session.begin():
        for p in problems:
            session.add(
                RejectedFeedRow(
                    feed=feed,
                    source=source[:256],
                    row=p.row,
                    key=p.key[:64],
                    field=p.field[:64],
                    reason=p.reason,
                    raw=dict(p.raw or {}),
                    recorded_at=now,
                )
            )
            n += 1
    return n


def list_rejected(engine: Engine, *, feed: str | None = None, limit: int = 200) -> list[RejectedRecord]:
    """Rejected feed rows, newest first."""
    stmt = select(RejectedFeedRow).order_by(RejectedFeedRow.id.desc()).limit(limit)
    if feed is not None:
        stmt = stmt.where(RejectedFeedRow.feed == feed)
    with Session(engine) as session:
        return [
            RejectedRecord(r.id, r.feed, r.source, r.row, r.key, r.field, r.reason, dict(r.raw), r.recorded_at)
            for r in session.scalars(stmt)
        ]


# ---------------------------------------------------------------- scores


def _score(row: ScoreRow) -> StoredScore:
    data = ScoreInsert(
        row.loan_id,
        row.site_id,
        row.as_of,
        row.config_version,
        row.config_sha256,
        row.score,
        row.pd,
        row.band,
        row.colour,
        row.confidence,
        dict(row.inputs),
        list(row.contributions),
        list(row.top_drivers),
        list(row.missing),
    )
    return StoredScore(row.id, row.scored_at, data)


def save_scores(engine: Engine, scores: Sequence[ScoreInsert], *, scored_at: datetime | None = None) -> list[int]:
    """Append scores to the history. Returns their ids, in order."""
    at = scored_at or utcnow()
    with Session(engine) as session, session.begin():
        rows = [
            ScoreRow(
                loan_id=s.loan_id,
                site_id=s.site_id,
                as_of=s.as_of,
                scored_at=at,
                config_version=s.config_version,
                config_sha256=s.config_sha256,
                score=s.score,
                pd=s.pd,
                band=s.band,
                colour=s.colour,
                confidence=s.confidence,
                inputs=s.inputs,
                contributions=s.contributions,
                top_drivers=s.top_drivers,
                missing=s.missing,
            )
            for s in scores
        ]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]


def latest_scores(engine: Engine) -> list[StoredScore]:
    """The newest score of every loan, by loan id."""
    with Session(engine) as session:
        newest = (
            select(ScoreRow.loan_id, ScoreRow.id)
            .order_by(ScoreRow.loan_id, ScoreRow.scored_at.desc(), ScoreRow.id.desc())
            .subquery()
        )
        ids: dict[str, int] = {}
        for loan_id, score_id in session.execute(select(newest.c.loan_id, newest.c.id)):
            ids.setdefault(loan_id, score_id)
        rows = session.scalars(select(ScoreRow).where(ScoreRow.id.in_(list(ids.values())))).all()
        return sorted((_score(r) for r in rows), key=lambda s: s.data.loan_id)


def score_history(engine: Engine, loan_id: str) -> list[StoredScore]:
    """Every stored score of a loan, oldest first."""
    with Session(engine) as session:
        stmt = select(ScoreRow).where(ScoreRow.loan_id == loan_id).order_by(ScoreRow.scored_at, ScoreRow.id)
        return [_score(r) for r in session.scalars(stmt)]


def get_score(engine: Engine, score_id: int) -> StoredScore:
    """One stored score.

    Raises:
        LookupError: no score with this id.
    """
    with Session(engine) as session:
        row = session.get(ScoreRow, score_id)
        if row is None:
            raise LookupError(f"no score {score_id}")
        return _score(row)


# ---------------------------------------------------------------- alerts


def _alert(r: AlertRow) -> AlertRecord:
    return AlertRecord(
        r.id,
        r.loan_id,
        r.site_id,
        r.rule_id,
        r.dedupe_key,
        r.severity,
        r.title,
        dict(r.evidence),
        r.config_version,
        r.score_id,
        r.case_id,
        r.status,
        r.opened_at,
        r.last_seen_at,
        r.acknowledged_at,
        r.acknowledged_by,
        r.acknowledge_note,
        r.resolved_at,
        r.resolved_by,
        r.resolve_note,
        r.resolution,
    )


def apply_rule_outcomes(
    engine: Engine,
    outcomes: Sequence[OutcomeLike],
    *,
    site_ids: Mapping[str, str],
    score_ids: Mapping[str, int],
    config_version: str,
    now: datetime | None = None,
) -> AlertChanges:
    """Open, refresh or resolve alerts from rule outcomes, in one transaction.

    A fired outcome opens an alert unless one with its dedupe key is unresolved (then only its
    ``last_seen_at`` moves); a clear outcome resolves the unresolved one ("rule_cleared"); an
    unknown outcome (missing input) changes nothing. A partial unique index on the dedupe key
    backs this up in the database.

    Args:
        engine: The database.
        outcomes: Rule outcomes of any number of loans.
        site_ids: Site per loan id.
        score_ids: Stored score per loan id (linked as evidence).
        config_version: Alert configuration version.
        now: Timestamp to use (default: now, UTC).
    """
    now = now or utcnow()
    opened: list[AlertRow] = []
    resolved: list[AlertRow] = []
    seen: list[AlertRow] = []
    with Session(engine) as session, session.begin():
        keys = sorted({o.dedupe_key for o in outcomes})
        unresolved: dict[str, AlertRow] = {}
        for batch in _chunks(keys):
            stmt = select(AlertRow).where(and_(AlertRow.dedupe_key.in_(batch), AlertRow.status.in_(UNRESOLVED)))
            unresolved.update({r.dedupe_key: r for r in session.scalars(stmt)})
        for o in outcomes:
            row = unresolved.get(o.dedupe_key)
            if o.state == "fired" and row is None:
                row = AlertRow(
                    loan_id=o.loan_id,
                    site_id=site_ids.get(o.loan_id, ""),
                    rule_id=o.rule_id,
                    dedupe_key=o.dedupe_key,
                    severity=o.severity,
                    title=o.title,
                    evidence=o.evidence,
                    config_version=config_version,
                    score_id=score_ids.get(o.loan_id),
                    status="open",
                    opened_at=now,
                    last_seen_at=now,
                    acknowledge_note="",
                    resolve_note="",
                )
                session.add(row)
                unresolved[o.dedupe_key] = row
                opened.append(row)
            elif o.state == "fired" and row is not None:
                row.last_seen_at = now
                seen.append(row)
            elif o.state == "clear" and row is not None:
                row.status, row.resolution = "resolved", "rule_cleared"
                row.resolved_at, row.resolved_by = now, "system"
                row.resolve_note = "rule no longer fires"
                del unresolved[o.dedupe_key]
                resolved.append(row)
        session.flush()
        for row in opened:
            put_audit(session, "system", "open", "alert", str(row.id), {"rule_id": row.rule_id, "loan_id": row.loan_id})
        for row in resolved:
            put_audit(session, "system", "resolve", "alert", str(row.id), {"resolution": "rule_cleared"})
        return AlertChanges(
            tuple(_alert(r) for r in opened), tuple(_alert(r) for r in resolved), tuple(_alert(r) for r in seen)
        )


def list_alerts(
    engine: Engine, *, status: Collection[str] | None = None, loan_id: str | None = None
) -> list[AlertRecord]:
    """Alerts, newest first (optionally only some statuses, or one loan)."""
    stmt = select(AlertRow).order_by(AlertRow.opened_at.desc(), AlertRow.id.desc())
    if status is not None:
        stmt = stmt.where(AlertRow.status.in_(list(status)))
    if loan_id is not None:
        stmt = stmt.where(AlertRow.loan_id == loan_id)
    with Session(engine) as session:
        return [_alert(r) for r in session.scalars(stmt)]


def get_alert(engine: Engine, alert_id: int) -> AlertRecord:
    """One alert.

    Raises:
        AlertNotFoundError: no alert with this id.
    """
    with Session(engine) as session:
        row = session.get(AlertRow, alert_id)
        if row is None:
            raise AlertNotFoundError(f"no alert {alert_id}")
        return _alert(row)


def acknowledge_alert(engine: Engine, alert_id: int, *, by: str, note: str) -> AlertRecord:
    """Mark an open alert acknowledged (who, when, note).

    Raises:
        AlertNotFoundError: no alert with this id.
        RiskStateError: the alert is not open.
    """
    with Session(engine) as session, session.begin():
        row = session.get(AlertRow, alert_id)
        if row is None:
            raise AlertNotFoundError(f"no alert {alert_id}")
        if row.status != "open":
            raise RiskStateError(f"alert {alert_id} is {row.status}; only an open alert can be acknowledged")
        row.status, row.acknowledged_at, row.acknowledged_by, row.acknowledge_note = "acknowledged", utcnow(), by, note
        put_audit(session, by, "acknowledge", "alert", str(alert_id), {"note": note})
        session.flush()
        return _alert(row)


def resolve_alert(engine: Engine, alert_id: int, *, by: str, note: str) -> AlertRecord:
    """Resolve an open or acknowledged alert by hand.

    Raises:
        AlertNotFoundError: no alert with this id.
        RiskStateError: the alert is already resolved.
    """
    with Session(engine) as session, session.begin():
        row = session.get(AlertRow, alert_id)
        if row is None:
            raise AlertNotFoundError(f"no alert {alert_id}")
        if row.status not in UNRESOLVED:
            raise RiskStateError(f"alert {alert_id} is already resolved")
        row.status, row.resolution = "resolved", "manual"
        row.resolved_at, row.resolved_by, row.resolve_note = utcnow(), by, note
        put_audit(session, by, "resolve", "alert", str(alert_id), {"note": note})
        session.flush()
        return _alert(row)


# ---------------------------------------------------------------- cases


def _task(t: CaseTaskRow) -> TaskRecord:
    return TaskRecord(
        t.id, t.case_id, t.department, t.title, t.owner, t.due_date, t.status, t.done_at, t.done_by, t.note
    )


def _case_records(session: Session, rows: Sequence[CaseRow]) -> list[CaseRecord]:
    """Cases with their tasks and linked alert ids, read in batches (not two queries per case)."""
    ids = [r.id for r in rows]
    tasks: dict[int, list[TaskRecord]] = defaultdict(list)
    alerts: dict[int, list[int]] = defaultdict(list)
    for batch in _chunks(ids):
        for t in session.scalars(select(CaseTaskRow).where(CaseTaskRow.case_id.in_(batch)).order_by(CaseTaskRow.id)):
            tasks[t.case_id].append(_task(t))
        stmt = select(AlertRow.case_id, AlertRow.id).where(AlertRow.case_id.in_(batch)).order_by(AlertRow.id)
        for case_id, alert_id in session.execute(stmt):
            if case_id is not None:  # always, given the IN filter; narrows the type
                alerts[case_id].append(alert_id)
    return [
        CaseRecord(
            row.id,
            row.loan_id,
            row.status,
            row.severity,
            row.reason,
            row.opened_at,
            row.opened_by,
            row.response_plan,
            row.response_note,
            row.response_by,
            row.response_at,
            row.closed_at,
            row.closed_by,
            row.close_note,
            tuple(tasks[row.id]),
            tuple(alerts[row.id]),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class CaseRequest:
    """Put one loan on the watch list (see :func:`open_cases`).

    Attributes:
        loan_id: The loan.
        severity: Severity of the triggering alert.
        reason: Why (the triggering alerts' titles).
        tasks: (department, title, owner, due date) for a new case.
        alert_ids: Alerts to link to the case.
    """

    loan_id: str
    severity: str
    reason: str
    tasks: Sequence[tuple[str, str, str, date]]
    alert_ids: Sequence[int]


def open_cases(
    engine: Engine, requests: Sequence[CaseRequest], *, by: str = "system"
) -> dict[str, tuple[CaseRecord, bool]]:
    """Put loans on the watch list, or add alerts to their open cases, in one transaction.

    A scoring run of a large book opens thousands of cases at once: this reads the open cases,
    inserts the new ones with their tasks and links the alerts in a few statements per
    ``_CHUNK`` loans, instead of a transaction and several round trips per loan.

    Args:
        engine: The database.
        requests: At most one per loan.
        by: Who opens them.

    Returns:
        Per loan id, its case and whether it was created (False: an open case already existed).

    Raises:
        ValueError: a loan appears twice in ``requests``.
    """
    loan_ids = [r.loan_id for r in requests]
    if len(set(loan_ids)) != len(loan_ids):
        twice = sorted({x for x in loan_ids if loan_ids.count(x) > 1})
        raise ValueError(f"requests: loans {twice} appear more than once (one request per loan)")
    with Session(engine) as session, session.begin():
        rows: dict[str, CaseRow] = {}
        for batch in _chunks(loan_ids):
            stmt = select(CaseRow).where(CaseRow.loan_id.in_(batch), CaseRow.status == "open")
            rows.update({row.loan_id: row for row in session.scalars(stmt)})
        created = [r for r in requests if r.loan_id not in rows]
        now = utcnow()
        for r in created:
            rows[r.loan_id] = CaseRow(
                loan_id=r.loan_id,
                status="open",
                severity=r.severity,
                reason=r.reason,
                opened_at=now,
                opened_by=by,
                response_note="",
                close_note="",
            )
        session.add_all(rows[r.loan_id] for r in created)
        session.flush()  # case ids
        session.add_all(
            CaseTaskRow(
                case_id=rows[r.loan_id].id,
                department=department,
                title=title,
                owner=owner,
                due_date=due,
                status="open",
                note="",
            )
            for r in created
            for department, title, owner, due in r.tasks
        )
        for r in created:
            put_audit(
                session,
                by,
                "open",
                "case",
                str(rows[r.loan_id].id),
                {"loan_id": r.loan_id, "alerts": list(r.alert_ids)},
            )
        links = [{"id": alert_id, "case_id": rows[r.loan_id].id} for r in requests for alert_id in r.alert_ids]
        if links:
            session.execute(update(AlertRow), links)  # ORM bulk UPDATE by primary key: one executemany
        session.flush()
        ordered = [rows[r.loan_id] for r in requests]
        new = {r.loan_id for r in created}
        return {rec.loan_id: (rec, rec.loan_id in new) for rec in _case_records(session, ordered)}


def open_case(
    engine: Engine,
    loan_id: str,
    *,
    severity: str,
    reason: str,
    tasks: Sequence[tuple[str, str, str, date]],
    alert_ids: Sequence[int],
    by: str = "system",
) -> tuple[CaseRecord, bool]:
    """Put a loan on the watch list, or add alerts to its open case (one loan of :func:`open_cases`).

    Args:
        engine: The database.
        loan_id: The loan.
        severity: Severity of the triggering alert.
        reason: Why (the triggering alerts' titles).
        tasks: (department, title, owner, due date) for a new case.
        alert_ids: Alerts to link to the case.
        by: Who opens it.

    Returns:
        The case and whether it was created (False: an open case already existed).
    """
    request = CaseRequest(loan_id, severity, reason, tasks, alert_ids)
    return open_cases(engine, [request], by=by)[loan_id]


def list_cases(engine: Engine, *, status: str | None = "open") -> list[CaseRecord]:
    """Watch-list cases (default: the open ones), newest first."""
    stmt = select(CaseRow).order_by(CaseRow.opened_at.desc(), CaseRow.id.desc())
    if status is not None:
        stmt = stmt.where(CaseRow.status == status)
    with Session(engine) as session:
        return _case_records(session, session.scalars(stmt).all())


def _open_case_row(session: Session, case_id: int) -> CaseRow:
    row = session.get(CaseRow, case_id)
    if row is None:
        raise CaseNotFoundError(f"no case {case_id}")
    if row.status != "open":
        raise RiskStateError(f"case {case_id} is {row.status}")
    return row


def get_case(engine: Engine, case_id: int) -> CaseRecord:
    """One case with its tasks and alert ids.

    Raises:
        CaseNotFoundError: no such case.
    """
    with Session(engine) as session:
        row = session.get(CaseRow, case_id)
        if row is None:
            raise CaseNotFoundError(f"no case {case_id}")
        return _case_records(session, [row])[0]


#: Audit action of a note an officer adds to a case (notes live in the audit trail).
CASE_NOTE_ACTION = "note"


@dataclass(frozen=True, slots=True)
class CaseNoteRecord:
    """A note an officer added to a watch-list case."""

    at_utc: datetime
    by: str
    note: str


def case_notes(engine: Engine, case_id: int) -> list[CaseNoteRecord]:
    """Notes officers added to a case, oldest first."""
    stmt = (
        select(AuditRow)
        .where(AuditRow.entity == "case", AuditRow.entity_id == str(case_id), AuditRow.action == CASE_NOTE_ACTION)
        .order_by(AuditRow.at, AuditRow.id)
    )
    with Session(engine) as session:
        return [CaseNoteRecord(r.at, r.actor, str((r.detail or {}).get("note", ""))) for r in session.scalars(stmt)]


def add_case_note(engine: Engine, case_id: int, *, note: str, by: str) -> CaseNoteRecord:
    """Append a note to an open case, in the transaction that checks it is open.

    Raises:
        CaseNotFoundError: no such case.
        RiskStateError: the case is closed.
    """
    with Session(engine) as session, session.begin():
        row = _open_case_row(session, case_id)
        entry = put_audit(session, by, CASE_NOTE_ACTION, "case", str(case_id), {"note": note, "loan_id": row.loan_id})
        return CaseNoteRecord(entry.at, by, note)


def record_response(engine: Engine, case_id: int, *, plan: str, note: str, by: str) -> CaseRecord:
    """Record the response plan chosen for a case (the caller checks ``plan`` against the config).

    Raises:
        CaseNotFoundError: no such case.
        RiskStateError: the case is closed.
    """
    with Session(engine) as session, session.begin():
        row = _open_case_row(session, case_id)
        row.response_plan, row.response_note, row.response_by, row.response_at = plan, note, by, utcnow()
        put_audit(session, by, "respond", "case", str(case_id), {"plan": plan, "note": note})
        session.flush()
        return _case_records(session, [row])[0]


def complete_task(engine: Engine, task_id: int, *, by: str, note: str) -> TaskRecord:
    """Mark a case task done.

    Raises:
        CaseNotFoundError: no such task.
        RiskStateError: it is already done.
    """
    with Session(engine) as session, session.begin():
        t = session.get(CaseTaskRow, task_id)
        if t is None:
            raise CaseNotFoundError(f"no case task {task_id}")
        if t.status == "done":
            raise RiskStateError(f"task {task_id} is already done")
        t.status, t.done_at, t.done_by, t.note = "done", utcnow(), by, note
        put_audit(session, by, "complete", "case_task", str(task_id), {"case_id": t.case_id, "note": note})
        session.flush()
        return _task(t)


def close_case(engine: Engine, case_id: int, *, by: str, note: str) -> CaseRecord:
    """Take a loan off the watch list.

    Raises:
        CaseNotFoundError: no such case.
        RiskStateError: the case is already closed.
    """
    with Session(engine) as session, session.begin():
        row = _open_case_row(session, case_id)
        row.status, row.closed_at, row.closed_by, row.close_note = "closed", utcnow(), by, note
        put_audit(session, by, "close", "case", str(case_id), {"note": note})
        session.flush()
        return _case_records(session, [row])[0]


# ---------------------------------------------------------------- deliveries


def record_delivery(engine: Engine, attempt: DeliveryAttempt) -> int:
    """Record one notification attempt. Returns its id."""
    with Session(engine) as session, session.begin():
        row = DeliveryRow(
            message_id=attempt.message_id,
            channel=attempt.channel,
            kind=attempt.kind,
            target=attempt.target[:512],
            loan_id=attempt.loan_id,
            alert_id=attempt.alert_id,
            case_id=attempt.case_id,
            attempt=attempt.attempt,
            ok=attempt.ok,
            status_code=attempt.status_code,
            error=attempt.error,
            subject=attempt.subject,
            at=utcnow(),
            duration_ms=attempt.duration_ms,
        )
        session.add(row)
        session.flush()
        return row.id


def list_deliveries(engine: Engine, *, channel: str | None = None, loan_id: str | None = None) -> list[DeliveryRecord]:
    """Recorded notification attempts, oldest first."""
    stmt = select(DeliveryRow).order_by(DeliveryRow.id)
    if channel is not None:
        stmt = stmt.where(DeliveryRow.channel == channel)
    if loan_id is not None:
        stmt = stmt.where(DeliveryRow.loan_id == loan_id)
    with Session(engine) as session:
        return [
            DeliveryRecord(
                r.id,
                r.at,
                DeliveryAttempt(
                    r.message_id,
                    r.channel,
                    r.kind,
                    r.target,
                    r.attempt,
                    r.ok,
                    r.status_code,
                    r.error,
                    r.subject,
                    r.loan_id,
                    r.alert_id,
                    r.case_id,
                    r.duration_ms,
                ),
            )
            for r in session.scalars(stmt)
        ]
