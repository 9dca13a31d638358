"""The response envelope every /api/v1 route returns."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel

T = TypeVar("T")
# Routers carry the full prefix themselves so route templates (logs, checks) are complete.
API_PREFIX = "/api/v1"


class Envelope(BaseModel, Generic[T]):
    """`{success, data, error, error_code}`: the shape of every API response."""

    success: bool = True
    data: T | None = None
    error: str | None = None
    error_code: str | None = None


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
