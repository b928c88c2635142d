"""The OpenAPI document, completed with the error answers every operation can give.

FastAPI documents only what a route declares, plus a 422 whose body is its own
``HTTPValidationError`` as ``application/json``. Our errors are RFC 9457 problems
(``api/errors.py``), and some come from the edge rather than the route: 401 and 429 from the key
check, 403 from the role check, 413 from the body limit, 400 from body parsing. So the document is
completed here, in one place, from what each operation is: secured or public, with path
parameters or not, with a request body or not. Schemathesis (``tests/api/test_schemathesis.py``)
holds the server to the result.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.errors import PROBLEM_JSON

#: RFC 9457 problem details as ``api/errors.py`` writes them.
PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "Always about:blank: the status says what kind of problem"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong, naming the field and the reason"},
        "instance": {"type": "string", "description": "The request path"},
        "errors": {
            "type": "array",
            "description": "Request validation: one entry per invalid field",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "problems": {"type": "array", "description": "Invalid portfolio or feed: every problem found"},
    },
}

_DESCRIPTIONS: Final = {
    400: "Malformed request (body not parseable, or a cursor this API did not issue)",
    401: "No valid, unrevoked API key",
    403: "The key's role may not do this",
    404: "Not found (or outside the key's site scope, which looks the same)",
    413: "Request body over the size limit",
    422: "Invalid request: every invalid field is listed",
    429: "Over the key's rate limit (see Retry-After)",
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _error_codes(path: str, operation: dict[str, Any]) -> set[int]:
    codes: set[int] = set()
    if operation.get("security"):
        codes |= {401, 403, 429}
    if "{" in path:
        codes.add(404)
    if operation.get("parameters") or operation.get("requestBody"):
        codes.add(422)
    if operation.get("requestBody"):
        codes |= {400, 413}
    return codes


def complete_document(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the problem answers each operation can give (in place), and return the document."""
    doc.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in doc.get("paths", {}).items():
        for operation in item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for code in sorted(_error_codes(path, operation) | {int(c) for c in responses if c[0] in "45"}):
                declared = responses.get(str(code), {})
                responses[str(code)] = _problem(declared.get("description") or _DESCRIPTIONS.get(code, "Error"))
    # FastAPI's own validation-error schemas are never sent (422 is a problem); drop them
    for name in ("HTTPValidationError", "ValidationError"):
        doc["components"]["schemas"].pop(name, None)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            app.openapi_schema = complete_document(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the document
