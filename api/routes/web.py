"""The officer's web map: the page at ``/`` and its static files (no build step, no CDN).

The page is public; every figure on it comes from ``/v1`` with the API key the officer types in,
so serving it grants nothing. A strict Content-Security-Policy keeps it to this origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter()

#: Where the page, its modules and the vendored Leaflet live.
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: Same origin only; blob: for tiles and the CSV fetched with the key; Leaflet sets inline styles.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The web map page."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )
