"""Notes on a watch-list case: officers record what they did or learnt; each note is an audit entry."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from api.auth import OfficerDep, Principal
from api.deps import EngineDep
from api.routes.scores import scoped_loans
from jobs.report import CASE_NOTE_ACTION, CaseNote, case_notes
from store import api_repo, risk_repo
from store.risk_errors import CaseNotFoundError, RiskStateError

logger = logging.getLogger(__name__)

router = APIRouter()


class CaseNoteCreate(BaseModel):
    """What the officer wants on the case file."""

    note: str = Field(min_length=1, max_length=2000)


def _visible_case(engine: Any, principal: Principal, case_id: int) -> risk_repo.CaseRecord:
    loans = scoped_loans(engine, principal)
    case = next((c for c in risk_repo.list_cases(engine, status=None) if c.id == case_id), None)
    if case is None or (loans is not None and case.loan_id not in loans):
        raise CaseNotFoundError(f"no case {case_id}")
    return case


def _note_json(n: CaseNote) -> dict[str, Any]:
    return {"at": n.at_utc.isoformat(), "by": n.by, "note": n.note}


@router.get("/cases/{case_id}/notes", summary="A case's notes, oldest first")
def list_case_notes(case_id: int, engine: EngineDep, principal: OfficerDep) -> dict[str, Any]:
    """Every note officers added to the case, with who and when."""
    _visible_case(engine, principal, case_id)
    items = [_note_json(n) for n in case_notes(engine, case_id)]
    return {"case_id": case_id, "count": len(items), "items": items}


@router.post("/cases/{case_id}/notes", summary="Add a note to an open case (officer)", status_code=201)
def add_case_note(
    case_id: int, engine: EngineDep, principal: OfficerDep, body: Annotated[CaseNoteCreate, Body()]
) -> dict[str, Any]:
    """Append a note to an open case; the key is recorded as its author. 409 when the case is closed."""
    case = _visible_case(engine, principal, case_id)
    if case.status != "open":
        raise RiskStateError(f"case {case_id} is {case.status}: notes go on open cases")
    api_repo.record_audit(
        engine,
        actor=principal.actor,
        action=CASE_NOTE_ACTION,
        entity="case",
        entity_id=str(case_id),
        detail={"note": body.note, "loan_id": case.loan_id},
    )
    logger.info("case %s noted", case_id, extra={"case_id": case_id, "key_id": principal.key_id})
    return {"case_id": case_id, "count": 1, "items": [_note_json(case_notes(engine, case_id)[-1])]}
