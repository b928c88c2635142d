"""Early-warning alerts and watch-list cases: list with filters, acknowledge and resolve (who is recorded)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from api.auth import OfficerDep, Principal
from api.deps import EngineDep
from api.routes.scores import scoped_loans
from store import api_repo, risk_repo
from store.risk_errors import AlertNotFoundError

logger = logging.getLogger(__name__)

router = APIRouter()

#: Alert ids are 32-bit INTEGER keys (store/risk_schema.py): a larger number is refused with 422
#: instead of failing in the database driver (schemathesis found the 500 on both backends).
AlertId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The alert's id")]
#: Case ids are 32-bit in the store: a larger one is a 422, never a database overflow.
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The case's id")]

Severity = Literal["low", "medium", "high"]
AlertStatus = Literal["open", "acknowledged", "resolved"]


class NoteCreate(BaseModel):
    """Why the officer acts; kept in the audit trail."""

    note: str = Field("", max_length=2000)


def _alert_json(a: risk_repo.AlertRecord) -> dict[str, Any]:
    def iso(v: Any) -> Any:
        return v.isoformat() if v is not None else None

    return {
        "id": a.id,
        "loan_id": a.loan_id,
        "site_id": a.site_id,
        "rule_id": a.rule_id,
        "severity": a.severity,
        "title": a.title,
        "status": a.status,
        "evidence": a.evidence,
        "config_version": a.config_version,
        "score_id": a.score_id,
        "case_id": a.case_id,
        "opened_at": iso(a.opened_at),
        "last_seen_at": iso(a.last_seen_at),
        "acknowledged_at": iso(a.acknowledged_at),
        "acknowledged_by": a.acknowledged_by,
        "acknowledge_note": a.acknowledge_note,
        "resolved_at": iso(a.resolved_at),
        "resolved_by": a.resolved_by,
        "resolve_note": a.resolve_note,
        "resolution": a.resolution,
    }


def _visible_alert(engine: Any, principal: Principal, alert_id: int) -> None:
    loans = scoped_loans(engine, principal)
    loan = api_repo.alert_loan(engine, alert_id)
    if loan is None or (loans is not None and loan not in loans):
        raise AlertNotFoundError(f"no alert {alert_id}")


@router.get("/alerts", summary="Alerts, newest first")
def list_alerts(
    engine: EngineDep,
    principal: OfficerDep,
    status: Annotated[list[AlertStatus] | None, Query(description="Repeat for several")] = None,
    severity: Annotated[list[Severity] | None, Query(description="Repeat for several")] = None,
    loan_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Alerts of the loans the key may see, filtered by status, severity and loan."""
    loans = scoped_loans(engine, principal)
    alerts = risk_repo.list_alerts(engine, status=status, loan_id=loan_id)
    if loans is not None:
        alerts = [a for a in alerts if a.loan_id in loans]
    if severity:
        alerts = [a for a in alerts if a.severity in severity]
    items = [_alert_json(a) for a in alerts[:limit]]
    return {"count": len(items), "items": items}


@router.post(
    "/alerts/{alert_id}/acknowledge",
    summary="Acknowledge an open alert (officer)",
    responses={409: {"description": "The alert is not open"}},
)
def acknowledge_alert(
    alert_id: AlertId, engine: EngineDep, principal: OfficerDep, body: Annotated[NoteCreate, Body()]
) -> dict[str, Any]:
    """Mark an open alert acknowledged; the key and the note are recorded. 409 unless open."""
    _visible_alert(engine, principal, alert_id)
    alert = risk_repo.acknowledge_alert(engine, alert_id, by=principal.actor, note=body.note)
    logger.info("alert %s acknowledged", alert_id, extra={"alert_id": alert_id, "key_id": principal.key_id})
    return _alert_json(alert)


@router.post(
    "/alerts/{alert_id}/resolve",
    summary="Resolve an alert by hand (officer)",
    responses={409: {"description": "The alert is already resolved"}},
)
def resolve_alert(
    alert_id: AlertId, engine: EngineDep, principal: OfficerDep, body: Annotated[NoteCreate, Body()]
) -> dict[str, Any]:
    """Resolve an open or acknowledged alert; the key and the note are recorded. 409 when already resolved."""
    _visible_alert(engine, principal, alert_id)
    alert = risk_repo.resolve_alert(engine, alert_id, by=principal.actor, note=body.note)
    logger.info("alert %s resolved", alert_id, extra={"alert_id": alert_id, "key_id": principal.key_id})
    return _alert_json(alert)


@router.get("/cases", summary="Watch-list cases, newest first")
def list_cases(
    engine: EngineDep,
    principal: OfficerDep,
    status: Annotated[Literal["open", "closed", "all"], Query()] = "open",
    loan_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Cases of the loans the key may see, with their tasks and linked alerts."""
    loans = scoped_loans(engine, principal)
    cases = risk_repo.list_cases(engine, status=None if status == "all" else status)
    cases = [c for c in cases if (loans is None or c.loan_id in loans) and (loan_id is None or c.loan_id == loan_id)]
    items = []
    for c in cases:
        items.append(
            {
                "id": c.id,
                "loan_id": c.loan_id,
                "status": c.status,
                "severity": c.severity,
                "reason": c.reason,
                "opened_at": c.opened_at.isoformat(),
                "opened_by": c.opened_by,
                "response_plan": c.response_plan,
                "alert_ids": list(c.alert_ids),
                "tasks": [
                    {
                        "id": t.id,
                        "department": t.department,
                        "title": t.title,
                        "owner": t.owner,
                        "due_date": t.due_date.isoformat(),
                        "status": t.status,
                    }
                    for t in c.tasks
                ],
            }
        )
    return {"count": len(items), "items": items}
