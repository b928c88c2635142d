"""Scores for the risk engine: every loan's newest score in pages, and one loan's score with drivers and history.

Pages are keyset-paginated by loan id behind an opaque cursor, carry strong ETags and answer
``If-None-Match`` with 304. A rendered page is kept in memory keyed by the score table's
fingerprint (its highest id, see ``api_repo.scores_version``). The fingerprint itself is read at
most once per ``SCORES_VERSION_TTL_S`` per process, so a repeated page is answered on the event
loop without a database read or a thread hop; a new scoring run shows within that time.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from anyio import to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from aoi.errors import LoanNotFoundError
from api.auth import Principal, ScoreReaderDep
from api.cache import LRU, strong_etag
from api.deps import EngineDep
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor, page_response
from jobs.risk import assessment_from_stored
from store import api_repo, risk_repo

router = APIRouter()

#: Seconds a process trusts the score table's fingerprint: the bound on how late a new scoring
#: run appears in ``GET /v1/scores`` (README: API).
SCORES_VERSION_TTL_S: Final = 1.0


class ScoresVersion:
    """The score table's fingerprint, read from the database at most once per ``ttl_s``.

    Args:
        ttl_s: Seconds a read value is trusted; 0 reads on every call.
    """

    def __init__(self, ttl_s: float = SCORES_VERSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._value: int | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    async def get(self, engine: Any) -> int:
        """The fingerprint; a stale one is read again in a worker thread (the read blocks)."""
        now = time.monotonic()
        with self._lock:
            if self._value is not None and now - self._read_at < self.ttl_s:
                return self._value
        value = await to_thread.run_sync(api_repo.scores_version, engine)
        with self._lock:
            self._value, self._read_at = value, now
        return value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def scoped_loans(engine: Any, principal: Principal) -> frozenset[str] | None:
    """The loans a key may see (those of its sites), or None for every loan."""
    if principal.sites is None:
        return None
    return frozenset(api_repo.site_loans(engine, principal.sites).values())


def _score_json(s: api_repo.ScoreListing) -> dict[str, Any]:
    return {
        "loan_id": s.loan_id,
        "site_id": s.site_id,
        "score_id": s.score_id,
        "as_of": s.as_of.isoformat(),
        "scored_at": s.scored_at.isoformat(),
        "score": round(s.score, 2),
        "band": s.band,
        "colour": s.colour,
        "pd": round(s.pd, 6),
        "confidence": round(s.confidence, 3),
        "top_drivers": s.top_drivers,
        "missing": s.missing,
        "config_version": s.config_version,
    }


def _render_page(
    engine: Any, after: str | None, limit: int, since: datetime | None, loans: frozenset[str] | None
) -> tuple[bytes, str | None]:
    rows = api_repo.latest_score_page(engine, after_loan_id=after, limit=limit + 1, since=since, loan_ids=loans)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].loan_id) if more and rows else None
    body = {"count": len(rows), "next_cursor": next_cursor, "items": [_score_json(r) for r in rows]}
    return json.dumps(body, separators=(",", ":")).encode(), next_cursor


@router.get(
    "/scores",
    summary="Every loan's newest score, paginated",
    responses={
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        400: {"description": "Bad cursor"},
    },
)
async def list_scores(
    request: Request,
    engine: EngineDep,
    principal: ScoreReaderDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Loans per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")] = None,
    since: Annotated[
        datetime | None,
        Query(description="ISO 8601 instant; only loans whose newest score is newer (UTC if no offset)"),
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The newest score of each loan the key may see, in loan id order.

    Follow ``next_cursor`` (also in the ``Link`` header) until it is null; every loan appears
    exactly once. The ETag changes whenever the page's content changes.
    """
    # async: a cached page (the common case for a polling risk engine) is answered on the event
    # loop; only database work goes to a worker thread
    after = decode_cursor(cursor) if cursor else None
    since_utc = _utc(since) if since is not None else None
    loans = None if principal.sites is None else await to_thread.run_sync(scoped_loans, engine, principal)
    cache: LRU[tuple[bytes, str, str | None]] = request.app.state.score_pages
    version: ScoresVersion = request.app.state.scores_version
    key = (await version.get(engine), loans, after, limit, since_utc)
    hit = cache.get(key)
    if hit is None:
        body, next_cursor = await to_thread.run_sync(_render_page, engine, after, limit, since_utc, loans)
        hit = (body, strong_etag(body), next_cursor)
        cache.put(key, hit)
    body, etag, next_cursor = hit
    return page_response(request, body, etag, next_cursor, if_none_match)


@router.get("/loans/{loan_id}/score", summary="One loan's newest score with its drivers and history")
def get_loan_score(loan_id: str, engine: EngineDep, principal: ScoreReaderDep) -> dict[str, Any]:
    """The newest score with every driver's contribution, the inputs behind it, and the score history."""
    loans = scoped_loans(engine, principal)
    if loans is not None and loan_id not in loans:
        raise LoanNotFoundError(loan_id)
    history = risk_repo.score_history(engine, loan_id)
    if not history:
        raise LoanNotFoundError(loan_id)
    stored = history[-1]
    a = assessment_from_stored(stored)
    return {
        "loan_id": a.loan_id,
        "site_id": a.site_id,
        "score_id": stored.id,
        "as_of": a.as_of.isoformat(),
        "scored_at": stored.scored_at.isoformat(),
        "score": round(a.score, 2),
        "band": a.band,
        "colour": a.colour,
        "pd": round(a.pd, 6),
        "confidence": round(a.confidence, 3),
        "config_version": a.config_version,
        "config_sha256": a.config_sha256,
        "top_drivers": list(a.top_drivers),
        "missing": list(a.missing),
        "drivers": stored.data.contributions,
        "inputs": stored.data.inputs,
        "history": [
            {
                "score_id": h.id,
                "scored_at": h.scored_at.isoformat(),
                "as_of": h.data.as_of.isoformat(),
                "score": round(h.data.score, 2),
                "band": h.data.band,
                "pd": round(h.data.pd, 6),
                "config_version": h.data.config_version,
            }
            for h in history
        ],
    }
