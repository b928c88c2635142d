"""Loan servicing and market feeds over HTTP: a CSV body, or a JSON array of row objects.

Rows are validated like the CLI import does (``jobs.risk.import_payments`` /
``import_market``): rejected rows are kept with their reasons and listed in the answer; a body
that cannot be read at all is a 422 with every problem.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from api.auth import AdminDep, IngestDep, Principal
from api.deps import EngineDep
from api.metrics import Metrics
from jobs.risk import FeedImportSummary, import_market, import_payments
from store import api_repo

logger = logging.getLogger(__name__)

router = APIRouter()

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    }
}


async def _csv_text(request: Request) -> str:
    """The body as CSV text: CSV as sent, or a JSON array of objects turned into CSV."""
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("text/csv", "text/plain", "application/csv"):
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise HTTPException(422, f"body: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if kind != "application/json":
        raise HTTPException(415, f"content-type {kind or 'missing'!r}: send text/csv or application/json")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(422, f"body: not valid JSON ({exc})") from exc
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise HTTPException(422, "body: expected a JSON array of row objects")
    columns: list[str] = []
    for row in doc:
        columns += [str(k) for k in row if str(k) not in columns]
    buf = io.StringIO()
    # RFC 4180 line ends: the writer then quotes any value holding a CR or LF (with "\n" alone a
    # bare CR went out unquoted and the reader failed on it: a 500 schemathesis found)
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in doc:
        writer.writerow({str(k): "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


@contextmanager
def _readable_csv() -> Iterator[None]:
    """Turn the csv module's error on text that is not CSV (a bare CR in a field) into a 422."""
    try:
        yield
    except csv.Error as exc:
        raise HTTPException(422, f"body: not readable as CSV ({exc})") from exc


def _answer(summary: FeedImportSummary, request: Request, principal: Principal, engine: Any) -> dict[str, Any]:
    metrics: Metrics = request.app.state.metrics
    metrics.inc("sitewatch_ingest_items_total", {"feed": summary.feed, "status": "accepted"}, summary.accepted)
    metrics.inc("sitewatch_ingest_items_total", {"feed": summary.feed, "status": "rejected"}, len(summary.rejected))
    api_repo.record_audit(
        engine,
        actor=principal.actor,
        action="import",
        entity=summary.feed,
        entity_id=summary.source,
        detail={"created": summary.created, "updated": summary.updated, "rejected": len(summary.rejected)},
    )
    logger.info(
        "%s feed: %s stored, %s rejected", summary.feed, summary.accepted, len(summary.rejected),
        extra={"key_id": principal.key_id},
    )  # fmt: skip
    return {
        "feed": summary.feed,
        "source": summary.source,
        "created": summary.created,
        "updated": summary.updated,
        "rejected": [{"row": p.row, "key": p.key, "field": p.field, "reason": p.reason} for p in summary.rejected],
    }


@router.post(
    "/payments",
    summary="Import loan payments (ingest)",
    openapi_extra=_BODY_DOC,
    responses={415: {"description": "Neither CSV nor JSON"}, 422: {"description": "Unreadable feed"}},
)
async def post_payments(request: Request, engine: EngineDep, principal: IngestDep) -> dict[str, Any]:
    """Columns ``loan_id, due_date, amount_due`` (required), ``paid_date, amount_paid, restructured``.

    A key scoped to some sites may only send payments of their loans; other loans are rejected
    as unknown loans.
    """
    text = await _csv_text(request)

    def run() -> dict[str, Any]:
        if principal.sites is not None:
            allowed = set(api_repo.site_loans(engine, principal.sites).values())
            text_in = _only_loans(text, allowed)
        else:
            text_in = text
        with _readable_csv():
            summary = import_payments(engine, text_in, source=f"api {principal.actor}")
        return _answer(summary, request, principal, engine)

    return await run_in_threadpool(run)


def _only_loans(text: str, allowed: set[str]) -> str:
    """Blank the loan id of rows outside a scope, so they are rejected like an unknown loan."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "loan_id" not in reader.fieldnames:
        return text
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=reader.fieldnames, lineterminator="\n")
    writer.writeheader()
    for row in reader:
        if row.get("loan_id") not in allowed:
            row["loan_id"] = f"{row.get('loan_id')}?"  # not a stored loan: rejected as unknown
        writer.writerow(row)
    return buf.getvalue()


@router.post(
    "/market",
    summary="Import regional market series (admin)",
    openapi_extra=_BODY_DOC,
    responses={415: {"description": "Neither CSV nor JSON"}, 422: {"description": "Unreadable feed"}},
)
async def post_market(request: Request, engine: EngineDep, principal: AdminDep) -> dict[str, Any]:
    """Columns as in ``risk/data/market_demo.csv`` (region, indicator, date, value)."""
    text = await _csv_text(request)

    def run() -> dict[str, Any]:
        with _readable_csv():
            summary = import_market(engine, text, source=f"api {principal.actor}")
        return _answer(summary, request, principal, engine)

    return await run_in_threadpool(run)
