"""Errors get their HTTP meaning in one table, answered as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aoi.errors import LoanNotFoundError, PortfolioInvalidError, SiteNotFoundError
from risk.errors import FeedInvalidError
from store.errors import DatabaseUnavailableError, SchemaOutdatedError
from store.jobs_repo import JobNotFoundError
from store.risk_errors import AlertNotFoundError, CaseNotFoundError, RiskStateError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

HTTP_STATUS: dict[type[Exception], tuple[int, str]] = {
    PortfolioInvalidError: (422, "Invalid portfolio"),
    SiteNotFoundError: (404, "Not found"),
    LoanNotFoundError: (404, "Not found"),
    AlertNotFoundError: (404, "Not found"),
    CaseNotFoundError: (404, "Not found"),
    JobNotFoundError: (404, "Not found"),
    RiskStateError: (409, "Conflict"),
    FeedInvalidError: (422, "Invalid feed"),
    DatabaseUnavailableError: (503, "Database unavailable"),
    SchemaOutdatedError: (503, "Database schema outdated"),
}


def problem(
    status: int, title: str, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An RFC 9457 problem response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register one problem+json handler per mapped error type, plus HTTP and validation errors."""
    for error_type, (status, title) in HTTP_STATUS.items():
        app.add_exception_handler(error_type, _mapped(status, title))
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


def _mapped(status: int, title: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if status >= 500:
            logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        extra: dict[str, Any] = {}
        if isinstance(exc, PortfolioInvalidError):
            extra["problems"] = [asdict(p) for p in exc.problems]
        elif isinstance(exc, FeedInvalidError):
            extra["problems"] = [{k: v for k, v in asdict(p).items() if k != "raw"} for p in exc.problems]
        return problem(status, title, str(exc).splitlines()[0], instance=request.url.path, **extra)

    return handle


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(
        exc.status_code,
        _TITLES.get(exc.status_code, "Error"),
        str(exc.detail),
        headers=exc.headers,
        instance=request.url.path,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg", "")} for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors) or "invalid request"
    return problem(422, "Invalid request", detail, instance=request.url.path, errors=errors)


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
}
