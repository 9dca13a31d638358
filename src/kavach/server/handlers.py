"""Turn every error into the envelope: domain errors, validation, HTTP, database, the rest."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kavach.server.api import error_response
from kavach.server.errors import (
    DATABASE_UNAVAILABLE,
    KavachError,
    NotAuthenticated,
    RateLimited,
    ServiceUnavailable,
    http_status_for,
)
from kavach.server.logging import get_logger
from kavach.server.web import page
from kavach.server.wording import describe, in_words

log = get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


DASHBOARD = "/ui"


def _page_error(request: Request, exc: KavachError) -> Response:
    """Answer a dashboard page's error as a page: sign in again, or say what went wrong."""
    if isinstance(exc, NotAuthenticated):
        back = f"/login?{urlencode({'return_to': request.url.path})}"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": back})
        return RedirectResponse(back, status_code=303)
    return page(
        "signin.html",
        status_code=http_status_for(exc),
        title="Not possible",
        message=exc.message,
        error_code=exc.error_code,
    )


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KavachError)  # noqa: S101 - registered for KavachError only
    if request.url.path.startswith(DASHBOARD):
        return _page_error(request, exc)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, NotAuthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(
        http_status_for(exc), exc.error_code, exc.message, data=exc.data, headers=headers or None
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    # Field locations and words only: the submitted values may be secrets.
    errors = exc.errors()
    problems = [
        {"field": ".".join(str(part) for part in err.get("loc", ())), "message": describe(err)}
        for err in errors
    ]
    return error_response(
        422, "validation_failed", f"invalid request: {in_words(errors)}", data={"errors": problems}
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(
        exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
    )


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database_unavailable", error=type(exc).__name__)
    return error_response(503, ServiceUnavailable.error_code, DATABASE_UNAVAILABLE)


def _connection_lost(exc: DBAPIError) -> bool:
    """Say whether a driver error means the database went away (not a bug in a query)."""
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    # SQLSTATE classes 08 (connection exception) and 57 (operator intervention: shutdown).
    if isinstance(code, str) and code[:2] in ("08", "57"):
        return True
    cause: BaseException | None = exc.orig
    while cause is not None:
        if isinstance(cause, OSError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


async def _driver_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)  # noqa: S101 - registered for DBAPIError only
    if _connection_lost(exc):
        return await _database_unavailable(request, exc)
    return await _unexpected(request, exc)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on the app."""
    app.add_exception_handler(KavachError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for db_error in (OperationalError, InterfaceError, PoolTimeoutError, ConnectionError):
        app.add_exception_handler(db_error, _database_unavailable)
    app.add_exception_handler(DBAPIError, _driver_error)
    app.add_exception_handler(Exception, _unexpected)
