"""Site sensor readings over HTTP: batch ingestion (ingest and admin keys) and the dead-letter list.

A key scoped to some sites has readings of any other site rejected as an unknown site, exactly
as if the site did not exist.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.auth import IngestDep, OfficerDep
from api.deps import EngineDep
from api.metrics import Metrics
from iot.errors import BatchTooLargeError
from iot.readings import Rejection, raw_text
from jobs.iot import MAX_BATCH, ingest_body
from store import api_repo
from store import readings as readings_store

logger = logging.getLogger(__name__)

router = APIRouter()

#: Largest request body accepted (bytes): ample for MAX_BATCH readings of a few hundred bytes.
MAX_BODY_BYTES = 5 * 1024 * 1024


class ItemOutcomePublic(BaseModel):
    """What happened to one reading of the batch."""

    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = None


class IngestPublic(BaseModel):
    """Per-item outcomes of one batch, with the counts."""

    accepted: int
    duplicate: int
    rejected: int
    items: list[ItemOutcomePublic]


class DeadLetterPublic(BaseModel):
    """One rejected input with its reason."""

    id: int
    received_at: str
    source: str
    origin: str
    reason: str
    raw: str
    site_id: str | None
    sensor_id: str | None


class DeadLettersPublic(BaseModel):
    """A page of dead letters, newest first."""

    items: list[DeadLetterPublic]
    next_before_id: int | None


_READING_DOC: dict[str, Any] = {
    "description": (
        "A reading, an object with site_id, sensor_id, kind (a registered kind such as "
        "equipment_runtime_h), observed_at (ISO 8601 with offset), value (number) and unit "
        "(convertible to the kind's canonical unit). Anything else is answered rejected."
    )
}
_NOT_A_BATCH = 'body: expected a JSON array of readings, one reading object or {"readings": [...]}'

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                # Items are not constrained here on purpose: each one is checked on its own, and a
                # malformed one is answered "rejected" and kept as a dead letter, never refused
                # with the batch. The expected shape is in the description and the example.
                "schema": {
                    "anyOf": [
                        {"type": "array", "maxItems": MAX_BATCH, "items": _READING_DOC},
                        {"type": "object", "description": 'One reading, or {"readings": [...]}'},
                    ],
                    "example": [
                        {
                            "site_id": "de-rgb-hall",
                            "sensor_id": "excavator-1",
                            "kind": "equipment_runtime_h",
                            "observed_at": "2026-10-01T17:00:00Z",
                            "value": 7.5,
                            "unit": "h",
                        }
                    ],
                }
            }
        },
    }
}


@router.post(
    "/readings",
    summary="Ingest a batch of sensor readings",
    response_model=IngestPublic,
    openapi_extra=_BODY_DOC,
    responses={
        413: {"description": "Too many readings or too large a body"},
        422: {"description": "Not JSON, or not an array or object (kept as a dead letter)"},
    },
)
async def post_readings(request: Request, engine: EngineDep, principal: IngestDep) -> IngestPublic:
    """Store a JSON array of readings (at most 5000); each item is accepted, a duplicate or rejected.

    Rejected items are kept in the dead-letter list with their reason. A replayed batch is
    answered with duplicates and changes nothing.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"body of {declared} bytes exceeds {MAX_BODY_BYTES}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"body exceeds {MAX_BODY_BYTES} bytes")
    if body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] not in (b"[", b"{"):
        # a JSON scalar (or nothing) is no batch: kept as a dead letter like malformed JSON, and refused
        rejection = Rejection(raw_text(body), _NOT_A_BATCH, "http body")
        await run_in_threadpool(readings_store.save_rejections, engine, [rejection], source="http")
        raise HTTPException(422, _NOT_A_BATCH)
    sites = None
    if principal.sites is not None:
        known = await run_in_threadpool(readings_store.known_site_ids, engine)
        scope = principal.sites & known
        sites = scope.__contains__
    try:
        outcomes = await run_in_threadpool(ingest_body, engine, body, sites=sites)
    except BatchTooLargeError as exc:
        raise HTTPException(413, str(exc)) from exc
    except ValueError as exc:  # malformed JSON: dead-lettered whole by ingest_body
        raise HTTPException(422, str(exc)) from exc
    items = [ItemOutcomePublic(index=o.index, status=o.status, reason=o.reason) for o in outcomes]
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("accepted", "duplicate", "rejected")}
    metrics: Metrics = request.app.state.metrics
    for status, n in counts.items():
        metrics.inc("sitewatch_ingest_items_total", {"feed": "readings", "status": status}, n)
    await run_in_threadpool(
        lambda: api_repo.record_audit(
            engine, actor=principal.actor, action="ingest", entity="readings", entity_id="http", detail=counts
        )
    )
    return IngestPublic(**counts, items=items)


@router.get("/rejected", summary="Rejected readings (dead letters), newest first", response_model=DeadLettersPublic)
def get_rejected(
    engine: EngineDep,
    principal: OfficerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Continue after this id (from next_before_id)")
    ] = None,
    source: Annotated[Literal["mqtt", "http", "csv", "sim"] | None, Query()] = None,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
) -> DeadLettersPublic:
    """Each rejected input with the reason, the raw payload and where it came from (officer, admin)."""
    rows = readings_store.list_rejected(engine, limit=limit, before_id=before_id, source=source, site_id=site_id)
    items = [
        DeadLetterPublic(
            id=r.id,
            received_at=r.received_at_utc.isoformat(),
            source=r.source,
            origin=r.origin,
            reason=r.reason,
            raw=r.raw,
            site_id=r.site_id,
            sensor_id=r.sensor_id,
        )
        for r in rows
        if principal.sites is None or (r.site_id is not None and principal.sees_site(r.site_id))
    ]
    return DeadLettersPublic(items=items, next_before_id=rows[-1].id if len(rows) == limit else None)
