"""The response envelope every /api/v1 route returns, and the router all of them are built on."""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import unquote_plus

import orjson
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kavach.server.errors import ValidationFailed

T = TypeVar("T")
# Routers carry the full prefix themselves so route templates (logs, checks) are complete.
API_PREFIX = "/api/v1"


class Envelope(BaseModel, Generic[T]):
    """`{success, data, error, error_code}`: the shape of every API response."""

    success: bool = True
    data: T | None = None
    error: str | None = None
    error_code: str | None = None


class ErrorEnvelope(BaseModel):
    """A failure: a message for people and a stable `error_code` for programs."""

    success: bool = False
    data: Any = None
    error: str
    error_code: str


# Every route may fail this way; declared once so the API description tells the truth.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorEnvelope, "description": "Refused: see `error_code`"},
    "5XX": {"model": ErrorEnvelope, "description": "Server or upstream failure"},
}


def ok(data: T) -> Envelope[T]:
    """Wrap a successful result."""
    return Envelope[T](data=data)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    data: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Return a failure envelope with the given status."""
    body = {"success": False, "data": data, "error": message, "error_code": code}
    return JSONResponse(status_code=status, content=body, headers=headers)


def is_json(content_type: str | None) -> bool:
    """Tell whether a Content-Type names JSON (application/json or application/*+json)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class StrictJSONRequest(Request):
    """A request whose body parses as strict RFC 8259 JSON.

    Unlike `json.loads`, orjson refuses invalid UTF-8, unpaired surrogate escapes (text no
    database can store), NaN/Infinity, and nesting deeper than 1024 levels (instead of
    recursing until the interpreter gives up). Its error is a `json.JSONDecodeError`, which
    FastAPI reports as a validation error.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class ApiRoute(APIRoute):
    """An API route: strict JSON bodies, JSON only, no NUL characters in the URL."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def strict_handler(request: Request) -> Response:
            # PostgreSQL text cannot hold NUL, and no id or name contains one.
            query = request.scope["query_string"].decode("latin-1")
            if "\x00" in request.scope["path"] or "\x00" in unquote_plus(query):
                raise ValidationFailed("the URL holds a NUL character")
            strict = StrictJSONRequest(request.scope, request.receive)
            content_type = strict.headers.get("content-type")
            if takes_body and not is_json(content_type) and await strict.body():
                raise HTTPException(415, "send the request body as application/json")
            return await handler(strict)

        return strict_handler


def api_router(*, prefix: str, tags: list[str | Enum]) -> APIRouter:
    """Return a router for /api/v1 routes: the envelope's errors declared, strict input."""
    return APIRouter(prefix=prefix, tags=tags, responses=ERROR_RESPONSES, route_class=ApiRoute)
