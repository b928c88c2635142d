"""Opaque keyset cursors shared by the paginated listings (scores by loan id, progress by site id)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from urllib.parse import urlencode

from fastapi import HTTPException, Request, Response

from api.cache import etag_matches

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CURSOR_VERSION = "1"


def encode_cursor(after_id: str) -> str:
    """An opaque cursor pointing after an id (a loan's or a site's, by listing)."""
    raw = json.dumps({"v": _CURSOR_VERSION, "after": after_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The id a cursor points after.

    Raises:
        HTTPException: 400 when the cursor was not made by this API.
    """
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(doc, dict) or doc.get("v") != _CURSOR_VERSION or not isinstance(doc.get("after"), str):
            raise ValueError(cursor)
        return str(doc["after"])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise HTTPException(400, "cursor: not a cursor returned by this API (use next_cursor as given)") from exc


def next_link(path: str, query: Mapping[str, str], next_cursor: str) -> str:
    """An RFC 8288 ``Link`` header value pointing at the next page."""
    return f'<{path}?{urlencode({**query, "cursor": next_cursor})}>; rel="next"'


def page_response(
    request: Request, body: bytes, etag: str, next_cursor: str | None, if_none_match: str | None
) -> Response:
    """A JSON page with its strong ETag (304 when the client has it) and a ``Link`` to the next page."""
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Authorization, X-API-Key"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    if next_cursor:
        headers["Link"] = next_link(request.url.path, request.query_params, next_cursor)
    return Response(body, media_type="application/json", headers=headers)
