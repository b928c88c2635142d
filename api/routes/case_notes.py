"""Notes on a watch-list case: officers record what they did or learnt; each note is an audit entry."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from api.auth import OfficerDep, Principal
from api.deps import EngineDep
from api.routes.alerts import CaseId
from api.routes.scores import scoped_loans
from store import risk_repo
from store.risk_errors import CaseNotFoundError

logger = logging.getLogger(__name__)

router = APIRouter()


class CaseNoteCreate(BaseModel):
    """What the officer wants on the case file."""

    note: str = Field(min_length=1, max_length=2000)


def _visible_case(engine: Any, principal: Principal, case_id: int) -> risk_repo.CaseRecord:
    case = risk_repo.get_case(engine, case_id)
    loans = scoped_loans(engine, principal)
    if loans is not None and case.loan_id not in loans:
        raise CaseNotFoundError(f"no case {case_id}")  # out of scope: indistinguishable from missing
    return case


def _note_json(n: risk_repo.CaseNoteRecord) -> dict[str, Any]:
    return {"at": n.at_utc.isoformat(), "by": n.by, "note": n.note}


@router.get("/cases/{case_id}/notes", summary="A case's notes, oldest first")
def list_case_notes(case_id: CaseId, engine: EngineDep, principal: OfficerDep) -> dict[str, Any]:
    """Every note officers added to the case, with who and when."""
    _visible_case(engine, principal, case_id)
    items = [_note_json(n) for n in risk_repo.case_notes(engine, case_id)]
    return {"case_id": case_id, "count": len(items), "items": items}


@router.post("/cases/{case_id}/notes", summary="Add a note to an open case (officer)", status_code=201)
def add_case_note(
    case_id: CaseId, engine: EngineDep, principal: OfficerDep, body: Annotated[CaseNoteCreate, Body()]
) -> dict[str, Any]:
    """Append a note to an open case; the key is recorded as its author. 409 when the case is closed."""
    _visible_case(engine, principal, case_id)
    note = risk_repo.add_case_note(engine, case_id, note=body.note, by=principal.actor)
    logger.info("case %s noted", case_id, extra={"case_id": case_id, "key_id": principal.key_id})
    return {"case_id": case_id, "count": 1, "items": [_note_json(note)]}
