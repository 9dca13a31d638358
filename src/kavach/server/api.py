"""The response envelope every /api/v1 route returns, and the router all of them are built on."""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import unquote_plus

import orjson
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kavach.server.errors import ValidationFailed

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
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


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ApiRoute(APIRoute):
    """An API route: strict JSON bodies, JSON only, no NUL characters in the URL."""

    # A hot route's own handler (see direct_route), None for the declared endpoint's.
    direct: ClassVar[Handler | None] = None

    def get_route_handler(self) -> Handler:
        direct = type(self).direct
        handler = super().get_route_handler() if direct is None else direct
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


def direct_route(handler: Handler) -> type[ApiRoute]:
    """Return a route class whose requests `handler` serves, reading its input itself.

    For the hottest routes, where FastAPI's per-request dependency solving costs more than
    the work: the route keeps its declaration (and its place in the API description), and
    routing, middleware and error handlers are those of every route. The handler must
    check what the declaration promises (see query_value and body_of).
    """
    return type("DirectRoute", (ApiRoute,), {"direct": staticmethod(handler)})


def query_value(request: Request, name: str, shape: TypeAdapter[T]) -> T | None:
    """Return a query parameter checked against its declared shape, or None if absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return shape.validate_python(raw)
    except ValidationError as error:
        raise _invalid(error, "query", name) from None


async def body_of(request: Request, model: type[M]) -> M:
    """Return the request's JSON body as `model`, refused as FastAPI refuses a bad one."""
    raw = await request.body()
    if not raw:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        return model.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as error:
        # The parser's reason, as FastAPI gives it, never the input.
        invalid = {
            "type": "json_invalid",
            "loc": ("body", error.pos),
            "msg": "JSON decode error",
            "ctx": {"error": error.msg},
        }
        raise RequestValidationError([invalid]) from None
    except ValidationError as error:
        raise _invalid(error, "body") from None


def _invalid(error: ValidationError, *where: str) -> RequestValidationError:
    """Place a model's errors where FastAPI would: under the body or the query parameter."""
    return RequestValidationError(
        [{**problem, "loc": (*where, *problem["loc"])} for problem in error.errors()]
    )


def api_router(*, prefix: str, tags: list[str | Enum]) -> APIRouter:
    """Return a router for /api/v1 routes: the envelope's errors declared, strict input."""
    return APIRouter(prefix=prefix, tags=tags, responses=ERROR_RESPONSES, route_class=ApiRoute)
